// Soak: long replays that take minutes, run only with SOAK=1 (`npm run test:soak`), never in CI.
// A generated 5M-packet flow capture through a flow table too small for all its flows (pressure,
// eviction of closing flows, expiry all the way through) and a 3,000-session RTSP workload through the session policy with NAT
// traversal, admission limits and a rate: every packet accounted for, no event lost, every
// session whole, and the engine's own counters consistent with the report.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../host/ctl/config.js';
import { replayFile } from '../host/replay.js';
import { ROOT, tempDir } from './helpers/cli.js';

const soak = process.env.SOAK === '1';
const cli = join(ROOT, 'dist', 'host', 'cli', 'main.js');

function accountingHolds(r: Awaited<ReturnType<typeof replayFile>>['report']): void {
  const delivered = Object.values(r.backends).reduce((s, b) => s + b.packets, 0);
  const dropped = Object.values(r.dropped).reduce((s, n) => s + n, 0);
  expect(delivered + r.client.packets + r.passed + dropped).toBe(r.input.packets);
  expect(r.counters['events-lost']).toBe(0);
}

describe.skipIf(!soak)('soak (SOAK=1)', () => {
  it('5M packets, 400k flows through a 256k-entry table: accounting exact, closing flows evicted, every flow reported', async () => {
    const dir = tempDir('soak-flows');
    const pcap = join(dir, 'flows.pcap');
    if (!existsSync(pcap)) {
      execFileSync('node', [cli, 'generate', 'flows', '--out', pcap, '--packets', '5000000', '--flows', '400000', '--seed', '7',
        '--vip', '10.0.0.100', '--vip', '2001:db8::100', '--concurrent', '20000'], { stdio: 'inherit' });
    }
    const config = parseConfig({
      // 120k UDP flows (300 s timeout) and 280k TCP flows that close within the 50 s trace, in a
      // table that cannot hold them all: closing TCP flows must make room (eviction).
      flowCapacity: 262144,
      vips: ['10.0.0.100', '2001:db8::100'].map((address, v) => ({
        address, ports: [80], method: v ? 'gue' : 'nat', scheduler: v ? 'p2c' : 'maglev',
        tunnel: v ? { source6: '2001:db8::1' } : undefined,
        backends: [1, 2, 3, 4].map((i) => ({ id: `v${v}b${i}`, address: v ? `2001:db8:1::${i}` : `10.0.1.${i}` })),
      })),
    });
    const { report } = await replayFile(pcap, config, { outDir: null, collectFlows: true });
    accountingHolds(report);
    expect(report.input.packets).toBe(5_000_000);
    expect(report.flows.created).toBe(report.flows.closed);
    expect(report.flows.created).toBeGreaterThanOrEqual(400_000);
    expect(report.flows.evicted).toBeGreaterThan(0); // the pressure was real
    // Closing flows make room: packets that found no room at all stay rare (two full buckets of
    // live UDP and established flows).
    expect(report.flows.tableFull).toBeLessThan(report.input.packets * 0.005);
    expect(report.fairness.flows.jain).toBeGreaterThan(0.95);
  }, 1_800_000);

  it('3,000 RTSP sessions, session policy with NAT traversal and admission: every admitted session whole', async () => {
    const dir = tempDir('soak-rtsp');
    const pcap = join(dir, 'rtsp.pcap');
    if (!existsSync(pcap)) {
      execFileSync('node', [cli, 'generate', 'rtsp', '--sessions', '3000', '--seed', '9', '--vip', '10.0.0.100', '--duration', '2-8',
        '--arrival-rate', '100', '--out', pcap], { stdio: 'inherit' });
    }
    const config = parseConfig({
      vips: [{
        address: '10.0.0.100', method: 'nat', policy: 'session', maxSessions: 250, sessionRate: 80,
        backends: [1, 2, 3, 4, 5].map((i) => ({ id: `b${i}`, address: `10.0.1.${i}`, maxSessions: 60 })),
      }],
    });
    const { report, flows } = await replayFile(pcap, config, { outDir: null, collectFlows: true });
    accountingHolds(report);
    const s = report.sessions;
    expect(s.started).toBeGreaterThan(1000);
    expect(s.refused).toBeGreaterThan(0); // the limits bite on this workload
    expect(s.integrity).toBe(1);
    expect(s.started).toBe(s.completed + s.timedOut + s.controlLost + s.openAtEnd);
    // Admitted sessions spread over every backend.
    const perBackend = new Map<string, number>();
    for (const f of flows!) if (f.proto === 'tcp' && f.session) perBackend.set(f.backend, (perBackend.get(f.backend) ?? 0) + 1);
    expect([...perBackend.keys()].length).toBe(5);
    expect(report.counters['rtsp-errors']).toBe(0);
  }, 1_800_000);
});
