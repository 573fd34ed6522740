// Engine packets/s in each runtime that runs the conformance vectors: Node (V8), Bun
// (JavaScriptCore), wasm2c + gcc -O2 (native), wabt's interpreter. One input for all: a vector made
// by the Node host like fixtures/vectors (NAT, Maglev over three backends, generated TCP/UDP flows),
// and each runtime's outputs are checked against it before it is timed. The figure is packets over
// the time spent inside process() calls (the interpreter: its run time minus that of the same run
// without process() calls) over repeated runs of the vector, each with a fresh instance after one
// untimed warm-up run; three rounds over all runtimes in turn, the median round reported.
//
//   tsx bench/runtimes.ts [--quick]          prints the table; npm run bench puts it in RESULTS.md
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeVector } from '../tools/vectors/make.js';
import { generateFlows } from '../host/gen/flows.js';

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');

export interface RuntimeRow {
  runtime: string;
  build: string;
  packets: number;
  seconds: number;
  pps: number;
  note: string;
}

function bunBinary(): string | null {
  for (const pkg of ['bun-linux-x64', 'bun-linux-x64-baseline', 'bun-linux-aarch64']) {
    const p = join(root, 'node_modules', '@oven', pkg, 'bin', 'bun');
    if (existsSync(p)) return p;
  }
  const moved = join(root, 'node_modules', 'bun', 'bin', 'bun.exe');
  if (!existsSync(moved)) return null;
  const head = Buffer.alloc(4);
  const fd = openSync(moved, 'r');
  readSync(fd, head, 0, 4, 0);
  closeSync(fd);
  return head.toString('latin1') === '\x7fELF' ? moved : null;
}

function sameAsExpected(vector: string, out: string): boolean {
  const want = readdirSync(join(vector, 'expected')).sort();
  if (JSON.stringify(readdirSync(out).sort()) !== JSON.stringify(want)) return false;
  return want.every((f) => readFileSync(join(out, f)).equals(readFileSync(join(vector, 'expected', f))));
}

/** Measures every available runtime on one generated vector; `work` is a scratch folder. */
export async function runtimesBench(opts: { quick: boolean; work: string; log?: (s: string) => void }): Promise<{ packets: number; rounds: number; rows: RuntimeRow[] }> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const packets = opts.quick ? 5_000 : 20_000;
  const fast = opts.quick ? 5 : 25; // runs of the vector for the compiled runtimes
  const slow = opts.quick ? 1 : 3; // for the interpreter
  const rounds = opts.quick ? 1 : 3;
  const work = join(opts.work, 'runtimes');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const vector = join(work, 'vector');
  log(`runtimes: making a ${packets}-packet vector`);
  await makeVector({
    name: 'bench',
    about: `bench/runtimes.ts: ${packets} packets, NAT, Maglev over three backends`,
    config: { mac: '02:00:00:00:00:fe', flowCapacity: 65536, vips: [{ address: '10.0.0.100', ports: [80], method: 'nat', scheduler: 'maglev', ringSize: 65537,
      backends: [1, 2, 3].map((i) => ({ id: `b${i}`, address: `10.0.1.${i}` })) }] },
    input: (tmp: string) => {
      const out = join(tmp, 'bench.pcap');
      generateFlows({ out, packets, flows: packets / 25, seed: 1, vips: ['10.0.0.100'] });
      return readFileSync(out);
    },
  }, vector);

  const simd = join(root, 'build', 'sessionlb.wasm');
  const nosimd = join(root, 'build', 'sessionlb-nosimd.wasm');
  const runMjs = join(root, 'portable', 'js', 'run.mjs');
  interface Job { runtime: string; build: string; cmd: string; args: string[]; bench: string[]; note: string; pps: number[]; packets: number; seconds: number; ok: boolean }
  const jobs: Job[] = [];
  const add = (runtime: string, build: string, cmd: string, args: string[], bench: string[], note: string) =>
    jobs.push({ runtime, build, cmd, args, bench, note, pps: [], packets: 0, seconds: 0, ok: true });

  add('Node ' + process.version, 'SIMD', process.execPath, [runMjs, simd, vector], ['--bench', String(fast)], 'V8; portable/js/run.mjs');
  add('Node ' + process.version, 'no SIMD', process.execPath, [runMjs, nosimd, vector], ['--bench', String(fast)], 'V8');
  const bun = bunBinary();
  if (bun) {
    const v = execFileSync(bun, ['--version'], { encoding: 'utf8' }).trim();
    add(`Bun ${v}`, 'SIMD', bun, [runMjs, simd, vector], ['--bench', String(fast)], 'JavaScriptCore; the same run.mjs');
  } else log('runtimes: no Bun binary (npm ci installs the bun devDependency)');
  if (existsSync('/usr/bin/wasm2c') && existsSync('/usr/bin/gcc')) {
    const cdir = join(work, 'c');
    execFileSync('bash', [join(root, 'portable', 'c', 'build.sh'), cdir, nosimd, '-O2'], { stdio: 'pipe' });
    const gcc = execFileSync('gcc', ['-dumpfullversion'], { encoding: 'utf8' }).trim();
    add('wasm2c + gcc -O2', 'no SIMD', join(cdir, 'harness'), [vector], ['--bench', String(fast)], `wabt ${execFileSync('wasm2c', ['--version'], { encoding: 'utf8' }).trim()}, gcc ${gcc}; portable/c/harness.c`);
  } else log('runtimes: wasm2c or gcc missing');
  if (existsSync('/usr/bin/spectest-interp') && existsSync('/usr/bin/wat2wasm')) {
    add('wabt interpreter (spectest-interp)', 'SIMD', process.execPath, [join(root, 'portable', 'interp', 'spectest.mjs'), simd, vector], ['--bench', String(slow)],
      'run time with process() minus without; portable/interp/spectest.mjs');
  } else log('runtimes: spectest-interp or wat2wasm missing');

  // Outputs first: a runtime that does not reproduce the vector is not timed.
  for (const j of jobs) {
    const out = join(work, `out-${j.runtime}-${j.build}`.replace(/[^a-z0-9-]/gi, '_'));
    const check = spawnSync(j.cmd, [...j.args, out], { encoding: 'utf8' });
    j.ok = check.status === 0 && sameAsExpected(vector, out);
    if (!j.ok) log(`runtimes: ${j.runtime} (${j.build}) did not reproduce the vector: ${check.stderr}`);
  }
  // Rounds over all runtimes in turn, so a change in the shared machine's load hits them alike;
  // each runtime's figure is its median round.
  for (let round = 0; round < rounds; round++) {
    for (const j of jobs.filter((x) => x.ok)) {
      log(`runtimes: round ${round + 1}/${rounds}, ${j.runtime} (${j.build})`);
      const r = JSON.parse(execFileSync(j.cmd, [...j.args, ...j.bench], { encoding: 'utf8' }).trim().split('\n').pop()!);
      j.pps.push(r.packets / r.seconds);
      j.packets += r.packets;
      j.seconds += r.seconds;
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const rows: RuntimeRow[] = jobs.map((j) => ({ runtime: j.runtime, build: j.build, packets: j.packets, seconds: j.seconds,
    pps: j.ok ? median(j.pps) : NaN, note: j.ok ? j.note : 'outputs differ: not timed' }));
  return { packets, rounds, rows };
}

export function runtimesTable(r: { packets: number; rounds: number; rows: RuntimeRow[] }): { title: string; header: string[]; body: string[][] } {
  const node = r.rows.find((x) => x.runtime.startsWith('Node') && x.build === 'SIMD')?.pps ?? NaN;
  return {
    title: `Runtimes: the same ${r.packets.toLocaleString('en-US')}-packet vector (NAT, Maglev, 3 backends), outputs checked byte for byte, packets/s inside process(), median of ${r.rounds} rounds`,
    header: ['runtime', 'module', 'packets timed', 'packets/s', 'ratio to Node', 'note'],
    body: r.rows.map((x) => [x.runtime, x.build, x.packets.toLocaleString('en-US'), Number.isFinite(x.pps) ? Math.round(x.pps).toLocaleString('en-US') : '-',
      Number.isFinite(x.pps) ? `${(x.pps / node).toFixed(2)}x` : '-', x.note]),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const quick = process.argv.includes('--quick');
  runtimesBench({ quick, work: join(root, 'bench', 'out') }).then((r) => {
    const t = runtimesTable(r);
    process.stdout.write(`## ${t.title}\n\n| ${t.header.join(' | ')} |\n|${t.header.map(() => '---').join('|')}|\n${t.body.map((b) => `| ${b.join(' | ')} |`).join('\n')}\n`);
  }).catch((e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  });
}
