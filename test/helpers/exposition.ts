// An independent parser for the Prometheus text exposition format 0.0.4, written from the format
// description and not from host/live/metrics.ts (test/live.metrics.test.ts checks that it refuses
// malformed texts). Used by the metrics tests as their oracle.
export interface ParsedSample { name: string; labels: Record<string, string>; value: number; raw: string }
export interface ParsedFamily { name: string; type: string; help: string | null; samples: ParsedSample[] }

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

function parseValue(s: string, line: number): number {
  if (s === 'NaN') return NaN;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`line ${line}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

/** Parses `name{a="b",...} value [ts]`, character by character for the label block. */
function parseSampleLine(line: string, no: number): ParsedSample {
  let i = 0;
  while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
  const name = line.slice(0, i);
  if (!METRIC.test(name)) throw new Error(`line ${no}: bad metric name ${JSON.stringify(name)}`);
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      let j = i;
      while (j < line.length && line[j] !== '=') j++;
      const lname = line.slice(i, j);
      if (!LABEL.test(lname)) throw new Error(`line ${no}: bad label name ${JSON.stringify(lname)}`);
      if (lname in labels) throw new Error(`line ${no}: label ${lname} twice`);
      if (line[j + 1] !== '"') throw new Error(`line ${no}: label value must be quoted`);
      j += 2;
      let v = '';
      for (;;) {
        if (j >= line.length) throw new Error(`line ${no}: unterminated label value`);
        const c = line[j];
        if (c === '"') break;
        if (c === '\\') {
          const n = line[j + 1];
          if (n === '\\') v += '\\';
          else if (n === '"') v += '"';
          else if (n === 'n') v += '\n';
          else throw new Error(`line ${no}: bad escape \\${n}`);
          j += 2;
        } else {
          v += c;
          j++;
        }
      }
      labels[lname] = v;
      i = j + 1;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`line ${no}: expected , or } after a label`);
    }
    i++;
  }
  if (line[i] !== ' ') throw new Error(`line ${no}: expected a space before the value`);
  const rest = line.slice(i + 1).split(' ');
  if (rest.length < 1 || rest.length > 2 || rest[0] === '') throw new Error(`line ${no}: expected value [timestamp]`);
  if (rest.length === 2 && !/^-?\d+$/.test(rest[1])) throw new Error(`line ${no}: bad timestamp`);
  return { name, labels, value: parseValue(rest[0], no), raw: rest[0] };
}

function familyOf(sample: string, types: Map<string, string>): string | null {
  if (types.has(sample)) return sample;
  for (const suf of ['_bucket', '_sum', '_count']) {
    if (sample.endsWith(suf)) {
      const base = sample.slice(0, -suf.length);
      const t = types.get(base);
      if (t === 'histogram' || (t === 'summary' && suf !== '_bucket')) return base;
    }
  }
  return null;
}

export function parseExposition(text: string): Map<string, ParsedFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the text must end with a newline');
  const fams = new Map<string, ParsedFamily>();
  const types = new Map<string, string>();
  const done = new Set<string>(); // families whose samples have ended
  const seenSeries = new Set<string>();
  let current: string | null = null;
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((line, k) => {
    const no = k + 1;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m;
      if (!METRIC.test(name)) throw new Error(`line ${no}: bad name in ${kind}`);
      if (done.has(name) || (current !== null && current !== name && fams.get(name)?.samples.length)) throw new Error(`line ${no}: ${kind} for ${name} after its samples`);
      const f = fams.get(name) ?? { name, type: 'untyped', help: null, samples: [] };
      fams.set(name, f);
      if (kind === 'TYPE') {
        if (types.has(name)) throw new Error(`line ${no}: second TYPE for ${name}`);
        if (!TYPES.includes(rest)) throw new Error(`line ${no}: unknown type ${rest}`);
        if (f.samples.length) throw new Error(`line ${no}: TYPE after samples of ${name}`);
        types.set(name, rest);
        f.type = rest;
      } else {
        if (f.help !== null) throw new Error(`line ${no}: second HELP for ${name}`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new Error(`line ${no}: bad escape in HELP`);
        f.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      }
      return;
    }
    if (line.trim() === '') return;
    const s = parseSampleLine(line, no);
    const fam = familyOf(s.name, types);
    if (fam === null) throw new Error(`line ${no}: sample ${s.name} has no TYPE`);
    if (current !== fam) {
      if (current !== null) done.add(current);
      if (done.has(fam)) throw new Error(`line ${no}: samples of ${fam} are not contiguous`);
      current = fam;
    }
    const series = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
    if (seenSeries.has(series)) throw new Error(`line ${no}: duplicate series ${series}`);
    seenSeries.add(series);
    const f = fams.get(fam)!;
    if (f.type === 'counter' && !(s.value >= 0)) throw new Error(`line ${no}: counter ${s.name} is ${s.raw}`);
    if (f.type === 'histogram' && s.name === fam) throw new Error(`line ${no}: histogram sample without suffix`);
    if (f.type === 'histogram' && s.name.endsWith('_bucket') && !('le' in s.labels)) throw new Error(`line ${no}: bucket without le`);
    f.samples.push(s);
  });
  for (const f of fams.values()) {
    if (f.type === 'histogram') checkHistogram(f);
  }
  return fams;
}

function checkHistogram(f: ParsedFamily): void {
  const groups = new Map<string, { buckets: ParsedSample[]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const g = groups.get(key) ?? { buckets: [] };
    groups.set(key, g);
    if (s.name.endsWith('_bucket')) g.buckets.push({ ...s, labels: { le } });
    else if (s.name.endsWith('_sum')) g.sum = s.value;
    else g.count = s.value;
  }
  for (const g of groups.values()) {
    if (g.buckets.length === 0) throw new Error(`${f.name}: no buckets`);
    const les = g.buckets.map((b) => parseValue(b.labels.le, 0));
    for (let i = 1; i < les.length; i++) {
      if (!(les[i] > les[i - 1])) throw new Error(`${f.name}: le not increasing`);
      if (g.buckets[i].value < g.buckets[i - 1].value) throw new Error(`${f.name}: buckets not cumulative`);
    }
    if (les[les.length - 1] !== Infinity) throw new Error(`${f.name}: the last bucket is not le="+Inf"`);
    if (g.count === undefined || g.sum === undefined) throw new Error(`${f.name}: _count and _sum are required`);
    if (g.count !== g.buckets[g.buckets.length - 1].value) throw new Error(`${f.name}: _count != +Inf bucket`);
  }
}

export function sample(fams: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): ParsedSample {
  for (const f of fams.values()) {
    for (const s of f.samples) {
      if (s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort())) return s;
    }
  }
  throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
}
