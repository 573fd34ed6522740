// Runtime-neutral conformance harness: drives the sessionlb engine module from a vector's files
// alone (calls.txt and input.pcap, docs/abi.md "Conformance vectors") and returns the output files
// (backend-K.pcap, client.pcap, packets.txt, events.txt, state.txt) as bytes. It uses only
// WebAssembly, typed arrays and TextEncoder/TextDecoder: no file system, no Node API, so the same
// file runs in Node, Bun, a browser or any other JavaScript engine; the caller reads the files.

const enc = new TextEncoder();

function fail(msg) {
  throw new Error(`vector: ${msg}`);
}

function hexToBytes(h) {
  if (h.length % 2) fail(`odd hex length ${h.length}`);
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) {
    const v = parseInt(h.substr(2 * i, 2), 16);
    if (Number.isNaN(v)) fail(`bad hex "${h.substr(2 * i, 2)}"`);
    out[i] = v;
  }
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
function bytesToHex(b) {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i]];
  return s;
}

/** Reads a little-endian classic pcap: { nanos, linktype, records: [{ tsSec, tsFrac, caplen, wirelen, off }] }. */
export function parsePcap(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, true);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) fail('input.pcap is not a little-endian classic pcap');
  const records = [];
  let off = 24;
  while (off + 16 <= bytes.length) {
    const caplen = dv.getUint32(off + 8, true);
    if (off + 16 + caplen > bytes.length) fail('input.pcap: last record cut short');
    records.push({ tsSec: dv.getUint32(off, true), tsFrac: dv.getUint32(off + 4, true), caplen, wirelen: dv.getUint32(off + 12, true), off: off + 16 });
    off += 16 + caplen;
  }
  return { nanos: magic === 0xa1b23c4d, linktype: dv.getUint32(20, true), records };
}

class PcapOut {
  constructor(nanos) {
    this.nanos = nanos;
    this.chunks = [];
    this.size = 0;
    const h = new Uint8Array(24);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, nanos ? 0xa1b23c4d : 0xa1b2c3d4, true);
    dv.setUint16(4, 2, true);
    dv.setUint16(6, 4, true);
    dv.setUint32(16, 262144, true);
    dv.setUint32(20, 1, true);
    this.push(h);
  }
  push(b) {
    this.chunks.push(b);
    this.size += b.length;
  }
  record(frame, wirelen, tsSec, tsNsec) {
    const h = new Uint8Array(16);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, tsSec, true);
    dv.setUint32(4, this.nanos ? tsNsec : Math.floor(tsNsec / 1000), true);
    dv.setUint32(8, frame.length, true);
    dv.setUint32(12, wirelen, true);
    this.push(h);
    this.push(frame.slice());
  }
  bytes() {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

/**
 * Runs one vector. `wasm`: the engine module (bytes or a compiled WebAssembly.Module); `calls`:
 * calls.txt as text; `input`: input.pcap as bytes. Options: `now()` (a clock in ms, to time
 * process() calls), `repeat`. Returns { files: { name: Uint8Array }, packets, processMs }.
 */
export function runVector({ wasm, calls, input }, opts = {}) {
  const module = wasm instanceof WebAssembly.Module ? wasm : new WebAssembly.Module(wasm);
  const instance = new WebAssembly.Instance(module, {});
  const ex = instance.exports;
  const pcap = parsePcap(input);
  let mem = null; // views are made after init: memory never grows after it
  let dv = null;
  const refresh = () => {
    mem = new Uint8Array(ex.memory.buffer);
    dv = new DataView(ex.memory.buffer);
  };
  refresh();
  let nextPacket = 0;
  let backends = 0;
  let outputs = null;
  let client = null;
  const packetLines = [];
  const eventLines = [];
  let state = null;
  const now = opts.now ?? null;
  let processMs = 0;

  const lines = calls.split('\n');
  for (let ln = 0; ln < lines.length; ln++) {
    const line = lines[ln].trim();
    if (line === '' || line.startsWith('#')) continue;
    const words = line.split(/\s+/);
    const where = `calls.txt line ${ln + 1}`;
    switch (words[0]) {
      case 'call': {
        const name = words[1];
        const eq = words.indexOf('=');
        const args = (eq < 0 ? words.slice(2) : words.slice(2, eq)).map((a) => a);
        const f = ex[name];
        if (typeof f !== 'function') fail(`${where}: the module has no export "${name}"`);
        // config_hash_key takes two i64 (BigInt in JavaScript); every other argument is an i32.
        const typed = name === 'config_hash_key' ? args.map((a) => BigInt.asIntN(64, BigInt(a))) : args.map((a) => Number(a) | 0);
        const r = f(...typed);
        if (name === 'init') refresh();
        if (name === 'config_commit') {
          backends = Number(args[1]);
          outputs = Array.from({ length: backends }, () => new PcapOut(pcap.nanos));
          client = new PcapOut(pcap.nanos);
        }
        if (eq >= 0) {
          const want = Number(words[eq + 1]);
          const got = typeof r === 'bigint' ? Number(BigInt.asUintN(32, r)) : r >>> 0;
          if (got !== want) fail(`${where}: ${name} returned ${got}, the vector expects ${want}`);
        }
        break;
      }
      case 'write': {
        const base = words[1] === 'scratch' ? ex.scratch_ptr() : words[1] === 'ring' ? ex.ring_ptr() : fail(`${where}: unknown region ${words[1]}`);
        mem.set(hexToBytes(words[3]), base + Number(words[2]));
        break;
      }
      case 'batch': {
        const n = Number(words[1]);
        if (!outputs) fail(`${where}: batch before config_commit`);
        if (n > ex.batch_size()) fail(`${where}: ${n} packets exceed batch_size()`);
        const d = ex.desc_ptr();
        const hr = ex.headroom();
        let cursor = ex.arena_ptr();
        const end = cursor + ex.arena_size();
        for (let i = 0; i < n; i++) {
          const r = pcap.records[nextPacket + i];
          if (!r) fail(`${where}: the input has only ${pcap.records.length} packets`);
          const data = cursor + hr;
          if (data + r.caplen > end) fail(`${where}: the batch does not fit the arena`);
          mem.set(input.subarray(r.off, r.off + r.caplen), data);
          cursor = (data + r.caplen + 7) & ~7;
          const p = d + 32 * i;
          dv.setUint32(p, data, true);
          dv.setUint32(p + 4, r.caplen, true);
          dv.setUint32(p + 8, r.wirelen, true);
          dv.setUint16(p + 12, 0, true);
          dv.setUint16(p + 14, pcap.linktype, true);
          dv.setUint32(p + 16, r.tsSec, true);
          dv.setUint32(p + 20, pcap.nanos ? r.tsFrac : r.tsFrac * 1000, true);
          dv.setUint32(p + 24, 0, true);
          dv.setUint32(p + 28, 0, true);
        }
        const t0 = now ? now() : 0;
        const got = ex.process(n);
        if (now) processMs += now() - t0;
        if (got !== n) fail(`${where}: process(${n}) returned ${got}`);
        for (let i = 0; i < n; i++) {
          const p = d + 32 * i;
          const verdict = mem[p + 24];
          const egress = dv.getUint16(p + 26, true);
          packetLines.push(`${verdict} ${mem[p + 25]} ${egress} ${dv.getUint32(p + 28, true)}`);
          if (verdict !== 1 && verdict !== 2) continue;
          const data = dv.getUint32(p, true);
          const frame = mem.subarray(data, data + dv.getUint32(p + 4, true));
          const out = verdict === 2 ? client : outputs[egress] ?? fail(`${where}: egress ${egress} is not a backend`);
          out.record(frame, dv.getUint32(p + 8, true), dv.getUint32(p + 16, true), dv.getUint32(p + 20, true));
        }
        nextPacket += n;
        break;
      }
      case 'events': {
        const hp = ex.event_head_ptr();
        const head = dv.getUint32(hp, true);
        let tail = dv.getUint32(hp + 4, true);
        const cap = ex.event_capacity();
        const base = ex.events_ptr();
        while (tail !== head) {
          const p = base + (tail & (cap - 1)) * 64;
          eventLines.push(bytesToHex(mem.subarray(p, p + 64)));
          tail = (tail + 1) >>> 0;
        }
        dv.setUint32(hp + 4, tail, true);
        break;
      }
      case 'end': {
        const u64s = (p, n) => Array.from({ length: n }, (_, i) => dv.getBigUint64(p + 8 * i, true).toString()).join(' ');
        const s = [`counters ${u64s(ex.counters_ptr(), 64)}`, `drops ${u64s(ex.drops_ptr(), 32)}`, `passes ${u64s(ex.passes_ptr(), 16)}`];
        for (let k = 0; k < backends; k++) s.push(`backend ${k} ${u64s(ex.backend_stats_ptr() + 64 * k, 8)}`);
        s.push(`flow_count ${ex.flow_count()}`, `session_count ${ex.session_count()}`);
        state = s.join('\n') + '\n';
        break;
      }
      default:
        fail(`${where}: unknown step "${words[0]}"`);
    }
  }
  if (state === null) fail('calls.txt has no "end"');
  if (nextPacket !== pcap.records.length) fail(`only ${nextPacket} of ${pcap.records.length} input packets were processed`);
  const files = {};
  outputs.forEach((o, k) => (files[`backend-${k}.pcap`] = o.bytes()));
  files['client.pcap'] = client.bytes();
  files['packets.txt'] = enc.encode(packetLines.join('\n') + '\n');
  files['events.txt'] = enc.encode(eventLines.length ? eventLines.join('\n') + '\n' : '');
  files['state.txt'] = enc.encode(state);
  return { files, packets: nextPacket, processMs };
}
