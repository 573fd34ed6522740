// Exit codes and the one place CLI errors are turned into messages.
//   0 success; 1 bad input or config, or a failure while running; 2 usage error.
import { ConfigError } from '../ctl/config.js';

export const EXIT_OK = 0;
export const EXIT_FAIL = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {
  readonly code = 'USAGE';
}

export function report(err: unknown, usage?: string): number {
  const e = err as Error & { code?: string };
  if (e instanceof UsageError || e?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || e?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    process.stderr.write(`sessionlb: ${e.message}\n${usage ? `\n${usage}\n` : ''}`);
    return EXIT_USAGE;
  }
  if (e instanceof ConfigError || (typeof e?.code === 'string' && /^(CAPTURE_|ENGINE_|CONFIG_)/.test(e.code))) {
    process.stderr.write(`sessionlb: ${e.message}\n`);
    return EXIT_FAIL;
  }
  process.stderr.write(`sessionlb: ${e?.stack ?? String(err)}\n`);
  return EXIT_FAIL;
}
