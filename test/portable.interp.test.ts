// wabt's interpreter runs the engine module on the conformance vectors. wasm-interp loads a single
// module and can pass neither arguments nor memory contents in, so the run goes through its sibling
// spectest-interp (same interpreter, driven by a spec-test command file): portable/interp/spectest.mjs
// registers the unmodified engine module, links a driver module (wat2wasm) that imports its memory,
// holds the packets in passive data segments and prints results through spectest.print_i64. The
// decoded outputs must be byte-identical to the vector's.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, VECTORS, WASM_NOSIMD, WASM_SIMD, expectSameOutputs, vectorNames } from './helpers/vectors.js';

const tools = ['/usr/bin/spectest-interp', '/usr/bin/wat2wasm'];
const missing = tools.filter((t) => !existsSync(t));
if (missing.length) console.warn(`portable.interp: SKIPPED, missing ${missing.join(', ')} (apt-get install wabt; .ci/run installs it)`);
const script = join(ROOT, 'portable', 'interp', 'spectest.mjs');

function run(wasm: string, vector: string, out: string) {
  return spawnSync(process.execPath, [script, wasm, vector, out], { encoding: 'utf8' });
}

describe.skipIf(missing.length > 0)("wabt's interpreter runs the conformance vectors", () => {
  const cases = [...vectorNames().map((n) => [n, 'simd'] as const), ['malformed', 'nosimd'] as const, ['maglev-change', 'nosimd'] as const];
  it.each(cases)('%s (%s build): byte-identical', (name, build) => {
    const out = mkdtempSync(join(tmpdir(), 'slb-interp-out-'));
    try {
      const r = run(build === 'simd' ? WASM_SIMD : WASM_NOSIMD, join(VECTORS, name), out);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expectSameOutputs(name, out, 'spectest-interp');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('a return value the vector does not expect fails the run', () => {
    const bad = mkdtempSync(join(tmpdir(), 'slb-interp-bad-'));
    try {
      mkdirSync(bad, { recursive: true });
      copyFileSync(join(VECTORS, 'nat', 'input.pcap'), join(bad, 'input.pcap'));
      const calls = readFileSync(join(VECTORS, 'nat', 'calls.txt'), 'utf8').replace(/^call config_commit (\d+) (\d+) = 0$/m, 'call config_commit $1 $2 = 7');
      writeFileSync(join(bad, 'calls.txt'), calls);
      const r = run(WASM_SIMD, bad, join(bad, 'out'));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/assert_return: expected i32:7, got i32:0/);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });
});
