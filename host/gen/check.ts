// Option checks shared by the generators: each reports through the generator's own `fail`, which
// throws its error class naming the option.

export function checkers<K extends string>(fail: (opt: K, msg: string) => never) {
  return {
    /** An integer from min to max. */
    int(opt: K, v: number, min: number, max: number): void {
      if (!Number.isSafeInteger(v) || v < min || v > max) fail(opt, `must be an integer from ${min} to ${max}, got ${v}`);
    },
    /** A share from 0 to 1. */
    share(opt: K, v: number): void {
      if (!(v >= 0 && v <= 1)) fail(opt, `must be a number from 0 to 1, got ${v}`);
    },
  };
}
