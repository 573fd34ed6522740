// wasm2c (Debian's wabt) translates the engine module to C, gcc compiles it with the C harness
// written from docs/abi.md (portable/c/harness.c), and the native program must reproduce every
// conformance vector byte for byte. wabt 1.0.32's wasm2c has no SIMD: it takes
// build/sessionlb-nosimd.wasm (portable/c/build.sh refuses an empty generated header).
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, VECTORS, expectSameOutputs, vectorNames } from './helpers/vectors.js';

const missing = ['/usr/bin/wasm2c', '/usr/bin/gcc'].filter((t) => !existsSync(t));
if (missing.length) console.warn(`portable.wasm2c: SKIPPED, missing ${missing.join(', ')} (apt-get install wabt gcc; .ci/run installs them)`);

describe.skipIf(missing.length > 0)('wasm2c + gcc run the conformance vectors', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'slb-wasm2c-'));
    execFileSync('bash', [join(ROOT, 'portable', 'c', 'build.sh'), dir], { stdio: 'pipe' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('wasm2c wrote a real header and C file, and the harness was built', () => {
    const h = readFileSync(join(dir, 'sessionlb.h'), 'utf8');
    for (const e of ['abi_version', 'init', 'process', 'config_vip', 'config_hash_key', 'memory']) expect(h).toContain(`Z_sessionlbZ_${e}(`);
    expect(statSync(join(dir, 'sessionlb.c')).size).toBeGreaterThan(100_000);
    expect(existsSync(join(dir, 'harness'))).toBe(true);
  });

  it.each(vectorNames())('%s: byte-identical', (name) => {
    const out = join(dir, 'out', name);
    mkdirSync(join(dir, 'out'), { recursive: true });
    const r = spawnSync(join(dir, 'harness'), [join(VECTORS, name), out], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expectSameOutputs(name, out, 'wasm2c');
  });

  it('the harness checks return values: a wrong expected result stops it', () => {
    const bad = mkdtempSync(join(tmpdir(), 'slb-wasm2c-bad-'));
    try {
      const calls = readFileSync(join(VECTORS, 'nat', 'calls.txt'), 'utf8').replace(/^call config_commit (\d+) (\d+) = 0$/m, 'call config_commit $1 $2 = 7');
      execFileSync('bash', ['-c', `cp "$1/input.pcap" "$2/" && cat > "$2/calls.txt"`, '_', join(VECTORS, 'nat'), bad], { input: calls });
      const r = spawnSync(join(dir, 'harness'), [bad, join(bad, 'out')], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/config_commit returned 0, the vector expects 7/);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });
});
