// `sessionlb lab up --method gateway`: the lab with the TCP gateway in the balancer namespace, the
// VIPs kernel addresses there (docs/gateway.md, docs/lab.md). Real clients in the client
// namespaces (also behind the NAT box): curl and ffmpeg over RTSP/TCP. Oracles: nginx's X-Backend,
// ffmpeg's frame count, and GStreamer's 454 for a session it does not hold.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabSummary } from '../host/lab/lab.js';
import { countBy, httpBackends, labDown, labUnsupported, labUp, nsRun, rtspClient, testPrefix } from './helpers/lab.js';

const PREFIX = testPrefix('g');
const why = labUnsupported();
if (why) console.warn(`test/gateway.lab.test.ts skipped: ${why}`);

describe.skipIf(!!why)('lab (method gateway)', () => {
  let lab: LabSummary;
  beforeAll(() => {
    labDown(PREFIX);
    lab = labUp(['--method', 'gateway', '--prefix', PREFIX]);
  });
  afterAll(() => labDown(PREFIX));

  it('HTTP from every client (two behind NAT) reaches all three backends through the gateway', async () => {
    expect(lab.method).toBe('gateway');
    expect(lab.sessionlb?.ns).toBe(`${PREFIX}lb`);
    for (const c of lab.clients) {
      const r = await httpBackends(c.ns, 'http://10.88.0.100/', 30);
      expect(r.failures).toEqual([]);
      expect(Object.keys(countBy(r.backends)).sort()).toEqual(['b1', 'b2', 'b3']);
    }
    const m = nsRun(lab.sessionlb!.ns, ['curl', '-s', `http://127.0.0.1:${lab.sessionlb!.metricsPort}/metrics`]);
    expect(m.stdout).toMatch(/sessionlb_gateway_connections_proxied_total (\d+)/);
    expect(Number(/sessionlb_gateway_connections_proxied_total (\d+)/.exec(m.stdout)![1])).toBeGreaterThanOrEqual(120);
  });

  it('ffmpeg plays RTSP over TCP through the gateway from a client behind NAT', async () => {
    const c3 = lab.clients.find((c) => c.behindNat)!;
    const r = await rtspClient(c3.ns, 'rtsp://10.88.0.100:8554/test', 3, 'tcp');
    expect(r.code, r.stderr.slice(-1500)).toBe(0);
    expect(r.frames).toBeGreaterThanOrEqual(40);
    const m = nsRun(lab.sessionlb!.ns, ['curl', '-s', `http://127.0.0.1:${lab.sessionlb!.metricsPort}/metrics`]);
    expect(Number(/sessionlb_gateway_sessions_created_total (\d+)/.exec(m.stdout)![1])).toBeGreaterThanOrEqual(1);
  });
});
