#!/usr/bin/env node
// Runs a conformance vector in wabt's interpreter. wasm-interp itself loads one module and passes
// no memory contents or arguments in, so this uses its sibling spectest-interp (the same wabt
// interpreter, driven by a spec-test command file): the engine module is loaded as is and
// registered as "engine"; a small driver module (WAT, compiled with wat2wasm) imports the engine's
// memory and pointer exports, holds the vector's input packets and memory writes in passive data
// segments, places packets into descriptors (memory.init) and prints every result through the
// spec-test host's print_i64. Each line of calls.txt becomes one invoke command (an assert_return
// where the vector names the return value); this script then turns the printed numbers back into the
// vector's output files.
//
//   spectest.mjs WASM VECTOR_DIR OUT_DIR      writes the outputs; exits 1 on any failure
//   spectest.mjs WASM VECTOR_DIR --bench N    prints {"packets","seconds","wallSeconds"}: seconds is
//                                             the run time of N interpreter runs minus that of the
//                                             same runs without the process() calls
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const SPECTEST = process.env.SPECTEST_INTERP ?? '/usr/bin/spectest-interp';
const WAT2WASM = process.env.WAT2WASM ?? '/usr/bin/wat2wasm';

function watString(bytes) {
  let s = '';
  for (const b of bytes) s += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : '\\' + b.toString(16).padStart(2, '0');
  return s;
}

function driverWat(input, writes) {
  return `(module
  (import "engine" "memory" (memory 0))
  (import "engine" "desc_ptr" (func $desc_ptr (result i32)))
  (import "engine" "headroom" (func $headroom (result i32)))
  (import "engine" "arena_ptr" (func $arena_ptr (result i32)))
  (import "engine" "scratch_ptr" (func $scratch_ptr (result i32)))
  (import "engine" "ring_ptr" (func $ring_ptr (result i32)))
  (import "engine" "event_head_ptr" (func $event_head_ptr (result i32)))
  (import "engine" "event_capacity" (func $event_capacity (result i32)))
  (import "engine" "events_ptr" (func $events_ptr (result i32)))
  (import "engine" "counters_ptr" (func $counters_ptr (result i32)))
  (import "engine" "drops_ptr" (func $drops_ptr (result i32)))
  (import "engine" "passes_ptr" (func $passes_ptr (result i32)))
  (import "engine" "backend_stats_ptr" (func $backend_stats_ptr (result i32)))
  (import "spectest" "print_i64" (func $p64 (param i64)))
  (data $in "${watString(input)}")
  (data $w "${watString(writes)}")
  (global $cursor (mut i32) (i32.const 0))
  ;; host writes: region 0 scratch, 1 Maglev tables
  (func (export "write") (param $region i32) (param $off i32) (param $src i32) (param $len i32)
    (memory.init $w
      (i32.add (if (result i32) (local.get $region) (then (call $ring_ptr)) (else (call $scratch_ptr))) (local.get $off))
      (local.get $src) (local.get $len)))
  (func (export "begin") (global.set $cursor (call $arena_ptr)))
  ;; input packet at file offset src -> descriptor i, frame after headroom() bytes in the arena
  (func (export "put") (param $i i32) (param $src i32) (param $caplen i32) (param $wirelen i32) (param $link i32) (param $sec i32) (param $nsec i32)
    (local $data i32) (local $p i32)
    (local.set $data (i32.add (global.get $cursor) (call $headroom)))
    (memory.init $in (local.get $data) (local.get $src) (local.get $caplen))
    (global.set $cursor (i32.and (i32.add (i32.add (local.get $data) (local.get $caplen)) (i32.const 7)) (i32.const -8)))
    (local.set $p (i32.add (call $desc_ptr) (i32.mul (local.get $i) (i32.const 32))))
    (i32.store (local.get $p) (local.get $data))
    (i32.store offset=4 (local.get $p) (local.get $caplen))
    (i32.store offset=8 (local.get $p) (local.get $wirelen))
    (i32.store16 offset=12 (local.get $p) (i32.const 0))
    (i32.store16 offset=14 (local.get $p) (local.get $link))
    (i32.store offset=16 (local.get $p) (local.get $sec))
    (i32.store offset=20 (local.get $p) (local.get $nsec))
    (i64.store offset=24 (local.get $p) (i64.const 0)))
  ;; after process(n): per descriptor bytes 24..31; for verdicts 1 and 2 also bytes 0..23 and the frame
  (func (export "emit") (param $n i32)
    (local $i i32) (local $p i32) (local $v i32) (local $data i32) (local $end i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $p (i32.add (call $desc_ptr) (i32.mul (local.get $i) (i32.const 32))))
      (call $p64 (i64.load offset=24 (local.get $p)))
      (local.set $v (i32.load8_u offset=24 (local.get $p)))
      (if (i32.or (i32.eq (local.get $v) (i32.const 1)) (i32.eq (local.get $v) (i32.const 2))) (then
        (call $p64 (i64.load (local.get $p)))
        (call $p64 (i64.load offset=8 (local.get $p)))
        (call $p64 (i64.load offset=16 (local.get $p)))
        (local.set $data (i32.load (local.get $p)))
        (local.set $end (i32.add (local.get $data) (i32.load offset=4 (local.get $p))))
        (block $f (loop $w
          (br_if $f (i32.ge_u (local.get $data) (local.get $end)))
          (call $p64 (i64.load (local.get $data)))
          (local.set $data (i32.add (local.get $data) (i32.const 8)))
          (br $w)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))
  ;; consume every pending event: prints the count, then 8 x i64 per record
  (func (export "events")
    (local $hp i32) (local $head i32) (local $tail i32) (local $r i32) (local $k i32)
    (local.set $hp (call $event_head_ptr))
    (local.set $head (i32.load (local.get $hp)))
    (local.set $tail (i32.load offset=4 (local.get $hp)))
    (call $p64 (i64.extend_i32_u (i32.sub (local.get $head) (local.get $tail))))
    (block $done (loop $next
      (br_if $done (i32.eq (local.get $tail) (local.get $head)))
      (local.set $r (i32.add (call $events_ptr)
        (i32.mul (i32.and (local.get $tail) (i32.sub (call $event_capacity) (i32.const 1))) (i32.const 64))))
      (local.set $k (i32.const 0))
      (block $f (loop $w
        (br_if $f (i32.ge_u (local.get $k) (i32.const 64)))
        (call $p64 (i64.load (i32.add (local.get $r) (local.get $k))))
        (local.set $k (i32.add (local.get $k) (i32.const 8)))
        (br $w)))
      (local.set $tail (i32.add (local.get $tail) (i32.const 1)))
      (br $next)))
    (i32.store offset=4 (local.get $hp) (local.get $tail)))
  (func $dump (param $p i32) (param $n i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (call $p64 (i64.load (local.get $p)))
      (local.set $p (i32.add (local.get $p) (i32.const 8)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next))))
  ;; counters, drops, passes, then 8 stats per backend
  (func (export "state") (param $backends i32)
    (call $dump (call $counters_ptr) (i32.const 64))
    (call $dump (call $drops_ptr) (i32.const 32))
    (call $dump (call $passes_ptr) (i32.const 16))
    (call $dump (call $backend_stats_ptr) (i32.mul (local.get $backends) (i32.const 8)))))
`;
}

function parsePcap(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, true);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error('input.pcap is not a little-endian classic pcap');
  const records = [];
  for (let off = 24; off + 16 <= bytes.length; ) {
    const caplen = dv.getUint32(off + 8, true);
    records.push({ tsSec: dv.getUint32(off, true), tsFrac: dv.getUint32(off + 4, true), caplen, wirelen: dv.getUint32(off + 12, true), off: off + 16 });
    off += 16 + caplen;
  }
  return { nanos: magic === 0xa1b23c4d, linktype: dv.getUint32(20, true), records };
}

const i32 = (v) => ({ type: 'i32', value: String(Number(v) >>> 0) });

/** Translates the vector into driver.wasm + commands.json in `work`; returns what decoding needs. */
export function translate(wasmPath, vectorDir, work, opts = {}) {
  const calls = readFileSync(join(vectorDir, 'calls.txt'), 'utf8');
  const input = readFileSync(join(vectorDir, 'input.pcap'));
  const pcap = parsePcap(input);
  const writes = [];
  let wlen = 0;
  const commands = [
    { type: 'module', line: 0, name: '$engine', filename: resolve(wasmPath) },
    { type: 'register', line: 0, name: '$engine', as: 'engine' },
    { type: 'module', line: 0, name: '$drv', filename: 'driver.wasm' },
  ];
  const steps = []; // what each printing invoke returns, in order
  const baseline = []; // bench: the process() commands, left out of baseline.json
  let next = 0;
  let backends = 0;
  const invoke = (module, field, args) => ({ type: 'invoke', module, field, args });
  calls.split('\n').forEach((raw, ln) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const w = line.split(/\s+/);
    const at = ln + 1;
    if (w[0] === 'call') {
      const eq = w.indexOf('=');
      const args = (eq < 0 ? w.slice(2) : w.slice(2, eq)).map((a) => (w[1] === 'config_hash_key' ? { type: 'i64', value: a } : i32(a)));
      if (w[1] === 'config_commit') backends = Number(w[3]);
      const action = invoke('$engine', w[1], args);
      commands.push(eq < 0 ? { type: 'action', line: at, action, expected: [] } : { type: 'assert_return', line: at, action, expected: [i32(w[eq + 1])] });
    } else if (w[0] === 'write') {
      const bytes = Buffer.from(w[3], 'hex');
      writes.push(bytes);
      commands.push({ type: 'action', line: at, action: invoke('$drv', 'write', [i32(w[1] === 'ring' ? 1 : 0), i32(w[2]), i32(wlen), i32(bytes.length)]), expected: [] });
      wlen += bytes.length;
    } else if (w[0] === 'batch') {
      const n = Number(w[1]);
      commands.push({ type: 'action', line: at, action: invoke('$drv', 'begin', []), expected: [] });
      for (let i = 0; i < n; i++) {
        const r = pcap.records[next + i];
        if (!r) throw new Error(`calls.txt line ${at}: the input has only ${pcap.records.length} packets`);
        commands.push({ type: 'action', line: at, action: invoke('$drv', 'put', [i32(i), i32(r.off), i32(r.caplen), i32(r.wirelen), i32(pcap.linktype), i32(r.tsSec), i32(pcap.nanos ? r.tsFrac : r.tsFrac * 1000)]), expected: [] });
      }
      commands.push({ type: 'assert_return', line: at, action: invoke('$engine', 'process', [i32(n)]), expected: [i32(n)] });
      if (opts.bench) baseline.push(commands.length - 1);
      else commands.push({ type: 'action', line: at, action: invoke('$drv', 'emit', [i32(n)]), expected: [] });
      steps.push({ kind: 'emit', n });
      next += n;
    } else if (w[0] === 'events') {
      commands.push({ type: 'action', line: at, action: invoke('$drv', 'events', []), expected: [] });
      steps.push({ kind: 'events' });
    } else if (w[0] === 'end') {
      commands.push({ type: 'action', line: at, action: invoke('$drv', 'state', [i32(backends)]), expected: [] });
      steps.push({ kind: 'state' });
      for (const f of ['flow_count', 'session_count']) commands.push({ type: 'action', line: at, action: invoke('$engine', f, []), expected: [{ type: 'i32' }] });
    } else throw new Error(`calls.txt line ${at}: unknown step ${w[0]}`);
  });
  if (next !== pcap.records.length) throw new Error(`only ${next} of ${pcap.records.length} packets are in batches`);
  writeFileSync(join(work, 'driver.wat'), driverWat(input, Buffer.concat(writes)));
  execFileSync(WAT2WASM, [join(work, 'driver.wat'), '-o', join(work, 'driver.wasm')]);
  writeFileSync(join(work, 'commands.json'), JSON.stringify({ source_filename: 'commands.wast', commands }));
  if (opts.bench) {
    // The same commands without process(): their difference in run time is the engine's.
    const skip = new Set(baseline);
    writeFileSync(join(work, 'baseline.json'), JSON.stringify({ source_filename: 'baseline.wast', commands: commands.filter((_, i) => !skip.has(i)) }));
  }
  return { steps, backends, nanos: pcap.nanos, packets: next };
}

/** Runs spectest-interp in `work`; returns its stdout (throws on any failed command). */
export function interpret(work, file = 'commands.json') {
  const r = spawnSync(SPECTEST, [file], { cwd: work, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`spectest-interp failed (${r.status}): ${(r.stdout + r.stderr).split('\n').filter((l) => /assert|error|trap|fail/i.test(l)).slice(0, 5).join('\n')}`);
  return r.stdout;
}

/** Turns the interpreter's printed values back into the vector's output files. */
export function decode(stdout, plan) {
  const values = [];
  const finals = [];
  for (const line of stdout.split('\n')) {
    const m = /^called host spectest\.print_i64\(i64:(\d+)\)/.exec(line);
    if (m) values.push(BigInt(m[1]));
    const c = /^(flow_count|session_count)\(\) => i32:(\d+)$/.exec(line);
    if (c) finals.push(`${c[1]} ${c[2]}`);
  }
  let k = 0;
  const take = () => {
    if (k >= values.length) throw new Error('the interpreter printed fewer values than expected');
    return values[k++];
  };
  const pcapHeader = () => {
    const h = Buffer.alloc(24);
    h.writeUInt32LE(plan.nanos ? 0xa1b23c4d : 0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(262144, 16);
    h.writeUInt32LE(1, 20);
    return [h];
  };
  const outs = Array.from({ length: plan.backends }, pcapHeader);
  const client = pcapHeader();
  const packets = [];
  const events = [];
  let state = '';
  const lo = (v) => Number(v & 0xffffffffn);
  const hi = (v) => Number(v >> 32n);
  for (const s of plan.steps) {
    if (s.kind === 'emit') {
      for (let i = 0; i < s.n; i++) {
        const tail = take();
        const verdict = Number(tail & 0xffn);
        const egress = Number((tail >> 16n) & 0xffffn);
        packets.push(`${verdict} ${Number((tail >> 8n) & 0xffn)} ${egress} ${hi(tail)}`);
        if (verdict !== 1 && verdict !== 2) continue;
        const w0 = take();
        const w1 = take();
        const w2 = take();
        const caplen = hi(w0);
        const frame = Buffer.alloc(Math.ceil(caplen / 8) * 8);
        for (let o = 0; o < frame.length; o += 8) frame.writeBigUInt64LE(take(), o);
        const rh = Buffer.alloc(16);
        rh.writeUInt32LE(lo(w2), 0);
        rh.writeUInt32LE(plan.nanos ? hi(w2) : Math.floor(hi(w2) / 1000), 4);
        rh.writeUInt32LE(caplen, 8);
        rh.writeUInt32LE(lo(w1), 12);
        const out = verdict === 2 ? client : outs[egress];
        if (!out) throw new Error(`egress ${egress} is not a backend`);
        out.push(rh, frame.subarray(0, caplen));
      }
    } else if (s.kind === 'events') {
      const n = Number(take());
      for (let i = 0; i < n; i++) {
        const rec = Buffer.alloc(64);
        for (let o = 0; o < 64; o += 8) rec.writeBigUInt64LE(take(), o);
        events.push(rec.toString('hex'));
      }
    } else {
      const row = (n) => Array.from({ length: n }, () => take().toString()).join(' ');
      const lines = [`counters ${row(64)}`, `drops ${row(32)}`, `passes ${row(16)}`];
      for (let b = 0; b < plan.backends; b++) lines.push(`backend ${b} ${row(8)}`);
      if (finals.length !== 2) throw new Error('flow_count and session_count were not printed');
      state = [...lines, ...finals].join('\n') + '\n';
    }
  }
  if (k !== values.length) throw new Error(`${values.length - k} printed values left over`);
  const files = {};
  outs.forEach((o, b) => (files[`backend-${b}.pcap`] = Buffer.concat(o)));
  files['client.pcap'] = Buffer.concat(client);
  files['packets.txt'] = Buffer.from(packets.join('\n') + '\n');
  files['events.txt'] = Buffer.from(events.length ? events.join('\n') + '\n' : '');
  files['state.txt'] = Buffer.from(state);
  return files;
}

function main() {
  const [wasm, dir, out, count] = process.argv.slice(2);
  if (!wasm || !dir || !out) {
    process.stderr.write('usage: spectest.mjs WASM VECTOR_DIR OUT_DIR | spectest.mjs WASM VECTOR_DIR --bench N\n');
    process.exit(2);
  }
  const work = mkdtempSync(join(tmpdir(), 'slb-interp-'));
  try {
    const bench = out === '--bench';
    const plan = translate(wasm, dir, work, { bench });
    if (bench) {
      // Engine time = (a run with process() calls) - (the same run without them), both timed
      // as whole interpreter processes, alternated; outputs are not printed in this mode.
      const n = Number(count ?? 1);
      let with_ = 0n;
      let without = 0n;
      for (let i = 0; i < n; i++) {
        let t0 = process.hrtime.bigint();
        interpret(work, 'commands.json');
        with_ += process.hrtime.bigint() - t0;
        t0 = process.hrtime.bigint();
        interpret(work, 'baseline.json');
        without += process.hrtime.bigint() - t0;
      }
      process.stdout.write(JSON.stringify({ packets: plan.packets * n, seconds: Math.max(0, Number(with_ - without) / 1e9), wallSeconds: Number(with_) / 1e9 }) + '\n');
      return;
    }
    const files = decode(interpret(work), plan);
    mkdirSync(out, { recursive: true });
    for (const [name, bytes] of Object.entries(files)) writeFileSync(join(out, name), bytes);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  try {
    main();
  } catch (e) {
    process.stderr.write(`spectest.mjs: ${e?.message ?? e}\n`);
    process.exit(1);
  }
}
