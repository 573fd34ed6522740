// Load per backend over time on a canvas: one line per backend, packet time on x (seconds from
// the first forwarded packet), packets/s or bytes/s on y. No chart library.

export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563', '#65a30d', '#9333ea'];

export interface Series {
  name: string;
  values: number[]; // per bin
}

function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function short(v: number): string {
  if (v >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(1)}`;
}

/**
 * Load per backend over packet time in buckets that start at 1 ms and double in width (merging
 * neighbours) whenever there would be more than `maxBuckets`: bounded memory whatever the trace's
 * length, and as fine a resolution as it allows.
 */
export class LoadSeries {
  widthMs = 1;
  packets: Float64Array[] = [];
  bytes: Float64Array[] = [];
  private origin = -1; // ms
  constructor(readonly columns: number, readonly maxBuckets = 4096) {}

  add(sec: number, nsec: number, column: number, bytes: number): void {
    const ms = sec * 1000 + nsec / 1e6;
    if (this.origin < 0) this.origin = ms;
    let k = Math.floor(Math.max(0, ms - this.origin) / this.widthMs);
    while (k >= this.maxBuckets) {
      this.merge();
      k = Math.floor(Math.max(0, ms - this.origin) / this.widthMs);
    }
    while (this.packets.length <= k) {
      this.packets.push(new Float64Array(this.columns));
      this.bytes.push(new Float64Array(this.columns));
    }
    this.packets[k][column] += 1;
    this.bytes[k][column] += bytes;
  }

  private merge(): void {
    const half = (rows: Float64Array[]) => {
      const out: Float64Array[] = [];
      for (let i = 0; i < rows.length; i += 2) {
        const r = new Float64Array(this.columns);
        for (let c = 0; c < this.columns; c++) r[c] = rows[i][c] + (rows[i + 1]?.[c] ?? 0);
        out.push(r);
      }
      return out;
    };
    this.packets = half(this.packets);
    this.bytes = half(this.bytes);
    this.widthMs *= 2;
  }

  /** At most `maxBins` bins: per column, the rate per second in each, and the bin width in seconds. */
  rates(which: 'packets' | 'bytes', maxBins: number): { binSeconds: number; series: number[][] } {
    const rows = which === 'packets' ? this.packets : this.bytes;
    const group = Math.max(1, Math.ceil(rows.length / maxBins));
    const bins = Math.max(1, Math.ceil(rows.length / group));
    const binSeconds = (group * this.widthMs) / 1000;
    const series = Array.from({ length: this.columns }, () => new Array<number>(bins).fill(0));
    rows.forEach((row, k) => {
      const b = Math.floor(k / group);
      for (let c = 0; c < this.columns; c++) series[c][b] += row[c] / binSeconds;
    });
    return { binSeconds, series };
  }
}

export function drawChart(canvas: HTMLCanvasElement, series: Series[], binSeconds: number, unit: string): void {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 800;
  const cssH = canvas.clientHeight || 260;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  const g = canvas.getContext('2d')!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  const left = 56, right = 12, top = 12, bottom = 30;
  const w = cssW - left - right;
  const h = cssH - top - bottom;
  const bins = Math.max(1, ...series.map((s) => s.values.length));
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values));
  const step = niceStep(max, 4);
  const yMax = Math.ceil(max / step) * step;
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#6b7280';
  g.strokeStyle = '#e5e7eb';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    const y = top + h - (v / yMax) * h;
    g.beginPath();
    g.moveTo(left, Math.round(y) + 0.5);
    g.lineTo(left + w, Math.round(y) + 0.5);
    g.stroke();
    g.fillText(short(v), left - 6, y);
  }
  g.save();
  g.translate(12, top + h / 2);
  g.rotate(-Math.PI / 2);
  g.textAlign = 'center';
  g.fillText(unit, 0, 0);
  g.restore();
  const totalSeconds = bins * binSeconds;
  const xStep = niceStep(totalSeconds, 8);
  g.textAlign = 'center';
  g.textBaseline = 'top';
  for (let t = 0; t <= totalSeconds + 1e-9; t += xStep) {
    const x = left + (t / totalSeconds) * w;
    g.fillText(totalSeconds < 1 ? `${+(t * 1000).toFixed(1)} ms` : `${+t.toFixed(2)} s`, x, top + h + 8);
  }
  const xOf = (i: number) => left + ((i + 0.5) / bins) * w;
  series.forEach((s, k) => {
    g.strokeStyle = PALETTE[k % PALETTE.length];
    g.lineWidth = 1.75;
    g.beginPath();
    s.values.forEach((v, i) => {
      const x = xOf(i);
      const y = top + h - (v / yMax) * h;
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    if (s.values.length === 1) g.arc(xOf(0), top + h - (s.values[0] / yMax) * h, 2, 0, 2 * Math.PI);
    g.stroke();
  });
}
