// Bun (JavaScriptCore's WebAssembly engine) runs the engine module on every conformance vector
// through the runtime-neutral harness (portable/js/run.mjs) and must write byte-identical outputs.
// Bun comes from the `bun` devDependency; its binary is the platform package's
// (node_modules/@oven/bun-linux-x64/bin/bun), or node_modules/bun/bin/bun.exe once bun's postinstall
// has moved it there.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, WASM_NOSIMD, WASM_SIMD, expectSameOutputs, vectorNames, VECTORS } from './helpers/vectors.js';

export function bunBinary(): string | null {
  // Without bun's postinstall (npm runs no dependency's install script unless allowed) the binary
  // stays in its platform package; with it, the binary is moved over node_modules/bun/bin/bun.exe.
  for (const pkg of ['bun-linux-x64', 'bun-linux-x64-baseline', 'bun-linux-aarch64']) {
    const p = join(ROOT, 'node_modules', '@oven', pkg, 'bin', 'bun');
    if (existsSync(p)) return p;
  }
  const moved = join(ROOT, 'node_modules', 'bun', 'bin', 'bun.exe');
  if (existsSync(moved)) {
    const head = Buffer.alloc(4);
    const fd = openSync(moved, 'r');
    readSync(fd, head, 0, 4, 0);
    closeSync(fd);
    if (head.toString('latin1') === '\x7fELF') return moved;
  }
  return null;
}

const bun = bunBinary();
if (!bun) console.warn('portable.bun: SKIPPED, no Bun binary under node_modules/@oven (run npm ci: the `bun` devDependency installs it)');

describe.skipIf(!bun)('Bun runs the conformance vectors', () => {
  it('is Bun', () => {
    expect(execFileSync(bun!, ['--version'], { encoding: 'utf8' })).toMatch(/^\d+\.\d+\.\d+/);
    const engine = execFileSync(bun!, ['-e', 'console.log(typeof Bun, typeof WebAssembly.Module)'], { encoding: 'utf8' }).trim();
    expect(engine).toBe('object function');
  });

  it.each(vectorNames().flatMap((n) => [[n, 'simd'], [n, 'nosimd']]))('%s (%s build): byte-identical', (name, build) => {
    const out = mkdtempSync(join(tmpdir(), 'slb-bun-'));
    try {
      execFileSync(bun!, [join(ROOT, 'portable', 'js', 'run.mjs'), build === 'simd' ? WASM_SIMD : WASM_NOSIMD, join(VECTORS, name), out], { stdio: 'pipe' });
      expectSameOutputs(name, out, 'Bun');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
