// sessionlb live, direct routing, in the lab (`sessionlb lab up --method dr`, docs/lab.md): the
// backends hold the VIPs on lo and answer the clients straight through the router, so sessionlb
// sees one direction only. Oracles: nginx's X-Backend, tcpdump on the router's two legs (replies
// from the VIP come in on the server leg, never from the front LAN), ffmpeg's own account of the
// media, backend captures read with tshark for RTSP session integrity.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { LabSummary } from '../host/lab/lab.js';
import { Capture, countBy, httpBackends, labDown, labUnsupported, labUp, nonZero, nsRun, ROOT, rtspSessionsWithCaptures, tsharkFields, testPrefix } from './helpers/lab.js';

const PREFIX = testPrefix('d');
const VIP = '10.88.0.100';
const why = labUnsupported({ tap: true });
if (why) console.warn(`lab.dr tests skipped: ${why}`);
const OUT = join(ROOT, 'test-output', 'lab', PREFIX.slice(0, -1));

describe.skipIf(!!why)('sessionlb live DR in the lab', () => {
  let lab: LabSummary;
  beforeAll(() => {
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
    labDown(PREFIX);
    lab = labUp(['--method', 'dr', '--prefix', PREFIX]);
  });
  afterAll(() => {
    labDown(PREFIX);
    rmSync(OUT, { recursive: true, force: true });
  });

  it('HTTP: every request answered, spread over three backends, client addresses kept', async () => {
    const all: string[] = [];
    for (const c of lab.clients.slice(0, 3)) {
      const { backends, failures } = await httpBackends(c.ns, `http://${VIP}/`, 40);
      expect(failures, c.id).toEqual([]);
      expect(backends.length).toBe(40);
      all.push(...backends);
    }
    const by = countBy(all);
    for (const b of lab.backends) expect(by[b.id] ?? 0, JSON.stringify(by)).toBeGreaterThanOrEqual(20);
    for (const c of lab.clients) expect(nsRun(c.ns, ['curl', '-s', '-m', '3', `http://${VIP}/whoami`]).stdout.trim(), c.id).toBe(c.seenAs);
  });

  it('one-way: replies from the VIP reach the router on its server leg, none cross the front LAN', async () => {
    const front = new Capture(`${PREFIX}rtr`, 'front', join(OUT, 'rtr-front.pcap'), 'tcp port 80');
    const srv = new Capture(`${PREFIX}rtr`, 'srv', join(OUT, 'rtr-srv.pcap'), 'tcp port 80');
    await Promise.all([front.ready(), srv.ready()]);
    const { backends, failures } = await httpBackends(lab.clients[0].ns, `http://${VIP}/`, 20);
    expect(await Promise.all([front.stop(), srv.stop()]), 'tcpdump dropped packets').toEqual([0, 0]);
    expect(failures).toEqual([]);
    expect(backends.length).toBe(20);
    const fromVip = (f: string) => tsharkFields(f, `ip.src == ${VIP} && tcp.srcport == 80`, ['tcp.stream']);
    const toVip = (f: string) => tsharkFields(f, `ip.dst == ${VIP} && tcp.dstport == 80`, ['tcp.stream']);
    // Requests go out the front leg to sessionlb; answers come back from the backends' LAN.
    expect(toVip(front.file).length).toBeGreaterThanOrEqual(20 * 4);
    expect(fromVip(front.file)).toEqual([]);
    const answers = fromVip(srv.file);
    expect(answers.length).toBeGreaterThanOrEqual(20 * 3);
    expect(new Set(answers.map((x) => x[0])).size).toBe(20);
    expect(toVip(srv.file)).toEqual([]);
  });

  it('RTSP over UDP: media received; control connection and server media on one backend (backend captures, tshark)', async () => {
    const clients = [lab.clients[0], lab.clients[3]]; // c1, and c4 behind the NAT box
    const views = await rtspSessionsWithCaptures(lab, clients, `rtsp://${VIP}:8554/test`, 3, OUT);
    for (const v of views) {
      const r = v.result;
      expect(r.code, `${v.client}: ${r.stderr.slice(-600)}`).toBe(0);
      expect(r.frames, v.client).toBeGreaterThanOrEqual(50);
      expect(r.missed, v.client).toBe(0);
      expect(v.holder, `${v.client}: control packets per backend ${JSON.stringify(v.control)}`).not.toBeNull();
      expect(v.setups, v.client).toBeGreaterThanOrEqual(1);
      // The backend's media goes straight to the client (one-way DR) and only that backend sends any.
      expect(nonZero(v.udpToClient), v.client).toEqual([v.holder]);
      expect(v.udpToClient[v.holder!], v.client).toBeGreaterThanOrEqual(50);
      for (const p of v.rtpSourcePorts) expect(v.serverPorts, `RTP from port ${p}`).toContain(p);
      // Not asserted: the client's own UDP packets (NAT punch, RTCP receiver reports) towards the
      // server's ports. With DR the SETUP reply that names those ports goes from the backend to
      // the client without passing sessionlb, so no expectation pins them; they are scheduled per
      // flow and may reach another backend (seen: one RTCP RR each on two other backends). Media
      // to the client is unaffected. Reported as a limitation of session inspection with DR.
      const strays = Object.entries(v.udpFromClient).filter(([b, n]) => b !== v.holder && n > 0);
      if (strays.length) console.warn(`DR ${v.client}: client->server UDP on other backends: ${JSON.stringify(strays)}`);
    }
  });
});
