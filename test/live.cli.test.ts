// `sessionlb run`'s usage and its errors before any traffic: missing or wrong live section,
// health-check and metrics config, a device that is not a TAP. No namespaces needed.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { CLI, ROOT, runCli } from './helpers/cli.js';
import { acquireLiveLock, releaseLiveLock } from './helpers/live-lock.js';

const DIR = join(ROOT, 'test-output', 'live-cli');
mkdirSync(DIR, { recursive: true });
const vip = { address: '10.99.200.1', ports: [80], backends: [{ id: 'b1', address: '10.99.201.1' }] };
const live = (o: Record<string, unknown> = {}) => ({ interfaces: [{ name: 'slbt-x0', role: 'both', addresses: ['10.99.200.2'] }], ...o });
function cfg(name: string, c: object): string {
  const p = join(DIR, `${name}.json`);
  writeFileSync(p, JSON.stringify(c));
  return p;
}
const canTap = typeof process.getuid === 'function' && process.getuid() === 0 && existsSync('/dev/net/tun');

describe('sessionlb run: usage and config errors', () => {
  it('--help prints the usage and exits 0; no --config is a usage error', () => {
    const h = runCli(['run', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^usage: sessionlb run --config FILE/);
    expect(h.stdout).toContain('--pcap-tap DIR');
    const u = runCli(['run']);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain('missing --config FILE');
  });

  it('a config without a live section, or with a bad one, is refused naming the field', () => {
    const none = runCli(['run', '--config', cfg('nolive', { vips: [vip] })]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/config: live: is required/);
    const role = runCli(['run', '--config', cfg('role', { vips: [vip], live: { interfaces: [{ name: 'slbt-x0', role: 'client' }] } })]);
    expect(role.code).toBe(1);
    expect(role.stderr).toContain('live.interfaces[0].role');
    const method = runCli(['run', '--config', cfg('gre', { vips: [{ ...vip, method: 'gre' }], live: live() })]);
    expect(method.code).toBe(1);
    expect(method.stderr).toContain('"nat", "dr", "splice" and "handoff"');
    const hc = runCli(['run', '--config', cfg('hc', { vips: [{ ...vip, healthCheck: { type: 'smtp' } }], live: live() })]);
    expect(hc.code).toBe(1);
    expect(hc.stderr).toContain('vips[0].healthCheck.type');
    const metrics = runCli(['run', '--config', cfg('metrics', { vips: [vip], live: live({ metrics: { address: '10.99.200.2' } }) })]);
    expect(metrics.code).toBe(1);
    expect(metrics.stderr).toContain('live.metrics.address');
  });

  it.skipIf(!canTap)('a device that exists and is not a TAP is refused with the reason', () => {
    const r = runCli(['run', '--config', cfg('lo', { vips: [vip], live: { interfaces: [{ name: 'lo', role: 'both' }] } })], { timeoutMs: 10_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/TAP lo: TUNSETIFF/);
  });

  it.skipIf(!canTap)('creates a missing TAP device, sets it up, and removes it at exit (not persistent)', async () => {
    const name = 'slbt-new0';
    await acquireLiveLock();
    try {
      spawnSync('ip', ['link', 'del', name]);
      const p = spawn(process.execPath, [CLI, 'run', '--config', cfg('create', { vips: [vip], live: { interfaces: [{ name, role: 'both', addresses: ['10.99.200.2'] }] } })], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (d) => (err += d));
      const t0 = Date.now();
      while (!err.includes('sessionlb running') && Date.now() - t0 < 10_000 && p.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      const link = spawnSync('ip', ['-d', 'link', 'show', name], { encoding: 'utf8' }).stdout;
      const exited = new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
      p.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(link).toMatch(/state (UP|UNKNOWN)|,UP/);
      expect(link).toContain('tun type tap');
      expect(spawnSync('ip', ['link', 'show', name]).status).not.toBe(0);
    } finally {
      releaseLiveLock();
    }
  });

  it.skipIf(!canTap)('a metrics port in use: a clear error, and the process exits (TAPs closed)', async () => {
    const { createServer } = await import('node:net');
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    await acquireLiveLock();
    try {
      const r = runCli(['run', '--config', cfg('busy', { vips: [vip], live: { interfaces: [{ name: 'slbt-new0', role: 'both' }], metrics: { port } } })], { timeoutMs: 10_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`metrics: cannot listen on 127.0.0.1:${port}`);
      expect(spawnSync('ip', ['link', 'show', 'slbt-new0']).status).not.toBe(0);
    } finally {
      releaseLiveLock();
      srv.close();
    }
  });

  it.skipIf(!canTap || spawnSync('su', ['nobody', '-s', '/bin/sh', '-c', 'true']).status !== 0)('without privileges: the reason and what to do', () => {
    const file = join(tmpdir(), `slbt-noperm-${process.pid}.json`);
    writeFileSync(file, JSON.stringify({ vips: [vip], live: { interfaces: [{ name: 'slbt-new1', role: 'both' }] } }), { mode: 0o644 });
    try {
      const r = spawnSync('su', ['nobody', '-s', '/bin/sh', '-c', `exec "${process.execPath}" "${CLI}" run --config "${file}"`], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/TAP slbt-new1: .*Operation not permitted \(run as root or with CAP_NET_ADMIN\)/);
    } finally {
      rmSync(file, { force: true });
    }
  });
});
