// Runs a command function in this process and captures what it writes on stdout and stderr.
import { vi } from 'vitest';

export async function captureOutput(command: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await command(), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}
