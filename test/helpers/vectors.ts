// Shared by the portable.* tests: the conformance vectors and a byte-for-byte comparison of a
// runtime's output folder with a vector's expected/ folder.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

export const ROOT = join(import.meta.dirname, '..', '..');
export const VECTORS = join(ROOT, 'fixtures', 'vectors');
export const WASM_SIMD = join(ROOT, 'build', 'sessionlb.wasm');
export const WASM_NOSIMD = join(ROOT, 'build', 'sessionlb-nosimd.wasm');

export function vectorNames(): string[] {
  return readdirSync(VECTORS, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

/** Every expected file of `name` exists in `outDir` with the same bytes, and no other file is there. */
export function expectSameOutputs(name: string, outDir: string, runtime: string): void {
  const want = readdirSync(join(VECTORS, name, 'expected')).sort();
  expect(existsSync(outDir), `${runtime} wrote no output folder for ${name}`).toBe(true);
  expect(readdirSync(outDir).sort(), `${runtime}: output files of ${name}`).toEqual(want);
  for (const f of want) {
    const a = readFileSync(join(outDir, f));
    const b = readFileSync(join(VECTORS, name, 'expected', f));
    expect(a.equals(b), `${runtime}: ${name}/${f} is not byte-identical to the vector (${a.length} vs ${b.length} bytes)`).toBe(true);
  }
}
