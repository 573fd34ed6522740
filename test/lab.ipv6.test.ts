// The dual-stack lab (`sessionlb lab up --ipv6`): the IPv6 VIP fd88::100 through sessionlb with
// NAT and with DR. Oracles: nginx's X-Backend and /whoami, and the router's kernel, whose
// neighbour table must hold the VIP at sessionlb's MAC (sessionlb answered its neighbour
// solicitation on the front LAN).
import { afterAll, describe, expect, it } from 'vitest';
import type { LabSummary } from '../host/lab/lab.js';
import { countBy, httpBackends, labDown, labUnsupported, labUp, nsRun, testPrefix } from './helpers/lab.js';

const PREFIX = testPrefix('v');
const VIP6 = 'fd88::100';
const LB_MAC = '02:88:00:00:00:fe';
const why = labUnsupported({ tap: true });
if (why) console.warn(`lab.ipv6 tests skipped: ${why}`);

describe.skipIf(!!why).each(['nat', 'dr'] as const)('sessionlb live %s over IPv6 in the lab', (method) => {
  afterAll(() => labDown(PREFIX));

  it('HTTP to fd88::100: every request answered, spread over three backends, client addresses kept; the VIP answered ND', async () => {
    labDown(PREFIX);
    const lab: LabSummary = labUp(['--method', method, '--ipv6', '--prefix', PREFIX]);
    expect(lab.vips.map((v) => v.address)).toContain(VIP6);
    const all: string[] = [];
    for (const c of lab.clients.slice(0, 3)) {
      const { backends, failures } = await httpBackends(c.ns, `http://[${VIP6}]/`, 40);
      expect(failures, c.id).toEqual([]);
      expect(backends.length).toBe(40);
      all.push(...backends);
    }
    const by = countBy(all);
    for (const b of lab.backends) expect(by[b.id] ?? 0, JSON.stringify(by)).toBeGreaterThanOrEqual(20);
    for (const c of lab.clients) {
      expect(nsRun(c.ns, ['curl', '-s', '-m', '3', `http://[${VIP6}]/whoami`]).stdout.trim(), c.id).toBe(c.seenAs6);
      expect(nsRun(c.ns, ['curl', '-s', '-m', '3', 'http://10.88.0.100/whoami']).stdout.trim(), c.id).toBe(c.seenAs);
    }
    const neigh = nsRun(lab.router, ['ip', '-6', 'neigh', 'show', VIP6]).stdout;
    expect(neigh).toMatch(new RegExp(`^${VIP6} dev front lladdr ${LB_MAC}`, 'm'));
    labDown(PREFIX);
  });
});
