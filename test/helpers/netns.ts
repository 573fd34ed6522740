// Building blocks for tests that make their own small topologies of network namespaces, veths,
// bridges and TAP devices (root): a synchronous shell, hosts on a bridge, persistent TAPs,
// clean-up, and the skip reason when the kernel or the user cannot do it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function sh(cmd: string[], opts: { input?: string; timeout?: number } = {}): { code: number; out: string; err: string } {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: opts.timeout ?? 20_000, input: opts.input, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, out: r.stdout ?? '', err: r.stderr ?? '' };
}

export function must(cmd: string[], timeout?: number): string {
  const r = sh(cmd, { timeout });
  if (r.code !== 0) throw new Error(`${cmd.join(' ')} failed (${r.code}): ${r.err}`);
  return r.out;
}

/** The command run inside namespace n. */
export const ns = (n: string, ...cmd: string[]) => ['ip', 'netns', 'exec', n, ...cmd];
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Why such a test cannot run here (not root, no TUN/TAP, no namespaces, a missing tool), or null. */
export function netnsUnsupported(probePrefix: string, tools: string[] = []): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (network namespaces, TAP devices)';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun (TUN/TAP) in this kernel or container';
  for (const t of tools) if (sh([t, '--version']).code !== 0) return `${t} not installed`;
  const probe = `${probePrefix}probe${process.pid}`;
  const r = sh(['ip', 'netns', 'add', probe]);
  if (r.code !== 0) return `cannot create a network namespace: ${r.err.trim()}`;
  sh(['ip', 'netns', 'del', probe]);
  return null;
}

/** Deletes the namespaces and links (missing ones are fine). */
export function removeAll(namespaces: string[], links: string[]): void {
  for (const n of namespaces) sh(['ip', 'netns', 'del', n]);
  for (const l of links) sh(['ip', 'link', 'del', l]);
}

/** A veth from namespace `n` (eth0 there, `addr/24`, default via `gw`) to bridge `br`. */
export function host(n: string, hostSide: string, br: string, addr: string, gw: string): void {
  must(['ip', 'netns', 'add', n]);
  must(['ip', 'link', 'add', hostSide, 'type', 'veth', 'peer', 'name', `${hostSide}p`]);
  must(['ip', 'link', 'set', `${hostSide}p`, 'netns', n]);
  must(['ip', 'link', 'set', hostSide, 'master', br, 'up']);
  must(['ip', '-n', n, 'link', 'set', `${hostSide}p`, 'name', 'eth0']);
  must(['ip', '-n', n, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
  must(['ip', '-n', n, 'link', 'set', 'eth0', 'up']);
  must(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
  must(['ip', '-n', n, 'route', 'add', 'default', 'via', gw]);
}

/** A bridge with a persistent TAP on it: sessionlb attaches to the TAP by name (the reuse path). */
export function bridge(br: string, tap: string): void {
  must(['ip', 'link', 'add', br, 'type', 'bridge']);
  must(['ip', 'link', 'set', br, 'up']);
  must(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  must(['ip', 'link', 'set', tap, 'master', br, 'up']);
}
