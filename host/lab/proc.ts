// Running programs inside the lab's network namespaces: one-shot commands (bounded by a
// timeout), background servers (detached, logged to a file, tracked by pid), and the checks the
// lab needs (is a pid alive, is a port listening in a namespace, does a namespace exist).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

export interface RunResult {
  code: number; // exit status; -1 when killed (timeout) or not started
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs argv synchronously in the caller's namespace; never throws for a non-zero exit. */
export function run(argv: string[], opts: { timeoutMs?: number; input?: string } = {}): RunResult {
  const t0 = performance.now();
  const r = spawnSync(argv[0], argv.slice(1), {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 20_000,
    input: opts.input,
    maxBuffer: 64 << 20,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error.message) : ''), ms: performance.now() - t0 };
}

/** Runs argv inside namespace ns (`ip netns exec`). */
export function nsRun(ns: string, argv: string[], opts: { timeoutMs?: number; input?: string } = {}): RunResult {
  return run(['ip', 'netns', 'exec', ns, ...argv], opts);
}

/** Same as nsRun without blocking the event loop (several clients at once). */
export function nsRunAsync(ns: string, argv: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((done) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      done({ code: -1, stdout, stderr: stderr + e.message, ms: performance.now() - t0 });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/**
 * Starts argv in namespace ns as a detached background process with stdout and stderr appended
 * to logFile, and returns its pid. `ip netns exec` execs the program in place, so the pid is the
 * program's own.
 */
export function startDetached(ns: string, argv: string[], logFile: string, env?: NodeJS.ProcessEnv): number {
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn('ip', ['netns', 'exec', ns, ...argv], { detached: true, stdio: ['ignore', fd, fd], env: env ?? process.env });
  } finally {
    closeSync(fd);
  }
  child.unref();
  if (child.pid === undefined) throw new Error(`cannot start ${argv.join(' ')} in ${ns}`);
  return child.pid;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !isZombie(pid);
  } catch {
    return false;
  }
}

/** A zombie (exited, not yet reaped by its parent) counts as gone: field 3 of /proc/PID/stat is Z. */
function isZombie(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Sends SIGTERM to each pid, waits up to graceMs for them to go, then SIGKILLs the rest. */
export async function stopPids(pids: number[], graceMs = 2000): Promise<void> {
  const live = pids.filter((p) => p > 1 && p !== process.pid);
  for (const p of live) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && live.some(alive)) await sleep(25);
  for (const p of live) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export function listNamespaces(): string[] {
  const r = run(['ip', 'netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((x) => x);
}

/** Pids of every process whose network namespace is ns. */
export function nsPids(ns: string): number[] {
  const r = run(['ip', 'netns', 'pids', ns]);
  return r.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 1);
}

/** Local TCP (and UDP) ports listening in namespace ns. */
export function listeningPorts(ns: string, proto: 'tcp' | 'udp' = 'tcp'): Set<number> {
  const r = nsRun(ns, ['ss', '-Hn', proto === 'tcp' ? '-lt' : '-lu'], { timeoutMs: 5000 });
  const out = new Set<number>();
  for (const line of r.stdout.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const local = cols[3];
    if (!local) continue;
    const port = Number(local.slice(local.lastIndexOf(':') + 1));
    if (Number.isInteger(port)) out.add(port);
  }
  return out;
}
