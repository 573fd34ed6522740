// Conformance vectors (fixtures/vectors, docs/abi.md "Conformance vectors"): the Node host still
// produces every checked-in vector byte for byte (so the vectors stay true: after an intended change
// of the engine or the host, `npm run vectors` regenerates them), and the runtime-neutral harness
// (portable/js/harness.mjs), driving the module from the vector files alone, reproduces every
// expected output in Node with both builds.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SPECS, VECTORS_DIR, makeVector, vectorFiles } from '../tools/vectors/make.js';
// @ts-expect-error plain JavaScript module without types
import { runVector } from '../portable/js/harness.mjs';

const root = join(import.meta.dirname, '..');
const wasm = (simd: boolean) => new WebAssembly.Module(readFileSync(join(root, 'build', simd ? 'sessionlb.wasm' : 'sessionlb-nosimd.wasm')));
const load = (name: string) => ({
  calls: readFileSync(join(VECTORS_DIR, name, 'calls.txt'), 'utf8'),
  input: new Uint8Array(readFileSync(join(VECTORS_DIR, name, 'input.pcap'))),
});
const expected = (name: string) => vectorFiles(join(VECTORS_DIR, name, 'expected'));
const state = (name: string) => {
  const lines = readFileSync(join(VECTORS_DIR, name, 'expected', 'state.txt'), 'utf8').trim().split('\n').map((l) => l.split(' '));
  const row = (k: string) => lines.find((l) => l[0] === k)!.slice(1).map(Number);
  return { counters: row('counters'), drops: row('drops'), passes: row('passes') };
};

describe('conformance vectors', () => {
  it('the folder has every vector and stays small', () => {
    const names = SPECS.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['nat', 'dr', 'ipip', 'gre', 'gue', 'ipv6-nat', 'maglev-change', 'rtsp-session', 'rtsp-nat', 'malformed']));
    let total = 0;
    for (const n of names) for (const f of vectorFiles(join(VECTORS_DIR, n))) total += readFileSync(join(VECTORS_DIR, n, f)).length;
    expect(total).toBeLessThan(2 << 20);
  });

  it.each(SPECS.map((s) => [s.name, s] as const))('the Node host reproduces %s byte for byte', async (name, spec) => {
    const tmp = mkdtempSync(join(tmpdir(), 'slb-vec-test-'));
    try {
      await makeVector(spec, join(tmp, name));
      const files = vectorFiles(join(tmp, name));
      expect(files).toEqual(vectorFiles(join(VECTORS_DIR, name)));
      for (const f of files) {
        const a = readFileSync(join(tmp, name, f));
        const b = readFileSync(join(VECTORS_DIR, name, f));
        expect(a.equals(b), `${name}/${f} differs from the checked-in vector: run "npm run vectors" if the change is intended`).toBe(true);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it.each(SPECS.flatMap((s) => [[s.name, true], [s.name, false]] as const))('the neutral harness reproduces %s (SIMD build: %s)', (name, simd) => {
    const { files } = runVector({ wasm: wasm(simd), ...load(name) });
    expect(Object.keys(files).sort()).toEqual(expected(name).sort());
    for (const f of expected(name)) {
      const want = readFileSync(join(VECTORS_DIR, name, 'expected', f));
      expect(Buffer.from(files[f]).equals(want), `${name}/${f}`).toBe(true);
    }
  });

  it('the vectors exercise what they are named after', () => {
    const C = { txBackend: 2, txClient: 3, encapsulated: 19, natRewrites: 20, resteered: 11, sessionsStarted: 26, expectationsMatched: 33, rtspMessages: 36, rtspNatRewrites: 47 };
    for (const n of ['nat', 'ipv6-nat', 'maglev-change', 'rtsp-session']) expect(state(n).counters[C.natRewrites], n).toBeGreaterThan(0);
    for (const n of ['ipip', 'gre', 'gue']) expect(state(n).counters[C.encapsulated], n).toBe(state(n).counters[C.txBackend]);
    const rtsp = state('rtsp-session').counters;
    expect(rtsp[C.sessionsStarted]).toBeGreaterThanOrEqual(3);
    expect(rtsp[C.expectationsMatched]).toBeGreaterThanOrEqual(rtsp[C.sessionsStarted]);
    expect(rtsp[C.rtspMessages]).toBeGreaterThan(10);
    expect(readFileSync(join(VECTORS_DIR, 'rtsp-session', 'calls.txt'), 'utf8')).toMatch(/call config_vip_sessions 0 2 /);
    // RTSP NAT: the backend's address in its messages reaches the client as the VIP's.
    expect(state('rtsp-nat').counters[C.rtspNatRewrites]).toBeGreaterThan(0);
    const client = readFileSync(join(VECTORS_DIR, 'rtsp-nat', 'expected', 'client.pcap')).toString('latin1');
    const input = readFileSync(join(VECTORS_DIR, 'rtsp-nat', 'input.pcap')).toString('latin1');
    const bases = (s: string) => (s.match(/Content-Base: rtsp:\/\/[0-9.]+/g) ?? []).sort();
    expect(bases(input).every((x) => x.endsWith('10.0.1.100'))).toBe(true);
    expect(bases(client).filter((x) => x.endsWith('10.0.0.100')).length).toBeGreaterThan(0);
    // Maglev change: backend 1 goes down between the batches and gets no packet after it.
    const calls = readFileSync(join(VECTORS_DIR, 'maglev-change', 'calls.txt'), 'utf8').split('\n');
    const change = calls.findIndex((l) => l.startsWith('call set_backend_state 1 2 '));
    expect(change).toBeGreaterThan(calls.indexOf('batch 256'));
    expect(calls.slice(calls.indexOf('batch 256'), change).some((l) => l.startsWith('write ring '))).toBe(true);
    const verdicts = readFileSync(join(VECTORS_DIR, 'maglev-change', 'expected', 'packets.txt'), 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
    expect(verdicts.slice(0, 256).some(([v, , e]) => v === 1 && e === 1)).toBe(true);
    expect(verdicts.slice(256).some(([v, , e]) => v === 1 && e === 1)).toBe(false);
    // Malformed: every drop and pass reason the parser gives for a bad frame.
    const m = state('malformed');
    for (const r of [1, 3, 4, 6, 8]) expect(m.drops[r], `drop reason ${r}`).toBeGreaterThan(0);
    for (const r of [1, 2, 3]) expect(m.passes[r], `pass reason ${r}`).toBeGreaterThan(0);
  });

  it('a harness that gets one byte of the configuration wrong does not match (the comparison can fail)', () => {
    const v = load('maglev-change');
    // The first Maglev table with every slot on backend 0.
    const calls = v.calls.replace(/^write ring 0 ([0-9a-f]+)$/m, (_l, h: string) => `write ring 0 ${'0'.repeat(h.length)}`);
    expect(calls).not.toBe(v.calls);
    const { files } = runVector({ wasm: wasm(true), calls, input: v.input });
    const want = readFileSync(join(VECTORS_DIR, 'maglev-change', 'expected', 'packets.txt'));
    expect(Buffer.from(files['packets.txt']).equals(want)).toBe(false);
  });
});
