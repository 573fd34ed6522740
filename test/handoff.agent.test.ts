// The backend side of TCP handoff (docs/handoff.md): the wire protocol, and `sessionlb agent` against
// real kernel connections. The HANDOFF messages here come from an independent source, not from the
// front end: a real client connects to a throwaway listener inside a network namespace, that
// connection's server side is read with TCP_REPAIR (dump(): both queue sequence numbers, windows,
// options, the queued request bytes) and closed silently, CRIU-style, and the agent is asked to
// rebuild it. The client must then get the server process's answer on the same connection: no new
// handshake (tcpdump + tshark: one SYN and one SYN-ACK in the whole capture, no RST, every TCP
// checksum verified good), then a second keep-alive request on it.
//
// Topology (names slbh-*, addresses in 10.95.0.0/16):
//   slbh-c<t> (client 10.95.0.1) --veth-- slbh-b<t> (backend 10.95.0.2, VIP 10.95.1.1/32 on lo,
//   agent on 10.95.2.2:9190) --veth-- the test process (10.95.2.1), which plays the front end.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnAgent, type SpawnedAgent } from '../host/handoff/agent.js';
import {
  DoneReader, FLAG_SACK, FLAG_TIMESTAMPS, FLAG_WSCALE, HANDOFF_HEADER, HandoffReader, ProtocolError, Status,
  decodeDone, decodeHandoff, encodeDone, encodeHandoff, validateHandoff, type Done, type Handoff,
} from '../host/handoff/protocol.js';
import { ROOT, tempDir } from './helpers/cli.js';
import { must, ns, removeAll, sh, sleep } from './helpers/netns.js';
import { BAD_CHECKSUM_FILTER, fields, frameCount } from './helpers/tshark.js';

// ---------------------------------------------------------------------------------------------
// (a) the protocol

function sample(over: Partial<Handoff> = {}): Handoff {
  return {
    id: 0xfedcba98, flags: FLAG_WSCALE | FLAG_SACK | FLAG_TIMESTAMPS, sndWscale: 7, rcvWscale: 9, mss: 1460,
    client: '198.51.100.7', vip: '203.0.113.10', clientPort: 54321, vipPort: 80,
    sndNxt: 0xfffffff0, rcvNxt: 0x80000001, sndWnd: 64240 * 128, rcvWnd: 65535 << 9, tsval: 0xffffffff, tsRecent: 12345,
    data: new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    ...over,
  };
}

describe('handoff protocol', () => {
  it('encodes the documented layout and decodes it back', () => {
    const h = sample();
    const b = encodeHandoff(h);
    expect(b.length).toBe(HANDOFF_HEADER + h.data.length);
    // Fixed offsets from the spec, big-endian.
    expect([b[0], b[1], b.readUInt16BE(2), b.readUInt32BE(4)]).toEqual([1, 1, 52 + h.data.length, 0xfedcba98]);
    expect([b[8], b[9], b[10], b[11], b.readUInt16BE(12), b.readUInt16BE(14)]).toEqual([7, 7, 9, 0, 1460, h.data.length]);
    expect([...b.subarray(16, 20)]).toEqual([198, 51, 100, 7]);
    expect([...b.subarray(20, 24)]).toEqual([203, 0, 113, 10]);
    expect([b.readUInt16BE(24), b.readUInt16BE(26), b.readUInt32BE(28), b.readUInt32BE(32)]).toEqual([54321, 80, 0xfffffff0, 0x80000001]);
    expect([b.readUInt32BE(36), b.readUInt32BE(40), b.readUInt32BE(44), b.readUInt32BE(48)]).toEqual([64240 * 128, 65535 << 9, 0xffffffff, 12345]);
    expect(b.subarray(52).toString()).toBe('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const d = decodeHandoff(b);
    expect({ ...d, data: Buffer.from(d.data).toString() }).toEqual({ ...h, data: Buffer.from(h.data).toString() });
    // No data, no options.
    const bare = sample({ flags: 0, sndWscale: 0, rcvWscale: 0, tsval: 0, tsRecent: 0, sndWnd: 65535, rcvWnd: 0, data: new Uint8Array(0) });
    expect(decodeHandoff(encodeHandoff(bare))).toEqual({ ...bare, data: Buffer.alloc(0) });
  });

  it('rejects malformed messages, naming the id when it can be read', () => {
    const good = encodeHandoff(sample());
    const patch = (f: (b: Buffer) => void) => {
      const b = Buffer.from(good);
      f(b);
      return b;
    };
    const reject = (b: Uint8Array, fatal: boolean, re: RegExp) => {
      let err: ProtocolError | null = null;
      try {
        decodeHandoff(b);
      } catch (e) {
        err = e as ProtocolError;
      }
      expect(err, `expected a rejection matching ${re}`).toBeInstanceOf(ProtocolError);
      expect(err!.message).toMatch(re);
      expect(err!.fatal).toBe(fatal);
      if (b.length >= 8) expect(err!.id).toBe(0xfedcba98);
    };
    reject(good.subarray(0, 3), true, /shorter than its header/);
    reject(patch((b) => (b[0] = 2)), true, /unknown version 2/);
    reject(patch((b) => (b[1] = 2)), true, /unexpected message type 2/);
    reject(patch((b) => b.writeUInt16BE(51, 2)), true, /length 51/);
    reject(good.subarray(0, good.length - 1), true, /length field says/);
    reject(Buffer.concat([good, Buffer.from([0])]), false, /length field says/);
    reject(patch((b) => b.writeUInt16BE(3, 14)), false, /n = 3/);
    reject(patch((b) => (b[11] = 1)), false, /reserved/);
    reject(patch((b) => (b[8] = 8)), false, /flags 8/);
    reject(patch((b) => (b[9] = 15)), false, /snd_wscale 15 exceeds 14/);
    reject(patch((b) => (b[10] = 15)), false, /rcv_wscale 15 exceeds 14/);
    reject(encodeHandoffUnchecked(sample({ flags: FLAG_SACK, sndWscale: 7, rcvWscale: 0, sndWnd: 1000, rcvWnd: 1000, tsval: 0, tsRecent: 0 })), false, /without window scaling/);
    reject(patch((b) => b.writeUInt16BE(87, 12)), false, /mss 87/);
    reject(patch((b) => b.writeUInt32BE(0, 16)), false, /client address 0\.0\.0\.0/);
    reject(patch((b) => b.writeUInt32BE(0xe0000001, 20)), false, /VIP 224\.0\.0\.1/);
    reject(patch((b) => b.writeUInt32BE(0xffffffff, 20)), false, /VIP 255\.255\.255\.255/);
    reject(patch((b) => b.writeUInt16BE(0, 24)), false, /client port 0/);
    reject(patch((b) => b.writeUInt16BE(0, 26)), false, /VIP port 0/);
    reject(patch((b) => b.writeUInt32BE((65535 * 128) + 1, 36)), false, /snd_wnd .* exceeds/);
    reject(patch((b) => b.writeUInt32BE((65535 * 512) + 1, 40)), false, /rcv_wnd .* exceeds/);
    reject(encodeHandoffUnchecked(sample({ flags: FLAG_WSCALE | FLAG_SACK, tsval: 5, tsRecent: 0 })), false, /without timestamps/);
    // encode refuses what decode would.
    expect(() => encodeHandoff(sample({ mss: 40 }))).toThrow(/mss 40/);
    expect(validateHandoff(sample({ clientPort: 70000 }))).toMatch(/client port/);
    expect(validateHandoff(sample())).toBeNull();
  });

  it('frames pipelined messages split anywhere; an unframeable one stops the stream', () => {
    const msgs = [sample({ id: 1 }), sample({ id: 2, data: new Uint8Array(3000).fill(65) }), sample({ id: 3, data: new Uint8Array(0) })];
    const wire = Buffer.concat([...msgs.map(encodeHandoff), patchBytes(encodeHandoff(sample({ id: 4 })), 9, 15), encodeHandoff(sample({ id: 5 }))]);
    for (const step of [1, 7, 52, 1000, wire.length]) {
      const r = new HandoffReader();
      const out: Array<number | string> = [];
      for (let i = 0; i < wire.length; i += step) {
        for (const f of r.push(wire.subarray(i, i + step))) out.push(f.ok ? f.msg.id : `err ${f.error.id}`);
      }
      expect(out, `chunks of ${step}`).toEqual([1, 2, 3, 'err 4', 5]);
      expect(r.end()).toBeNull();
    }
    const r = new HandoffReader();
    const bad = Buffer.from(encodeHandoff(sample({ id: 9 })));
    bad[0] = 7;
    expect(r.push(bad.subarray(0, 5))).toEqual([]); // the id is not readable yet
    const out = r.push(Buffer.concat([bad.subarray(5), encodeHandoff(sample({ id: 10 }))]));
    expect(out.length).toBe(1);
    expect(out[0].ok).toBe(false);
    expect(!out[0].ok && out[0].error.fatal && out[0].error.id).toBe(9);
    expect(r.push(encodeHandoff(sample({ id: 11 })))).toEqual([]);
    const partial = new HandoffReader();
    partial.push(encodeHandoff(sample({ id: 12 })).subarray(0, 30));
    expect(partial.end()?.id).toBe(12);
  });

  it('DONE: 12 bytes, round trip, strict decode', () => {
    const d: Done = { id: 0x01020304, status: Status.REPAIR_FAILED, errno: 99 };
    const b = encodeDone(d);
    expect([...b]).toEqual([1, 2, 0, 12, 1, 2, 3, 4, 2, 99, 0, 0]);
    expect(decodeDone(b)).toEqual(d);
    expect(decodeDone(encodeDone({ id: 5, status: 0, errno: 300 }))).toEqual({ id: 5, status: 0, errno: 300 & 0xff });
    expect(() => decodeDone(patchBytes(b, 0, 2))).toThrow(/unknown version/);
    expect(() => decodeDone(patchBytes(b, 1, 1))).toThrow(/type 1/);
    expect(() => decodeDone(patchBytes(b, 3, 13))).toThrow(/length 13/);
    expect(() => decodeDone(patchBytes(b, 8, 5))).toThrow(/unknown status 5/);
    expect(() => decodeDone(patchBytes(b, 10, 1))).toThrow(/reserved/);
    const r = new DoneReader();
    const two = Buffer.concat([b, encodeDone({ id: 7, status: 0, errno: 0 })]);
    expect([...r.push(two.subarray(0, 5)), ...r.push(two.subarray(5))].map((f) => (f.ok ? f.msg.id : -1))).toEqual([0x01020304, 7]);
  });
});

function patchBytes(b: Uint8Array, off: number, v: number): Buffer {
  const c = Buffer.from(b);
  c[off] = v;
  return c;
}

/** encodeHandoff without its validation (to hand decode a message encode would refuse). */
function encodeHandoffUnchecked(h: Handoff): Buffer {
  const ok = encodeHandoff({ ...h, flags: 7, sndWscale: 0, rcvWscale: 0, sndWnd: 1, rcvWnd: 1, tsval: 1, tsRecent: 1 });
  ok[8] = h.flags;
  ok[9] = h.sndWscale;
  ok[10] = h.rcvWscale;
  ok.writeUInt32BE(h.sndWnd, 36);
  ok.writeUInt32BE(h.rcvWnd, 40);
  ok.writeUInt32BE(h.tsval, 44);
  ok.writeUInt32BE(h.tsRecent, 48);
  return ok;
}

// ---------------------------------------------------------------------------------------------
// (b), (c), (d): the agent against real kernel connections (root)

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot) console.warn('handoff.agent.test: skipping the agent tests: they need root (network namespaces, TCP_REPAIR needs CAP_NET_ADMIN)');

const tag = String(process.pid % 100000);
const NSC = `slbh-c${tag}`;
const NSB = `slbh-b${tag}`;
const HOSTIF = `slbh-h${tag}`;
const CLIENT = '10.95.0.1';
const BACKEND = '10.95.0.2';
const VIP = '10.95.1.1';
const AGENT = '10.95.2.2';
const HOSTADDR = '10.95.2.1';
const ADDON = join(ROOT, 'native/build/Release/sessionlb_repair.node');

// Turns transmit checksum offload off on an interface (ETHTOOL_STXCSUM through SIOCETHTOOL), so
// frames are captured with their final checksums and tshark can verify every one.
const TXCSUM_OFF = `
import array, fcntl, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
buf = array.array('I', [0x17, 0])
fcntl.ioctl(s, 0x8946, struct.pack('16sP16x', sys.argv[1].encode(), buf.buffer_info()[0]))
`;

// The throwaway server: listens on *:80 (it keeps listening: the agent must bind VIP:80 anyway),
// waits until the whole request is queued on the accepted connection, dumps its state under
// TCP_REPAIR and closes it silently.
const DUMPER = `
import net from 'node:net';
import { createRequire } from 'node:module';
import { writeSync } from 'node:fs';
const a = createRequire(import.meta.url)(process.argv[2]);
const want = Number(process.argv[3]);
const out = (o) => writeSync(1, JSON.stringify(o) + '\\n');
const srv = net.createServer({ pauseOnConnect: true }, (s) => {
  const fd = s._handle.fd;
  const poll = () => {
    const d = a.dump(fd, false);
    if (d.inq < want) return setTimeout(poll, 10);
    // Let the kernel acknowledge the request first (the client must not retransmit into the gap).
    setTimeout(() => {
      const st = a.dump(fd, true);
      out({ ev: 'dump', ...st, data: st.data.toString('base64') });
    }, 100);
  };
  poll();
});
srv.listen(80, '0.0.0.0', () => out({ ev: 'listening' }));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

// The client: one connection, request 1, waits for "go" on stdin, request 2 on the same connection.
const CLIENT_JS = `
import net from 'node:net';
import { writeSync } from 'node:fs';
const out = (o) => writeSync(1, JSON.stringify(o) + '\\n');
const reqs = [process.argv[3], process.argv[4]];
let buf = Buffer.alloc(0), n = 0;
const s = net.connect({ host: process.argv[2], port: 80 }, () => {
  out({ ev: 'connected', localPort: s.localPort });
  s.write(reqs[0]);
});
s.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  for (;;) {
    const i = buf.indexOf('\\r\\n\\r\\n');
    if (i < 0) return;
    const head = buf.subarray(0, i).toString();
    const len = Number(/content-length: *(\\d+)/i.exec(head)?.[1] ?? 0);
    if (buf.length < i + 4 + len) return;
    const body = buf.subarray(i + 4, i + 4 + len).toString();
    buf = buf.subarray(i + 4 + len);
    n++;
    out({ ev: 'response', n, head, body, localPort: s.localPort });
    if (n === 1) process.stdin.once('data', () => s.write(reqs[1]));
    else s.end();
  }
});
s.on('end', () => out({ ev: 'end' }));
s.on('error', (e) => out({ ev: 'error', code: e.code }));
s.on('close', () => { out({ ev: 'close' }); process.exit(0); });
setTimeout(() => { out({ ev: 'timeout' }); process.exit(1); }, 20000);
`;

// restore() then dump() on the same socket, twice 200 ms apart: what the kernel holds is what was asked.
const RESTORE_CHECK = `
import { createRequire } from 'node:module';
const a = createRequire(import.meta.url)(process.argv[2]);
const vip = process.argv[3];
const data = Buffer.from('hello world');
const out = [];
for (const p of [
  { client: '10.95.0.90', clientPort: 41000, vip, vipPort: 80, sndNxt: 0xfffffff0, rcvNxt: 0xfffffffa, sndWnd: 64240 * 128, rcvWnd: 1000 << 9,
    mss: 1400, flags: 7, sndWscale: 7, rcvWscale: 9, tsval: 1000001, data },
  { client: '10.95.0.90', clientPort: 41001, vip, vipPort: 80, sndNxt: 5, rcvNxt: 7, sndWnd: 5000, rcvWnd: 6000, mss: 1000, flags: 0, data: Buffer.alloc(0) },
]) {
  const fd = a.restore(p);
  const d1 = a.dump(fd);
  await new Promise((r) => setTimeout(r, 200));
  const d2 = a.dump(fd);
  a.closeSilently(fd);
  out.push({ d1: { ...d1, data: d1.data.toString() }, d2: { ...d2, data: d2.data.toString() } });
}
console.log(JSON.stringify(out));
`;

// HANDOFF_BENCH=1: restore() alone in a loop (each closed silently, then all kept open).
const RESTORE_BENCH = `
import { createRequire } from 'node:module';
const a = createRequire(import.meta.url)(process.argv[2]);
const N = Number(process.argv[4]);
const data = Buffer.from('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');
for (const keep of [false, true]) {
  const fds = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const fd = a.restore({ client: '10.95.0.80', clientPort: 10000 + i, vip: process.argv[3], vipPort: keep ? 8082 : 8081, sndNxt: 1000, rcvNxt: 2000,
      sndWnd: 65535, rcvWnd: 65535, mss: 1460, flags: 7, sndWscale: 7, rcvWscale: 7, tsval: 12346, data });
    if (keep) fds.push(fd); else a.closeSilently(fd);
  }
  const us = Number(process.hrtime.bigint() - t0) / 1000 / N;
  console.log(\`restore(): \${N} calls, \${keep ? 'all kept open' : 'each closed silently'}: \${us.toFixed(1)} us each (\${Math.round(1e6 / us)}/s)\`);
  for (const fd of fds) a.closeSilently(fd);
}
`;

// Many connections at once: the listener accepts N, waits until each has its whole request queued,
// lets the kernel acknowledge them, then dumps every one under TCP_REPAIR and closes it silently.
const BULK_DUMPER = `
import net from 'node:net';
import { createRequire } from 'node:module';
import { writeSync } from 'node:fs';
const a = createRequire(import.meta.url)(process.argv[2]);
const want = Number(process.argv[3]), n = Number(process.argv[4]), port = Number(process.argv[5]);
const out = (o) => writeSync(1, JSON.stringify(o) + '\\n');
const fds = [];
const srv = net.createServer({ pauseOnConnect: true }, (s) => {
  fds.push(s._handle.fd);
  if (fds.length === n) poll();
});
const poll = () => {
  if (!fds.every((fd) => a.dump(fd, false).inq >= want)) return setTimeout(poll, 20);
  setTimeout(() => {
    for (const fd of fds) {
      const st = a.dump(fd, true);
      out({ ev: 'dump', ...st, data: st.data.toString('base64') });
    }
    out({ ev: 'dumped', n: fds.length });
  }, 200);
};
srv.listen({ port, host: '0.0.0.0', backlog: 2048 }, () => out({ ev: 'listening' }));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

// N connections to VIP:port, one request each (Connection: close); reports once all are answered
// and closed: how many answers came (status, X-Backend, body), and any errors.
const BULK_CLIENT = `
import net from 'node:net';
import { writeSync } from 'node:fs';
const out = (o) => writeSync(1, JSON.stringify(o) + '\\n');
const [host, port, n, req] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), process.argv[5]];
let connected = 0, closed = 0;
const answers = [], errors = [];
for (let i = 0; i < n; i++) {
  const s = net.connect({ host, port }, () => {
    s.write(req);
    if (++connected === n) out({ ev: 'connected', n });
  });
  let buf = '';
  s.setEncoding('latin1');
  s.on('data', (d) => (buf += d));
  s.on('error', (e) => errors.push(e.code));
  s.on('close', () => {
    const i = buf.indexOf('\\r\\n\\r\\n');
    if (i >= 0) answers.push({ head: buf.slice(0, i), body: buf.slice(i + 4) });
    if (++closed === n) {
      const byKey = {};
      for (const a of answers) {
        const k = a.head.split('\\r\\n')[0] + ' | ' + (/x-backend: *(\\S+)/i.exec(a.head)?.[1] ?? '-') + ' | ' + JSON.stringify(a.body);
        byKey[k] = (byKey[k] ?? 0) + 1;
      }
      out({ ev: 'done', answers: answers.length, byKey, errors });
      process.exit(0);
    }
  });
}
setTimeout(() => { out({ ev: 'timeout', connected, closed, answers: answers.length, errors }); process.exit(1); }, 60000);
`;

/** The HANDOFF that recreates a connection read with dump() (as the front end would describe it). */
function handoffFromDump(st: Record<string, any>, id: number): Handoff {
  const ts = (st.options & 1) !== 0;
  return {
    id,
    flags: (st.options & 4 ? FLAG_WSCALE : 0) | (st.options & 2 ? FLAG_SACK : 0) | (ts ? FLAG_TIMESTAMPS : 0),
    sndWscale: st.sndWscale,
    rcvWscale: st.rcvWscale,
    mss: st.sndMss + (ts ? 12 : 0),
    client: st.remote,
    vip: st.local,
    clientPort: st.remotePort,
    vipPort: st.localPort,
    sndNxt: st.sndSeq,
    rcvNxt: (st.rcvSeq - st.inq) >>> 0,
    sndWnd: st.window.sndWnd,
    rcvWnd: (st.window.rcvWup + st.window.rcvWnd - st.rcvSeq) >>> 0,
    tsval: ts ? st.tsval : 0,
    tsRecent: 0,
    data: Buffer.from(st.data, 'base64'),
  };
}

/** Open descriptors of a process (its /proc/PID/fd entries). */
function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** A child whose stdout is JSON lines; `next(ev)` waits for the next line with that ev. */
function lines(child: ChildProcess) {
  const seen: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        seen.push(JSON.parse(l));
      } catch {
        seen.push({ ev: 'text', line: l });
      }
      for (const w of waiters.splice(0)) w();
    }
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let used = 0;
  return {
    seen,
    stderr: () => stderr,
    async next(ev: string, ms = 10_000): Promise<Record<string, unknown>> {
      const t0 = Date.now();
      for (;;) {
        const i = seen.findIndex((o, k) => k >= used && o.ev === ev);
        if (i >= 0) {
          used = i + 1;
          return seen[i];
        }
        if (Date.now() - t0 > ms) throw new Error(`no "${ev}" within ${ms} ms; saw ${JSON.stringify(seen)}; stderr ${stderr}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
}

/** A connection to an agent playing the front end: send HANDOFFs, collect DONEs by id. */
class FrontEnd {
  readonly sock: net.Socket;
  private readonly reader = new DoneReader();
  readonly dones = new Map<number, Done>();
  ended = false;
  private waiters: Array<() => void> = [];
  constructor(host: string, port: number) {
    this.sock = net.connect({ host, port, noDelay: true });
    this.sock.on('data', (d) => {
      for (const f of this.reader.push(d)) {
        if (!f.ok) throw f.error;
        this.dones.set(f.msg.id, f.msg);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.sock.on('end', () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w();
    });
    this.sock.on('error', () => {});
  }
  ready(): Promise<void> {
    return new Promise((r, j) => {
      this.sock.once('connect', () => r());
      this.sock.once('error', j);
    });
  }
  async done(id: number, ms = 10_000): Promise<Done> {
    const t0 = Date.now();
    while (!this.dones.has(id)) {
      if (Date.now() - t0 > ms) throw new Error(`no DONE for ${id} within ${ms} ms`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return this.dones.get(id)!;
  }
  async closedByPeer(ms = 5000): Promise<boolean> {
    const t0 = Date.now();
    while (!this.ended && Date.now() - t0 < ms) await new Promise<void>((r) => {
      this.waiters.push(r);
      setTimeout(r, 100);
    });
    return this.ended;
  }
}

/** A HANDOFF for a connection to nobody (a client address with no host behind it). */
function phantom(id: number, port: number, vipPort = 8080, over: Partial<Handoff> = {}): Handoff {
  return {
    id, flags: FLAG_WSCALE | FLAG_SACK | FLAG_TIMESTAMPS, sndWscale: 7, rcvWscale: 7, mss: 1460,
    client: '10.95.0.70', vip: VIP, clientPort: port, vipPort, sndNxt: 1000 + id, rcvNxt: 5000, sndWnd: 64240, rcvWnd: 64256,
    tsval: 100, tsRecent: 0, data: new Uint8Array(0), ...over,
  };
}

describe.skipIf(!isRoot)('sessionlb agent (root, network namespaces, real TCP_REPAIR)', () => {
  const dir = isRoot ? tempDir('handoff-agent') : '';
  const children: ChildProcess[] = [];
  let agent: SpawnedAgent;
  const agentLog: string[] = [];

  beforeAll(async () => {
    removeAll([NSC, NSB], [HOSTIF]);
    must(['ip', 'netns', 'add', NSC]);
    must(['ip', 'netns', 'add', NSB]);
    must(['ip', 'link', 'add', 'slbh-x' + tag, 'netns', NSC, 'type', 'veth', 'peer', 'name', 'slbh-y' + tag, 'netns', NSB]);
    must(['ip', '-n', NSC, 'link', 'set', 'slbh-x' + tag, 'name', 'eth0']);
    must(['ip', '-n', NSB, 'link', 'set', 'slbh-y' + tag, 'name', 'eth0']);
    must(['ip', 'link', 'add', HOSTIF, 'type', 'veth', 'peer', 'name', 'slbh-z' + tag, 'netns', NSB]);
    must(['ip', '-n', NSB, 'link', 'set', 'slbh-z' + tag, 'name', 'eth1']);
    for (const n of [NSC, NSB]) {
      must(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
      must(['ip', '-n', n, 'link', 'set', 'eth0', 'up']);
    }
    must(['ip', '-n', NSC, 'addr', 'add', `${CLIENT}/24`, 'dev', 'eth0']);
    must(['ip', '-n', NSC, 'route', 'add', `${VIP}/32`, 'via', BACKEND]);
    must(['ip', '-n', NSB, 'addr', 'add', `${BACKEND}/24`, 'dev', 'eth0']);
    // The VIP as a DR backend holds it: on lo, never answering ARP for it, never announcing it.
    must(['ip', '-n', NSB, 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
    must(ns(NSB, 'sysctl', '-qw', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2'));
    must(['ip', '-n', NSB, 'addr', 'add', `${AGENT}/24`, 'dev', 'eth1']);
    must(['ip', '-n', NSB, 'link', 'set', 'eth1', 'up']);
    must(['ip', 'addr', 'add', `${HOSTADDR}/24`, 'dev', HOSTIF]);
    must(['ip', 'link', 'set', HOSTIF, 'up']);
    for (const n of [NSC, NSB]) must(ns(n, 'python3', '-c', TXCSUM_OFF, 'eth0'));
    writeFileSync(join(dir, 'dumper.mjs'), DUMPER);
    writeFileSync(join(dir, 'client.mjs'), CLIENT_JS);
    // --max-pending 16: the burst below must wait for the server process, not be refused.
    agent = await spawnAgent({ netns: NSB, host: AGENT, port: 9190, id: 'b1', maxPending: 16, logLevel: 'debug', onLog: (l) => agentLog.push(l) });
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await agent?.stop();
    writeFileSync(join(dir, 'agent.log'), agentLog.join('\n') + '\n');
    removeAll([NSC, NSB], [HOSTIF]);
  });

  const start = (n: string, cmd: string[]) => {
    const c = spawn('ip', ['netns', 'exec', n, ...cmd], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(c);
    return c;
  };

  it('restore() builds the socket asked for: read back with dump() (sequence numbers across 2^32, queue, windows, MSS, options, millisecond TSval clock)', () => {
    writeFileSync(join(dir, 'restore-check.mjs'), RESTORE_CHECK);
    const r = sh(ns(NSB, process.execPath, join(dir, 'restore-check.mjs'), ADDON, VIP));
    expect(r.code, r.err).toBe(0);
    const [full, bare] = JSON.parse(r.out) as Array<{ d1: Record<string, any>; d2: Record<string, any> }>;
    const d = full.d1;
    expect([d.state, d.local, d.localPort, d.remote, d.remotePort]).toEqual([1, VIP, 80, '10.95.0.90', 41000]);
    expect([d.sndSeq, d.rcvSeq, d.outq, d.inq, d.data]).toEqual([0xfffffff0, (0xfffffffa + 11) >>> 0, 0, 11, 'hello world']);
    expect(d.window).toEqual({ sndWl1: 0xfffffffa, sndWnd: 64240 * 128, maxWindow: 64240 * 128, rcvWnd: 1000 << 9, rcvWup: (0xfffffffa + 11) >>> 0 });
    expect([d.options & 7, d.sndWscale, d.rcvWscale]).toEqual([7, 7, 9]);
    expect(d.sndMss).toBe(1400 - 12); // the client's MSS less the timestamp option, not Linux's default 536
    // TSval: continues from the one given (rounded up to even), on the millisecond clock.
    expect(d.tsval - 1000002).toBeGreaterThanOrEqual(0);
    expect(d.tsval - 1000002).toBeLessThan(100);
    expect(full.d2.tsval - d.tsval).toBeGreaterThanOrEqual(150);
    expect(full.d2.tsval - d.tsval).toBeLessThan(2000);
    const b = bare.d1;
    expect([b.sndSeq, b.rcvSeq, b.inq, b.options & 7, b.window.sndWnd, b.window.rcvWnd]).toEqual([5, 7, 0, 0, 5000, 6000]);
    // Without timestamps Linux's repair path still leaves room for the option when net.ipv4.tcp_timestamps
    // is on (the header length is set at connect from the sysctl): 12 bytes less, never more.
    expect([1000, 1000 - 12]).toContain(b.sndMss);
  });

  it('takes over a live client connection: the server process answers on it, no new handshake, keep-alive works', async () => {
    const pcap = join(dir, 'client.pcap');
    const dump = spawn('ip', ['netns', 'exec', NSC, 'tcpdump', '-i', 'eth0', '-s', '0', '-B', '8192', '-U', '--immediate-mode', '-n', '-w', pcap, 'tcp port 80'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(dump);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      dump.stderr!.on('data', (d) => {
        err += d;
        if (err.includes('listening on')) resolve();
      });
      dump.once('exit', (code) => reject(new Error(`tcpdump exited (${code}): ${err}`)));
    });

    const req1 = 'GET /whoami HTTP/1.1\r\nHost: handoff.test\r\nUser-Agent: slbh\r\n\r\n';
    const req2 = 'GET / HTTP/1.1\r\nHost: handoff.test\r\n\r\n';
    const dumper = start(NSB, [process.execPath, join(dir, 'dumper.mjs'), ADDON, String(req1.length)]);
    const d = lines(dumper);
    await d.next('listening');
    const clientProc = start(NSC, [process.execPath, join(dir, 'client.mjs'), VIP, req1, req2]);
    const c = lines(clientProc);
    const conn = await c.next('connected');
    const st = (await d.next('dump')) as Record<string, any>;

    // The dumped connection is the client's, fully acknowledged, the whole request queued.
    expect(st.state).toBe(1);
    expect([st.local, st.localPort, st.remote, st.remotePort]).toEqual([VIP, 80, CLIENT, conn.localPort]);
    expect(st.outq).toBe(0);
    expect(Buffer.from(st.data, 'base64').toString()).toBe(req1);
    expect(st.options & 7).toBe(7); // Linux client: timestamps, SACK, window scaling
    const ts = (st.options & 1) !== 0;
    const h: Handoff = {
      id: 0xdeadbeef,
      flags: (st.options & 4 ? FLAG_WSCALE : 0) | (st.options & 2 ? FLAG_SACK : 0) | (ts ? FLAG_TIMESTAMPS : 0),
      sndWscale: st.sndWscale,
      rcvWscale: st.rcvWscale,
      mss: st.sndMss + (ts ? 12 : 0),
      client: st.remote,
      vip: st.local,
      clientPort: st.remotePort,
      vipPort: st.localPort,
      sndNxt: st.sndSeq,
      rcvNxt: (st.rcvSeq - st.inq) >>> 0,
      sndWnd: st.window.sndWnd,
      rcvWnd: (st.window.rcvWup + st.window.rcvWnd - st.rcvSeq) >>> 0,
      tsval: ts ? st.tsval : 0,
      tsRecent: 0,
      data: Buffer.from(st.data, 'base64'),
    };
    expect(h.mss).toBe(1460); // the client's MSS over a 1500-byte veth

    const fe = new FrontEnd(AGENT, 9190);
    await fe.ready();
    fe.sock.write(encodeHandoff(h));
    expect(await fe.done(0xdeadbeef)).toEqual({ id: 0xdeadbeef, status: Status.OK, errno: 0 });

    const r1 = await c.next('response');
    expect(r1.head).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(r1.head).toMatch(/\r\nX-Backend: b1\r\n/i);
    expect(r1.body).toBe(`${CLIENT}\n`); // /whoami: the server process sees the real client
    expect(r1.localPort).toBe(conn.localPort);

    // The same connection again while it lives: the 4-tuple is taken (connect: EADDRNOTAVAIL).
    fe.sock.write(encodeHandoff({ ...h, id: 0xdeadbef0 }));
    expect(await fe.done(0xdeadbef0)).toEqual({ id: 0xdeadbef0, status: Status.REPAIR_FAILED, errno: 99 });

    clientProc.stdin!.write('go\n');
    const r2 = await c.next('response');
    expect(r2.head).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(r2.head).toMatch(/\r\nX-Backend: b1\r\n/i);
    expect(r2.body).toBe('b1\n');
    expect(r2.localPort).toBe(conn.localPort);
    await c.next('close');
    expect(c.seen.filter((o) => o.ev === 'error')).toEqual([]);
    fe.sock.end();
    dumper.stdin!.end(); // the throwaway listener stayed up all along

    await sleep(500); // the FIN exchange, and tcpdump's reads
    dump.kill('SIGINT');
    await new Promise((r) => dump.once('exit', r));

    // The capture, verified by tshark.
    // One SYN and one SYN-ACK: the handshake before the takeover, none after.
    const syn = fields(pcap, ['ip.src'], { filter: 'tcp.flags.syn == 1' });
    expect(syn.map((r) => r[0])).toEqual([CLIENT, VIP]);
    expect(frameCount(pcap, { filter: 'tcp.flags.syn == 1 && tcp.flags.ack == 1' })).toBe(1);
    expect(frameCount(pcap, { filter: 'tcp.flags.reset == 1' })).toBe(0);
    expect(frameCount(pcap, { filter: BAD_CHECKSUM_FILTER })).toBe(0);
    const all = frameCount(pcap);
    expect(frameCount(pcap, { filter: 'tcp.checksum.status == "Good"' })).toBe(all); // every one verified, none offloaded
    // Both answers came from the VIP on the client's one connection; both requests left it.
    const http = fields(pcap, ['ip.src', 'tcp.srcport', 'tcp.dstport', 'http.response.code', 'http.request.uri'], { filter: 'http' });
    expect(http.map((r) => r.join(' ').trim())).toEqual([
      `${CLIENT} ${conn.localPort} 80  /whoami`,
      `${VIP} 80 ${conn.localPort} 200`,
      `${CLIENT} ${conn.localPort} 80  /`,
      `${VIP} 80 ${conn.localPort} 200`,
    ]);
    // The server's TSvals never go back across the takeover (the client would drop them: PAWS).
    const tsv = fields(pcap, ['tcp.options.timestamp.tsval'], { filter: `ip.src == ${VIP} && tcp.options.timestamp.tsval` }).map((r) => Number(r[0]));
    for (let i = 1; i < tsv.length; i++) expect((tsv[i] - tsv[i - 1]) | 0).toBeGreaterThanOrEqual(0);
    expect(frameCount(pcap, { filter: 'tcp.analysis.flags && !tcp.analysis.window_update' })).toBe(0);
  });

  it('answers failures with the right status: malformed, cannot bind/route the VIP, bad version', async () => {
    const fe = new FrontEnd(AGENT, 9190);
    await fe.ready();
    // Well framed but invalid (window shift 15): status 1, the connection stays usable.
    const bad = encodeHandoff(phantom(101, 31001));
    bad[10] = 15;
    fe.sock.write(bad);
    expect(await fe.done(101)).toEqual({ id: 101, status: Status.MALFORMED, errno: 0 });
    // A VIP this backend does not hold: bind succeeds (IP_FREEBIND) but no route from it (ENETUNREACH).
    fe.sock.write(encodeHandoff(phantom(102, 31002, 80, { vip: '10.95.9.9' })));
    expect(await fe.done(102)).toEqual({ id: 102, status: Status.REPAIR_FAILED, errno: 101 });
    // A loopback VIP towards an outside client: the kernel refuses the route (EINVAL).
    fe.sock.write(encodeHandoff(phantom(103, 31003, 80, { vip: '127.0.0.1' })));
    expect(await fe.done(103)).toEqual({ id: 103, status: Status.REPAIR_FAILED, errno: 22 });
    // Still serving on this connection.
    fe.sock.write(encodeHandoff(phantom(104, 31004)));
    expect(await fe.done(104)).toEqual({ id: 104, status: Status.OK, errno: 0 });
    expect(fe.ended).toBe(false);
    fe.sock.end();

    // An unknown version: status 1 with the id, then the agent closes the connection.
    const fe2 = new FrontEnd(AGENT, 9190);
    await fe2.ready();
    const v2 = encodeHandoff(phantom(105, 31005));
    v2[0] = 2;
    fe2.sock.write(v2);
    expect(await fe2.done(105)).toEqual({ id: 105, status: Status.MALFORMED, errno: 0 });
    expect(await fe2.closedByPeer()).toBe(true);
  });

  it('busy at --max, no server process while it restarts, then serves again', async () => {
    const log: string[] = [];
    const small = await spawnAgent({ netns: NSB, host: AGENT, port: 9191, id: 'b2', max: 1, onLog: (l) => log.push(l) });
    try {
      const fe = new FrontEnd(AGENT, 9191);
      await fe.ready();
      fe.sock.write(encodeHandoff(phantom(201, 32001)));
      expect(await fe.done(201)).toEqual({ id: 201, status: Status.OK, errno: 0 });
      fe.sock.write(encodeHandoff(phantom(202, 32002)));
      expect(await fe.done(202)).toEqual({ id: 202, status: Status.BUSY, errno: 0 });
      // Kill the server process: the agent answers 3 until it has started a new one.
      const pid = Number(JSON.parse(log.find((l) => l.includes('"server process ready"'))!).pid);
      process.kill(pid, 'SIGKILL');
      const t0 = Date.now();
      while (!log.some((l) => l.includes('"server process exited"'))) {
        if (Date.now() - t0 > 5000) throw new Error('the agent did not notice its server process exit');
        await sleep(10);
      }
      fe.sock.write(encodeHandoff(phantom(203, 32003)));
      expect(await fe.done(203)).toEqual({ id: 203, status: Status.NO_SERVER, errno: 0 });
      while (log.filter((l) => l.includes('"server process ready"')).length < 2) {
        if (Date.now() - t0 > 10_000) throw new Error('the agent did not restart its server process');
        await sleep(20);
      }
      fe.sock.write(encodeHandoff(phantom(204, 32004)));
      expect(await fe.done(204)).toEqual({ id: 204, status: Status.OK, errno: 0 });
      fe.sock.end();
    } finally {
      const counters = await small.stop();
      expect(counters).toMatchObject({ handoffs: 4, ok: 2, busy: 1, noServer: 1, serverStarts: 2, serverExits: 2, open: 0 });
    }
  });

  it('1000 real connections handed off pipelined on one front-end connection: every client answered, no descriptor leaks, closes counted', async () => {
    const N = Number(process.env.HANDOFF_MANY ?? 1000);
    const req = 'GET /whoami HTTP/1.1\r\nHost: handoff.test\r\nConnection: close\r\n\r\n';
    writeFileSync(join(dir, 'bulk-dumper.mjs'), BULK_DUMPER);
    writeFileSync(join(dir, 'bulk-client.mjs'), BULK_CLIENT);
    const log: string[] = [];
    // --max N: the one handoff after the N must find room again, so the server process's close
    // reports must have brought the agent's count of open connections back down.
    const many = await spawnAgent({ netns: NSB, host: AGENT, port: 9192, id: 'b3', max: N, onLog: (l) => log.push(l) });
    try {
      const agentPid = many.child.pid!;
      const serverPid = Number(JSON.parse(log.find((l) => l.includes('"server process ready"'))!).pid);
      const fe = new FrontEnd(AGENT, 9192);
      await fe.ready();
      await sleep(100); // accepted by the agent
      const before = { agent: fdCount(agentPid), server: fdCount(serverPid) };
      const dumper = start(NSB, [process.execPath, join(dir, 'bulk-dumper.mjs'), ADDON, String(req.length), String(N), '81']);
      const d = lines(dumper);
      await d.next('listening');
      const client = start(NSC, [process.execPath, join(dir, 'bulk-client.mjs'), VIP, '81', String(N), req]);
      const c = lines(client);
      await c.next('connected', 30_000);
      await d.next('dumped', 30_000);
      const dumps = d.seen.filter((o) => o.ev === 'dump') as Array<Record<string, any>>;
      expect(dumps.length).toBe(N);
      const wire = Buffer.concat(dumps.map((st, i) => encodeHandoff(handoffFromDump(st, 50_000 + i))));
      const t0 = performance.now();
      fe.sock.write(wire);
      for (let i = 0; i < N; i++) expect(await fe.done(50_000 + i, 30_000)).toEqual({ id: 50_000 + i, status: Status.OK, errno: 0 });
      const ms = performance.now() - t0;
      const res = (await c.next('done', 30_000)) as { answers: number; byKey: Record<string, number>; errors: string[] };
      console.log(`handoff agent: ${N} real connections handed off pipelined in ${ms.toFixed(0)} ms (${Math.round((N * 1000) / ms)}/s to the last DONE); all answered`);
      expect(res.errors).toEqual([]);
      expect(res.byKey).toEqual({ [`HTTP/1.1 200 OK | b3 | ${JSON.stringify(CLIENT + '\n')}`]: N });
      dumper.stdin!.end();
      // Every connection closed (Connection: close): the agent and the server process hold what they held before.
      await sleep(300);
      expect({ agent: fdCount(agentPid), server: fdCount(serverPid) }).toEqual(before);
      fe.sock.write(encodeHandoff(phantom(59_999, 33_001)));
      expect(await fe.done(59_999)).toEqual({ id: 59_999, status: Status.OK, errno: 0 });
      fe.sock.end();
    } catch (e) {
      await many.stop();
      throw e;
    }
    const counters = await many.stop();
    expect(counters).toMatchObject({ handoffs: N + 1, ok: N + 1, busy: 0, noServer: 0, repairFailed: 0, serverStarts: 1, pending: 0 });
  });

  it.runIf(process.env.HANDOFF_BENCH === '1')('restore() alone: cost per call (HANDOFF_BENCH=1)', () => {
    writeFileSync(join(dir, 'restore-bench.mjs'), RESTORE_BENCH);
    const r = sh(ns(NSB, process.execPath, join(dir, 'restore-bench.mjs'), ADDON, VIP, process.env.HANDOFF_BENCH_N ?? '5000'), { timeout: 120_000 });
    console.log(r.out.trim());
    expect(r.code, r.err).toBe(0);
  });

  it('pipelined burst while the server process is stopped: the queue fills, back-pressure, every HANDOFF answered once; DONE 3 after 2 s without room; cost per handoff', async () => {
    const N = Number(process.env.HANDOFF_BURST ?? 500);
    const serverPid = Number(JSON.parse(agentLog.filter((l) => l.includes('"server process ready"')).at(-1)!).pid);
    const fe = new FrontEnd(AGENT, 9190);
    await fe.ready();
    const held = new TextEncoder().encode('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    const burst = (base: number, port: number, n: number) =>
      Buffer.concat(Array.from({ length: n }, (_, i) => encodeHandoff(phantom(base + i, port + i, 8080, { client: '10.95.0.71', data: i % 2 ? held : new Uint8Array(0) }))));
    // The server process stopped (SIGSTOP): its datagram queue fills, the rest wait in the agent
    // (--max-pending 16), then unread on the front end's connection. Resumed within 2 s: all taken.
    process.kill(serverPid, 'SIGSTOP');
    fe.sock.write(burst(1000, 20000, N));
    await sleep(400);
    const whileStopped = fe.dones.size;
    expect(whileStopped).toBeGreaterThan(0);
    expect(whileStopped).toBeLessThan(N);
    process.kill(serverPid, 'SIGCONT');
    for (let i = 0; i < N; i++) expect((await fe.done(1000 + i, 30_000)).status).toBe(Status.OK);
    expect(fe.dones.size).toBe(N);
    // Stopped for longer than 2 s: what waited that long in the agent is answered 3 (closed
    // silently), the rest is served once the server process runs again.
    const M = 300;
    process.kill(serverPid, 'SIGSTOP');
    fe.sock.write(burst(3000, 40000, M));
    await sleep(2600);
    process.kill(serverPid, 'SIGCONT');
    const st = [];
    for (let i = 0; i < M; i++) st.push((await fe.done(3000 + i, 30_000)).status);
    const refused = st.filter((x) => x === Status.NO_SERVER).length;
    expect(refused).toBeGreaterThan(0);
    expect(st.filter((x) => x === Status.OK).length).toBe(M - refused);
    // Pipelined at full speed.
    const t0 = performance.now();
    fe.sock.write(burst(5000, 50000, N));
    for (let i = 0; i < N; i++) expect((await fe.done(5000 + i, 30_000)).status).toBe(Status.OK);
    const ms = performance.now() - t0;
    expect(fe.dones.size).toBe(2 * N + M);
    fe.sock.end();
    console.log(`handoff agent: ${N} pipelined handoffs in ${ms.toFixed(0)} ms (${Math.round((N * 1000) / ms)}/s, restore + pass to the server process + DONE)`);
    const counters = await agent.stop();
    writeFileSync(join(dir, 'agent.counters.json'), JSON.stringify(counters, null, 2));
    // 1 takeover + 1 duplicate + 4 on the failure connection + 1 bad version + the bursts.
    expect(counters).toMatchObject({ handoffs: 7 + 2 * N + M, ok: 2 + 2 * N + M - refused, malformed: 2, repairFailed: 3, noServer: refused, busy: 0, serverStarts: 1, pending: 0 });
    expect(counters!.paused).toBeGreaterThan(0); // the burst did wait for the server process
    console.log(`handoff agent: restore() alone ${(counters!.restoreMicros / (counters!.ok + counters!.repairFailed)).toFixed(1)} us per call`);
  });
});
