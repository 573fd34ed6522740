// Browser stand-in for Node's global Buffer, injected into the page's bundle only (ui/build.mjs).
// The reused host modules use Buffer for three things: the UTF-8 bytes of a backend id (Maglev's
// name hash), the hex text of an address's bytes (config's duplicate check) and latin1 text; this
// does those and nothing more. It is deliberately not a function, so code that checks
// `typeof Buffer === 'function'` before making a Node Buffer view skips it.

class Bytes extends Uint8Array {
  toString(enc: string = 'utf8'): string {
    if (enc === 'hex') return Array.from(this, (v) => v.toString(16).padStart(2, '0')).join('');
    if (enc === 'latin1' || enc === 'binary') return Array.from(this, (v) => String.fromCharCode(v)).join('');
    if (enc === 'utf8' || enc === 'utf-8') return new TextDecoder().decode(this);
    throw new Error(`Buffer#toString: encoding ${enc} is not supported in the browser view`);
  }
}

export const Buffer = {
  from(x: string | ArrayLike<number> | ArrayBuffer, enc?: string): Bytes {
    if (typeof x === 'string') {
      if (enc !== undefined && enc !== 'utf8' && enc !== 'utf-8') throw new Error(`Buffer.from: encoding ${enc} is not supported in the browser view`);
      const b = new TextEncoder().encode(x);
      return new Bytes(b.buffer, b.byteOffset, b.length);
    }
    if (x instanceof ArrayBuffer) return new Bytes(x);
    const out = new Bytes(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i];
    return out;
  },
};
