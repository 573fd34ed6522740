// One live test at a time on this machine: the live tests use fixed device and namespace names
// (slbt-*) and a fixed subnet on a root-namespace bridge, so two concurrent test runs (two
// checkouts, two developers) would tear down each other's topology. A lock directory, taken
// with mkdir (atomic) and holding the owner's pid, serialises them; a dead owner's lock is taken over.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

const LOCK = '/tmp/sessionlb-live-tests.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquireLiveLock(timeoutMs = 180_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(`${LOCK}/pid`, String(process.pid));
      return;
    } catch {
      let owner = 0;
      try {
        owner = Number(readFileSync(`${LOCK}/pid`, 'utf8'));
      } catch {
        /* being created or removed */
      }
      if (owner && !alive(owner)) rmSync(LOCK, { recursive: true, force: true });
      else if (Date.now() - t0 > timeoutMs) throw new Error(`another live test (pid ${owner}) holds ${LOCK}`);
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export function releaseLiveLock(): void {
  try {
    if (Number(readFileSync(`${LOCK}/pid`, 'utf8')) === process.pid) rmSync(LOCK, { recursive: true, force: true });
  } catch {
    /* not held */
  }
}
