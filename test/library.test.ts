// The library API (`import { Engine } from 'sessionlb'`): the README's embedding example run as a
// user would run it; processBatch against the CLI's replay of the same capture (counters, loads
// and the output frames byte for byte, frames read by an independent pcap parser); typed events;
// the session table snapshot against the real RTSP capture's tshark-derived truth; and the
// browser stand-ins (ui/shims) that let the page reuse host modules, against Node's own.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { isIP as nodeIsIP } from 'node:net';
import { join, posix } from 'node:path';
import pcapp from 'pcap-parser';
import { describe, expect, it } from 'vitest';
import { Engine, loadConfig, parseConfig, replayFile, type EngineEvent, type FrameInput } from '../host/index.js';
import { isIP as shimIsIP } from '../ui/shims/net.js';
import { Buffer as ShimBuffer } from '../ui/shims/buffer.js';
import * as shimPath from '../ui/shims/path.js';
import * as shimFs from '../ui/shims/fs.js';
import { ROOT, tempDir } from './helpers/cli.js';

const RTSP = join(ROOT, '..', 'shared', 'fixtures', 'rtsp');

interface Rec { sec: number; usec: number; caplen: number; wire: number; data: Buffer }

/** Frames of a classic pcap, by pcap-parser (not our reader). */
function readPcap(path: string): Promise<{ linktype: number; records: Rec[] }> {
  return new Promise((done, fail) => {
    const p = pcapp.parse(path);
    let linktype = 1;
    let hdr: any = null;
    const records: Rec[] = [];
    p.on('globalHeader', (h: any) => (linktype = h.linkLayerType));
    p.on('packetHeader', (h: any) => (hdr = h));
    p.on('packetData', (d: Buffer) => records.push({ sec: hdr.timestampSeconds, usec: hdr.timestampMicroseconds, caplen: hdr.capturedLength, wire: hdr.originalLength, data: Buffer.from(d) }));
    p.on('error', fail);
    p.on('end', () => done({ linktype, records }));
  });
}

const frames = (c: { linktype: number; records: Rec[] }): FrameInput[] =>
  c.records.map((r) => ({ data: r.data, link: c.linktype, tsSec: r.sec, tsNsec: r.usec * 1000, wirelen: r.wire }));

describe('README embedding example', () => {
  it('runs as written, importing the package by its name, and its output is right', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const m = readme.match(/<!-- example: library[^>]*-->\s*```ts\n([\s\S]*?)```/);
    expect(m, 'README has the library example block').not.toBeNull();
    const dir = tempDir('library-readme');
    const file = join(dir, 'example.ts'); // inside the package: 'sessionlb' resolves to this package
    writeFileSync(file, m![1]);
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), file], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => l.split(' '));
    const backends: Record<string, string> = { b1: '10.0.1.1', b2: '10.0.1.2' };
    const [verdict, id, dst, tx] = lines[0];
    expect(verdict).toBe('backend');
    expect(Object.keys(backends)).toContain(id);
    expect(dst).toBe(backends[id]); // the destination was rewritten to the chosen backend's address
    expect(tx).toBe('1');
    expect(lines[1]).toEqual(['flow-closed', '192.0.2.7', '40000', id, '1']);
    expect(lines[2]).toEqual(['0', 'sessions']);
  });
});

describe('Engine.processBatch', () => {
  it('gives what the CLI replay gives on fixtures/sample.pcap: counters, loads, and the frames each backend gets', async () => {
    const config = loadConfig(join(ROOT, 'fixtures', 'default.json'));
    const out = tempDir('library-sample');
    const cli = await replayFile(join(ROOT, 'fixtures', 'sample.pcap'), config, { outDir: out });
    const input = await readPcap(join(ROOT, 'fixtures', 'sample.pcap'));
    const engine = new Engine(config);
    const results = engine.processBatch(frames(input));
    expect(results).toHaveLength(input.records.length);
    const events = engine.finish(Math.max(...input.records.map((r) => r.sec)));
    const counters = engine.counters();
    const { batches: _a, ...mine } = counters;
    const { batches: _b, ...theirs } = cli.report.counters;
    expect(mine).toEqual(theirs);
    expect(engine.drops()).toEqual(cli.report.dropped);
    expect(engine.passes()).toEqual(cli.report.passedBy);
    for (const [id, load] of Object.entries(engine.loads())) {
      const b = cli.report.backends[id];
      expect(load).toEqual({ packets: b.packets, bytes: b.bytes, flows: b.flows, replyPackets: b.replyPackets, replyBytes: b.replyBytes, resteeredIn: b.resteeredIn });
    }
    // every frame the CLI wrote to b<k>.pcap is, in order, a frame processBatch sent to b<k>
    for (const id of Object.keys(cli.report.backends)) {
      const written = (await readPcap(join(out, `${id}.pcap`))).records.map((r) => r.data.toString('hex'));
      const mineTo = results.filter((r) => r.verdict === 'backend' && r.backend === id).map((r) => Buffer.from(r.frame).toString('hex'));
      expect(mineTo.length).toBeGreaterThan(0);
      expect(mineTo).toEqual(written);
    }
    const toClient = results.filter((r) => r.verdict === 'client').map((r) => Buffer.from(r.frame).toString('hex'));
    expect(toClient).toEqual((await readPcap(join(out, 'client.pcap'))).records.map((r) => r.data.toString('hex')));
    // events: every flow created is closed once, at the latest by finish()
    const closed = events.filter((e) => e.type === 'flow-closed');
    expect(closed.length).toBe(counters['flows-created']);
    expect(closed.reduce((s, e) => s + (e.type === 'flow-closed' ? e.packets : 0), 0)).toBe(counters['tx-backend'] + counters['tx-client']);
    expect(engine.ex.flow_count()).toBe(0);
  });

  it('reports drops and passes with their reasons, and leaves dropped frames untouched', () => {
    const engine = new Engine(parseConfig({ vips: [{ address: '10.0.0.100', ports: [80], backends: [{ id: 'a', address: '10.0.1.1' }] }] }));
    const ip = (dst: number[], dport: number) => {
      const h = [0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 7, ...dst, 0x9c, 0x40, dport >> 8, dport & 0xff, 0, 8, 0, 0];
      return Uint8Array.from(h);
    };
    const [noService, notVip, badLink] = engine.processBatch([
      { data: ip([10, 0, 0, 100], 53), link: 101 }, // UDP to a VIP port that is not configured
      { data: ip([10, 9, 9, 9], 80), link: 101 }, // not for a VIP
      { data: ip([10, 0, 0, 100], 80), link: 147 }, // a link type the engine does not read
    ]);
    expect([noService.verdict, noService.reason, noService.backend]).toEqual(['drop', 'no-service', null]);
    expect([notVip.verdict, notVip.reason]).toEqual(['pass', 'not-vip']);
    expect([badLink.verdict, badLink.reason]).toEqual(['drop', 'linktype']);
    expect(Array.from(noService.frame)).toEqual(Array.from(ip([10, 0, 0, 100], 53)));
    expect(engine.drops()).toMatchObject({ 'no-service': 1, linktype: 1 });
    expect(engine.passes()).toMatchObject({ 'not-vip': 1 });
  });
});

describe('Engine.snapshotSessions', () => {
  it('on the real concurrent RTSP capture: the table holds the sessions tshark saw, with their clients, on the backends their flows reached', async () => {
    const truth = JSON.parse(readFileSync(join(RTSP, 'b_concurrent_udp.truth.json'), 'utf8')) as { sessions: { session: string; client_ip: string }[] };
    const config = parseConfig({
      vips: [{ address: '10.77.0.1', policy: 'session', rtspPorts: [8554], ringSize: 251,
        backends: [{ id: 'b1', address: '10.77.1.1' }, { id: 'b2', address: '10.77.1.2' }, { id: 'b3', address: '10.77.1.3' }] }],
    });
    const input = await readPcap(join(RTSP, 'b_concurrent_udp.pcap'));
    const all = frames(input);
    const engine = new Engine(config);
    const seen = new Map<string, { client: string; backend: string; states: Set<string> }>();
    const events: EngineEvent[] = [];
    let maxActive = 0;
    for (let i = 0; i < all.length; i += 100) {
      engine.processBatch(all.slice(i, i + 100));
      events.push(...engine.readEvents());
      const snap = engine.snapshotSessions();
      const live = snap.filter((s) => s.state === 'active' || s.state === 'closing');
      expect(live.length).toBe(engine.ex.session_count());
      maxActive = Math.max(maxActive, live.length);
      for (const s of snap) {
        expect(s.idLength).toBe(s.id.length); // these ids are 16 characters: whole in the record
        const prev = seen.get(s.id);
        if (prev) {
          expect([prev.client, prev.backend]).toEqual([s.client, s.backendId]);
          prev.states.add(s.state);
        } else seen.set(s.id, { client: s.client, backend: s.backendId, states: new Set([s.state]) });
      }
    }
    expect(maxActive).toBeGreaterThan(1); // the clients overlap
    expect(new Map([...seen].map(([id, s]) => [id, s.client]))).toEqual(new Map(truth.sessions.map((s) => [s.session, s.client_ip])));
    events.push(...engine.finish(Math.max(...input.records.map((r) => r.sec))));
    expect(engine.snapshotSessions().filter((s) => s.state === 'active' || s.state === 'closing')).toEqual([]);
    // started events name the same sessions and backends; each session's flows all reached its backend
    const started = events.filter((e) => e.type === 'session-started');
    expect(new Map(started.map((e) => [e.id, e.backendId]))).toEqual(new Map([...seen].map(([id, s]) => [id, s.backend])));
    const ended = events.filter((e) => e.type === 'session-ended');
    expect(ended.map((e) => e.reason)).toEqual(Array(truth.sessions.length).fill('teardown'));
    const indexToId = new Map(started.map((e) => [e.index, e.id]));
    let sessionFlows = 0;
    for (const e of events) {
      if (e.type !== 'flow-closed' || !e.session || e.reasonName === 'unused-expectation') continue;
      sessionFlows++;
      expect(e.backendId).toBe(seen.get(indexToId.get(e.session - 1)!)!.backend);
    }
    expect(sessionFlows).toBe(truth.sessions.length * 5); // control + 2 tracks x (RTP, RTCP)
  });
});

describe("the browser stand-ins for node: modules (ui/shims) answer as Node's do", () => {
  it('isIP', () => {
    const cases = [
      '10.0.0.1', '255.255.255.255', '0.0.0.0', '256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', '1..3.4', 'a.b.c.d', '',
      '::', '::1', 'fe80::1', 'fd00::1:2', '2001:db8::', '2001:db8:0:0:0:0:0:1', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1::2::3', ':1::2', '1::2:', '12345::1', 'g::1', '::ffff:1.2.3.4', '::ffff:1.2.3.256', '1:2:3:4:5:6:1.2.3.4',
      '1:2:3:4:5:6:7:1.2.3.4', 'fe80::1%eth0', 'fe80::1%', '::1%1', '1.2.3.4%eth0', 'FE80::ABCD', '[::1]', '::ffff:10.0.0.1', '1::1.2.3.4', '::1.2.3.4',
    ];
    for (const c of cases) expect(shimIsIP(c), c).toBe(nodeIsIP(c));
  });

  it('Buffer (utf8 bytes, hex, latin1)', () => {
    for (const s of ['b1', 'backend-ü', '日本', 'a😀b']) expect(Array.from(ShimBuffer.from(s, 'utf8'))).toEqual(Array.from(Buffer.from(s, 'utf8')));
    const bytes = Uint8Array.from([0, 1, 0x7f, 0x80, 0xff, 0x10]);
    expect(ShimBuffer.from(bytes).toString('hex')).toBe(Buffer.from(bytes).toString('hex'));
    expect(ShimBuffer.from(bytes).toString('latin1')).toBe(Buffer.from(bytes).toString('latin1'));
  });

  it('path', () => {
    for (const a of [['out', 'b1.pcap'], ['/a/b', '../c'], ['a', '', 'b/'], ['/x', './y', 'z']]) expect(shimPath.join(...a)).toBe(posix.join(...a));
    for (const p of ['/a/b/c.js', '/a', 'a/b', '/']) expect(shimPath.dirname(p)).toBe(posix.dirname(p));
    for (const a of [['/a/b', '..', '..'], ['/a', 'b', '../c'], ['/r', '/abs', 'x']]) expect(shimPath.resolve(...a)).toBe(posix.resolve(...a));
  });

  it('fs: reads a file registered in memory exactly as the capture reader asks', () => {
    const data = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    shimFs.putFile('/captures/x.pcap', data);
    const fd = shimFs.openSync('/captures/x.pcap', 'r');
    expect(shimFs.fstatSync(fd).size).toBe(1000);
    const buf = new Uint8Array(64);
    expect(shimFs.readSync(fd, buf, 8, 32, 990)).toBe(10); // short read at the end
    expect(Array.from(buf.subarray(8, 18))).toEqual(Array.from(data.subarray(990)));
    expect(shimFs.readSync(fd, buf, 0, 16, 1000)).toBe(0);
    shimFs.closeSync(fd);
    expect(() => shimFs.readSync(fd, buf, 0, 1, 0)).toThrow(/EBADF/);
    expect(() => shimFs.openSync('/captures/missing.pcap')).toThrow(/ENOENT/);
    expect(() => shimFs.readFileSync('/etc/passwd')).toThrow(/not available/);
  });
});
