#!/usr/bin/env node
// Command-line wrapper of harness.mjs for runtimes with a Node-compatible file API (Node, Bun):
//   run.mjs WASM VECTOR_DIR OUT_DIR        writes the vector's outputs into OUT_DIR
//   run.mjs WASM VECTOR_DIR --bench N      runs the vector once untimed, then N times; prints
//                                          {"packets","seconds"} of the process() calls
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runVector } from './harness.mjs';

const [wasmPath, dir, out, count] = process.argv.slice(2);
if (!wasmPath || !dir || !out) {
  process.stderr.write('usage: run.mjs WASM VECTOR_DIR OUT_DIR | run.mjs WASM VECTOR_DIR --bench N\n');
  process.exit(2);
}
const wasm = new WebAssembly.Module(readFileSync(wasmPath));
const vector = { wasm, calls: readFileSync(join(dir, 'calls.txt'), 'utf8'), input: new Uint8Array(readFileSync(join(dir, 'input.pcap'))) };
if (out === '--bench') {
  const n = Number(count ?? 1);
  let packets = 0;
  let ms = 0;
  runVector(vector); // warm-up, not timed (lets a JIT tier up)
  for (let i = 0; i < n; i++) {
    const r = runVector(vector, { now: () => performance.now() });
    packets += r.packets;
    ms += r.processMs;
  }
  process.stdout.write(JSON.stringify({ packets, seconds: ms / 1000 }) + '\n');
} else {
  const { files } = runVector(vector);
  mkdirSync(out, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(out, name), bytes);
}
