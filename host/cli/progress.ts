// A progress bar on stderr, shown only when stderr is a terminal and the work is large enough
// to be worth watching (over 16 MB of input).
export interface Progress {
  update(done: number, total: number): void;
  done(): void;
}

export function progressBar(label: string, minTotal = 16 << 20): Progress | null {
  if (!process.stderr.isTTY) return null;
  let last = 0;
  let shown = false;
  return {
    update(done, total) {
      if (total < minTotal) return;
      const now = Date.now();
      if (now - last < 200) return;
      last = now;
      shown = true;
      const w = 30;
      const f = Math.min(1, done / total);
      const fill = Math.round(f * w);
      process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${(f * 100).toFixed(0).padStart(3)}%`);
    },
    done() {
      if (shown) process.stderr.write('\r' + ' '.repeat(50) + '\r');
    },
  };
}
