// sessionlb live, TCP splicing with delayed binding, in the lab (`sessionlb lab up --method
// splice`, docs/lab.md, docs/splice.md): real curl clients (one behind the NAT box) and real
// nginx and GStreamer RTSP servers. Oracles: nginx's X-Backend and /whoami, ffmpeg's own account
// of the media, sessionlb's final counters.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabSummary } from '../host/lab/lab.js';
import { countBy, httpBackends, labDown, labUnsupported, labUp, nonZero, nsRun, nsRunAsync, rtspClient, rtspSessionsWithCaptures, testPrefix } from './helpers/lab.js';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = testPrefix('s');
const VIP = '10.88.0.100';
const OUT = join(tmpdir(), `sessionlb-lab-splice-${process.pid}`);
const why = labUnsupported({ tap: true });
if (why) console.warn(`lab.splice tests skipped: ${why}`);

describe.skipIf(!!why)('sessionlb live splice in the lab', () => {
  let lab: LabSummary;
  beforeAll(() => {
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
    labDown(PREFIX);
    lab = labUp(['--method', 'splice', '--prefix', PREFIX]);
  });
  afterAll(() => {
    labDown(PREFIX);
    rmSync(OUT, { recursive: true, force: true });
  });

  it('HTTP through the splice: every request answered, spread over three backends; the backends see the clients\' own addresses', async () => {
    const all: string[] = [];
    for (const c of lab.clients.slice(0, 3)) {
      const { backends, failures } = await httpBackends(c.ns, `http://${VIP}/`, 30);
      expect(failures, c.id).toEqual([]);
      expect(backends.length).toBe(30);
      all.push(...backends);
    }
    const by = countBy(all);
    for (const b of lab.backends) expect(by[b.id] ?? 0, JSON.stringify(by)).toBeGreaterThanOrEqual(10);
    // sessionlb opens the backend connection itself, from the client's address (the lab's
    // splice.source is "client"): c3 and c4 show as their NAT box's address.
    for (const c of lab.clients) expect(nsRun(c.ns, ['curl', '-s', '-m', '3', `http://${VIP}/whoami`]).stdout.trim(), c.id).toBe(c.seenAs);
  });

  it('keep-alive: several requests on one spliced connection all reach the backend chosen for the first', () => {
    const url = `http://${VIP}/`;
    const r = nsRun(lab.clients[0].ns, ['curl', '-s', '-m', '5', '-D', '-', '-o', '/dev/null', url, '-o', '/dev/null', url, '-o', '/dev/null', url]);
    const ids = [...r.stdout.matchAll(/^x-backend:\s*(\S+)/gim)].map((m) => m[1]);
    expect(ids.length, r.stdout).toBe(3);
    expect(new Set(ids).size).toBe(1);
  });

  it('wrk against the three nginx, keep-alive and a new connection per request through the splice: no socket error, no non-2xx', async () => {
    for (const close of [false, true]) {
      const r = await nsRunAsync(lab.clients[0].ns, ['timeout', '20', 'wrk', '-t1', '-c16', '-d2s', ...(close ? ['-H', 'Connection: close'] : []), `http://${VIP}/`], { timeoutMs: 25_000 });
      expect(r.stdout, r.stderr).toMatch(/Requests\/sec/);
      expect(Number(/(\d+) requests in/.exec(r.stdout)![1])).toBeGreaterThan(close ? 500 : 2000);
      expect(r.stdout).not.toMatch(/Socket errors|Non-2xx/);
    }
  });

  it('RTSP over UDP through a spliced control connection: media received, each session whole on one backend (backend captures, tshark)', async () => {
    const clients = [lab.clients[0], lab.clients[2]]; // c1, and c3 behind the NAT box
    const views = await rtspSessionsWithCaptures(lab, clients, `rtsp://${VIP}:8554/test`, 3, OUT);
    for (const v of views) {
      const r = v.result;
      expect(r.code, `${v.client}: ${r.stderr.slice(-600)}`).toBe(0);
      expect(r.frames, v.client).toBeGreaterThanOrEqual(50);
      expect(r.missed, v.client).toBe(0);
      // Control (spliced TCP) and media (UDP, the session's expectations) both on one backend.
      expect(nonZero(v.all), `${v.client}: ${JSON.stringify(v)}`.slice(0, 800)).toEqual([v.holder]);
      expect(v.setups, v.client).toBeGreaterThanOrEqual(1);
      expect(v.udpToClient[v.holder!], v.client).toBeGreaterThanOrEqual(50);
      expect(v.udpFromClient[v.holder!], v.client).toBeGreaterThanOrEqual(1);
    }
  });

  it('RTSP with interleaved media (RTP in the spliced TCP connection): the client receives media', async () => {
    const r = await rtspClient(lab.clients[0].ns, `rtsp://${VIP}:8554/test`, 3, 'tcp');
    expect(r.code, r.stderr.slice(-600)).toBe(0);
    expect(r.frames).toBeGreaterThanOrEqual(50);
    expect(r.missed).toBe(0);
  });
});
