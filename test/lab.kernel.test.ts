// The lab itself, with the kernel baseline (method kernel: nftables DNAT in slb-lb, no
// sessionlb): `lab up --json` describes the topology it built, real nginx servers in three
// backend namespaces answer HTTP through the VIP from every client (also from behind the NAT
// box), `lab status` sees it, and `lab down` removes everything, also after a crash (processes
// killed, state file gone: the name-prefix sweep still finds the namespaces).
// Runs under its own namespace prefix so it can run beside the sessionlb lab tests.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { LabSummary } from '../host/lab/lab.js';
import { countBy, httpBackends, labDown, labUnsupported, labUp, nsRun, run, runCli, testPrefix } from './helpers/lab.js';

const PREFIX = testPrefix('k');
const why = labUnsupported();
if (why) console.warn(`lab.kernel tests skipped: ${why}`);

function labNamespaces(): string[] {
  return run(['ip', 'netns', 'list'])
    .stdout.split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(PREFIX));
}

describe.skipIf(!!why)('lab (method kernel)', () => {
  let lab: LabSummary;
  beforeAll(() => {
    labDown(PREFIX);
    const t0 = Date.now();
    lab = labUp(['--method', 'kernel', '--ipv6', '--prefix', PREFIX]);
    // "Make lab up fast": building it and starting nine servers takes about a second here.
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
  afterAll(() => labDown(PREFIX));

  it('--json describes what it built: clients (two behind NAT), VIPs, backends, no sessionlb', () => {
    expect(lab.method).toBe('kernel');
    expect(lab.clients.map((c) => c.ns)).toEqual(['c1', 'c2', 'c3', 'c4'].map((x) => PREFIX + x));
    expect(lab.clients.filter((c) => c.behindNat).map((c) => c.seenAs)).toEqual(['10.88.1.20', '10.88.1.20']);
    expect(lab.vips.map((v) => v.address)).toEqual(['10.88.0.100', '10.88.0.101', 'fd88::100']);
    expect(lab.backends.map((b) => [b.id, b.ns, b.address])).toEqual([
      ['b1', `${PREFIX}b1`, '10.88.2.11'],
      ['b2', `${PREFIX}b2`, '10.88.2.12'],
      ['b3', `${PREFIX}b3`, '10.88.2.13'],
    ]);
    expect(lab.sessionlb).toBeNull();
    expect(labNamespaces().sort()).toEqual(['b1', 'b2', 'b3', 'c1', 'c2', 'c3', 'c4', 'lb', 'nat', 'rtr'].map((x) => PREFIX + x).sort());
    // The addresses exist only inside the lab: the caller's namespace has no 10.88.x address.
    expect(run(['ip', '-4', 'addr']).stdout).not.toMatch(/10\.88\./);
  });

  it('each backend answers with its own id, in the body and in X-Backend', () => {
    for (const b of lab.backends) {
      const r = nsRun(lab.clients[0].ns, ['curl', '-s', '-m', '3', '-D', '-', `http://${b.address}/`]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^X-Backend: ${b.id}\\r?$`, 'mi'));
      expect(r.stdout.trim().endsWith(b.id)).toBe(true);
    }
  });

  it('HTTP through the VIP: every request answered, spread over the three backends, from every client', async () => {
    for (const c of lab.clients) {
      const { backends, failures } = await httpBackends(c.ns, 'http://10.88.0.100/', 60);
      expect(failures).toEqual([]);
      expect(backends.length).toBe(60);
      const by = countBy(backends);
      // numgen random: each backend's share is Binomial(60, 1/3) (mean 20, sd 3.7); 8 is 3.3 sd below.
      for (const b of lab.backends) expect(by[b.id] ?? 0, `${c.id}: ${JSON.stringify(by)}`).toBeGreaterThanOrEqual(8);
    }
    // The kernel tracked them: conntrack in the lb namespace holds entries from the VIP's clients
    // whose reply direction comes from each backend (DNAT).
    const ct = nsRun(lab.lb.ns, ['conntrack', '-L', '-p', 'tcp', '--orig-dst', '10.88.0.100']);
    expect(ct.code, ct.stderr).toBe(0);
    for (const b of lab.backends) expect(ct.stdout).toMatch(new RegExp(`src=${b.address.replace(/\./g, '\\.')} dst=10\\.88\\.1\\.11 sport=80`));
  });

  it('IPv6 (--ipv6): HTTP to fd88::100 spread over the backends by the kernel (ip6 nftables DNAT)', async () => {
    const { backends, failures } = await httpBackends(lab.clients[0].ns, 'http://[fd88::100]/', 60);
    expect(failures).toEqual([]);
    const by = countBy(backends);
    for (const b of lab.backends) expect(by[b.id] ?? 0, JSON.stringify(by)).toBeGreaterThanOrEqual(8);
    expect(nsRun(lab.clients[2].ns, ['curl', '-s', '-m', '3', 'http://[fd88::100]/whoami']).stdout.trim()).toBe('fd88:1::20');
  });

  it("backends see each client's own address, and the NAT box's for the clients behind it", () => {
    for (const c of lab.clients) {
      const r = nsRun(c.ns, ['curl', '-s', '-m', '3', 'http://10.88.0.100/whoami']);
      expect(r.stdout.trim(), c.id).toBe(c.seenAs);
    }
  });

  it('lab status sees it up; lab up refuses a second lab with the same prefix', () => {
    const s = runCli(['lab', 'status', '--json', '--prefix', PREFIX]);
    expect(s.code).toBe(0);
    const st = JSON.parse(s.stdout);
    expect(st.up).toBe(true);
    expect(st.method).toBe('kernel');
    expect(st.processes.length).toBe(9);
    expect(st.processes.every((p: { alive: boolean }) => p.alive)).toBe(true);
    const again = runCli(['lab', 'up', '--method', 'kernel', '--prefix', PREFIX]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already up/);
  });

  it('lab down after a crash: processes killed by hand, state file deleted, the sweep still removes everything', () => {
    const pids = lab.backends.flatMap((b) => run(['ip', 'netns', 'pids', b.ns]).stdout.split('\n').filter((x) => x));
    expect(pids.length).toBeGreaterThanOrEqual(9);
    // Simulate a crash: one server dies, the state file is lost.
    run(['kill', '-9', pids[0]]);
    rmSync(join(lab.dir, 'state.json'), { force: true });
    const status = runCli(['lab', 'status', '--json', '--prefix', PREFIX]);
    const st = JSON.parse(status.stdout);
    expect(st.up).toBe(false);
    expect(st.strayNamespaces.length + st.namespaces.filter((n: { present: boolean }) => n.present).length).toBe(10);
    const down = runCli(['lab', 'down', '--json', '--prefix', PREFIX]);
    expect(down.code).toBe(0);
    expect(JSON.parse(down.stdout).namespaces.length).toBe(10);
    expect(labNamespaces()).toEqual([]);
    for (const p of pids) expect(existsSync(`/proc/${p}`) && !/\) Z/.test(run(['cat', `/proc/${p}/stat`]).stdout)).toBe(false);
    expect(existsSync(lab.dir)).toBe(false);
    // Idempotent.
    expect(runCli(['lab', 'down', '--prefix', PREFIX]).code).toBe(0);
  });
});

describe('lab CLI usage', () => {
  it('--help describes the methods; bad arguments are usage errors', () => {
    const h = runCli(['lab', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/--method M/);
    expect(h.stdout).toMatch(/kube-proxy/);
    expect(runCli(['lab', 'up', '--method', 'ipvs']).code).toBe(2);
    expect(runCli(['lab', 'sideways']).code).toBe(2);
    expect(runCli(['lab', 'up', '--prefix', 'BAD']).code).toBe(2);
    expect(runCli(['help']).stdout).toMatch(/lab up\|down\|status/);
  });
});
