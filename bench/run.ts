// `npm run bench`: every benchmark of bench/, measured side by side in one run, written to
// bench/RESULTS.md with the machine it ran on. Targets are goals printed next to the figures,
// never assertions. Options: --quick (shorter runs, smaller capture), --out FILE.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { join, resolve } from 'node:path';
import { natForwarding, wasmVsTs, memoryPerFlow, type Row } from './engine.js';
import { rtspTokenizerBench } from './rtsp.js';
import { runtimesBench, runtimesTable } from './runtimes.js';
import { spliceVsNat, cookieRate } from './splice.js';

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const outFile = argv.includes('--out') ? argv[argv.indexOf('--out') + 1] : join(root, 'bench', 'RESULTS.md');
const work = join(root, 'bench', 'out');
const cli = join(root, 'dist', 'host', 'cli', 'main.js');
mkdirSync(work, { recursive: true });

function log(s: string) {
  process.stderr.write(s + '\n');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Wall time of a whole process, median of `runs`. */
function timeProcess(cmd: string, args: string[], runs: number): number {
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
    ts.push(dt);
  }
  return median(ts);
}

function machine(): string {
  const c = cpus();
  // tcprewrite prints its version on stderr.
  const v = spawnSync('tcprewrite', ['--version'], { encoding: 'utf8' });
  const tcprewrite = v.error ? 'tcprewrite not installed' : `${v.stdout}${v.stderr}`.split('\n')[0].trim();
  return [
    `- date: ${new Date().toISOString()}`,
    `- CPU: ${c[0]?.model ?? 'unknown'}, ${c.length} cores as seen by Node (${c[0]?.speed ?? '?'} MHz)`,
    `- memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB; kernel ${release()}`,
    `- Node ${process.version}; ${tcprewrite}`,
    `- load average when starting: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  ].join('\n');
}

async function main() {
  const rows: string[] = [];
  const table = (title: string, header: string[], body: (string | number)[][]) => {
    rows.push(`## ${title}\n`);
    rows.push(`| ${header.join(' | ')} |`);
    rows.push(`|${header.map(() => '---').join('|')}|`);
    for (const r of body) rows.push(`| ${r.join(' | ')} |`);
    rows.push('');
  };

  // 1. Whole process: sessionlb replay (NAT, one backend) vs tcprewrite --dstipmap --fixcsum.
  const packets = quick ? 200_000 : 1_000_000;
  const capture = join(work, `flows-${packets}.pcap`);
  if (!existsSync(capture)) {
    log(`generating ${capture}`);
    execFileSync('node', [cli, 'generate', 'flows', '--out', capture, '--packets', String(packets), '--flows', '20000', '--seed', '1', '--vip', '10.0.0.100'], { stdio: 'inherit' });
  }
  const single = join(work, 'nat-single.json');
  writeFileSync(single, JSON.stringify({ vips: [{ address: '10.0.0.100', ports: [80], method: 'nat', backends: [{ id: 'b1', address: '10.0.1.1', mac: '02:00:00:00:01:01' }] }] }));
  const three = join(root, 'fixtures', 'default.json');
  const runs = quick ? 1 : 3;
  const rwOut = join(work, 'tcprewrite-out.pcap');
  let rw = NaN;
  try {
    log('timing tcprewrite');
    rw = timeProcess('tcprewrite', ['--dstipmap=10.0.0.100/32:10.0.1.1/32', '--fixcsum', '-i', capture, '-o', rwOut], runs);
  } catch (e) {
    log(`tcprewrite unavailable: ${(e as Error).message}`);
  }
  log('timing sessionlb replay');
  const slb = timeProcess('node', [cli, 'replay', capture, '--config', single, '--out', join(work, 'replay-single'), '--quiet'], runs);
  const slb3 = timeProcess('node', [cli, 'replay', capture, '--config', three, '--out', join(work, 'replay-maglev3'), '--quiet'], runs);
  const report = JSON.parse(readFileSync(join(work, 'replay-single', 'report.json'), 'utf8'));
  const size = statSync(capture).size;
  table(`Whole process: ${packets.toLocaleString('en-US')}-packet capture (${(size / 1e6).toFixed(0)} MB), median of ${runs}`, ['command', 'seconds', 'packets/s', 'ratio to tcprewrite'], [
    ['`tcprewrite --dstipmap=10.0.0.100/32:10.0.1.1/32 --fixcsum`', rw.toFixed(3), Math.round(packets / rw).toLocaleString('en-US'), '1.00x'],
    ['`sessionlb replay` NAT, 1 backend (outputs written)', slb.toFixed(3), Math.round(packets / slb).toLocaleString('en-US'), `${(rw / slb).toFixed(2)}x (target >= 5x)`],
    ['`sessionlb replay` NAT, Maglev over 3 backends (fixtures/default.json)', slb3.toFixed(3), Math.round(packets / slb3).toLocaleString('en-US'), `${(rw / slb3).toFixed(2)}x`],
  ]);
  rows.push(`Inside that replay the engine's share: ${Math.round(report.enginePacketsPerSecond).toLocaleString('en-US')} packets/s in process() calls (report.json enginePacketsPerSecond).\n`);
  rmSync(rwOut, { force: true });

  // 1b. Session-aware vs flow-aware (and client persistence) replay of a generated RTSP workload.
  const nSessions = quick ? 300 : 2000;
  const rtsp = join(work, `rtsp-${nSessions}.pcap`);
  if (!existsSync(rtsp)) {
    log(`generating ${rtsp}`);
    execFileSync('node', [cli, 'generate', 'rtsp', '--sessions', String(nSessions), '--seed', '1', '--vip', '10.0.0.100', '--duration', '3-6', '--out', rtsp], { stdio: 'inherit' });
  }
  const polRows: (string | number)[][] = [];
  const pps: Record<string, number> = {};
  for (const policy of ['flow', 'client', 'session']) {
    const cfgFile = join(work, `policy-${policy}.json`);
    writeFileSync(cfgFile, JSON.stringify({ vips: [{ address: '10.0.0.100', policy, backends: [1, 2, 3].map((i) => ({ id: `b${i}`, address: `10.0.1.${i}` })) }] }));
    log(`timing replay with policy ${policy}`);
    const dir = join(work, `replay-${policy}`);
    const secs = timeProcess('node', [cli, 'replay', rtsp, '--config', cfgFile, '--out', dir, '--quiet'], runs);
    const rep = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    pps[policy] = rep.input.packets / secs;
    polRows.push([policy, secs.toFixed(3), Math.round(pps[policy]).toLocaleString('en-US'), Math.round(rep.enginePacketsPerSecond).toLocaleString('en-US'),
      `${(pps[policy] / pps.flow).toFixed(2)}x${policy === 'session' ? ' (target >= 0.8x)' : ''}`, rep.sessions.started, rep.fairness.packets.maxMean.toFixed(3)]);
  }
  const rtspPackets = JSON.parse(readFileSync(join(work, 'replay-flow', 'report.json'), 'utf8')).input.packets;
  table(`Session-aware vs flow-aware replay: generated RTSP workload (${nSessions} sessions, ${rtspPackets.toLocaleString('en-US')} packets), whole process, median of ${runs}`,
    ['policy', 'seconds', 'packets/s', 'engine packets/s', 'ratio to flow', 'sessions seen', 'packets max/mean'], polRows);

  // 2. Engine only, NAT, steady state with N live flows, vs the null pass.
  const secs = quick ? 0.5 : 2;
  const eng: (string | number)[][] = [];
  for (const flows of [64 * 1024, 1 << 20]) {
    log(`engine NAT with ${flows} flows`);
    const r = natForwarding(flows, secs);
    eng.push([flows.toLocaleString('en-US'), r.flowsLive.toLocaleString('en-US'), r.mpps.toFixed(2), r.nullMpps.toFixed(1), `${((r.mpps / r.nullMpps) * 100).toFixed(1)}%`, flows === 65536 ? '>= 15 (aim 20)' : '>= 6']);
  }
  table('Engine only: NAT forwarding, 60-byte UDP frames, batch 256, one core', ['flows', 'live flows', 'Mpps', 'null pass Mpps', 'NAT / null', 'target Mpps'], eng);
  rows.push('The null pass (export `null_pass`) reads each descriptor and 16 bytes of its frame and writes a verdict; both loops restore the batch\'s pristine frames with one memcpy per batch, included in both figures.\n');

  // 2b. Engine only, TCP splicing vs NAT on the same traffic (bench/splice.ts).
  log('engine splice vs NAT');
  const sp = spliceVsNat(4096, quick ? 1 : 4);
  table('Engine only: TCP splicing vs NAT, 4096 established connections, 130-byte TCP frames with timestamps, both directions, batch 256, one core', ['mode', 'Mpps', 'ratio to NAT'], [
    ['NAT', sp.natMpps.toFixed(2), '1.00x'],
    ['splice (seq/ack/timestamp/window translated)', sp.spliceMpps.toFixed(2), `${sp.ratio.toFixed(2)}x (target >= 0.7x)`],
    ['splice: SYN cookies (SYN in, SYN-ACK out in place, no state)', (cookieRate(quick ? 1 : 2) / 1e6).toFixed(2), ''],
  ]);

  // 3. WASM vs TypeScript.
  log('WASM vs TypeScript');
  const wt: Row[] = await wasmVsTs();
  table('WASM vs plain TypeScript (bench/ts-impl.ts), same inputs', ['what', 'figure', 'note'], wt.map((r) => [r.name, r.value, r.note ?? '']));

  log('RTSP tokenizer');
  const rt = await rtspTokenizerBench();
  table('RTSP tokenizer: WASM vs plain TypeScript (test/ref/rtsp.ts), same messages', ['what', 'figure', 'note'], rt.map((r) => [r.name, r.value, r.note ?? '']));

  // 4. Memory per flow.
  const mpf = memoryPerFlow();
  table('Flow table memory', ['what', 'bytes'], [
    ['flow table per tracked flow (4 flows per 256-byte bucket, docs/abi.md)', mpf.table.toFixed(1)],
    ['all linear memory per flow of capacity (init with 2M minus 1M flows): flow table + sessions, client affinity and RTSP reassembly sized from it', mpf.total.toFixed(1)],
  ]);

  // 5. The same module in other runtimes (bench/runtimes.ts).
  const rtm = runtimesTable(await runtimesBench({ quick, work, log }));
  table(rtm.title, rtm.header, rtm.body);

  const text = `# Benchmark results\n\nProduced by \`npm run bench\`${quick ? ' -- --quick' : ''} (bench/run.ts). Figures are measured side by side in one run on the machine below; the machine is shared, so compare ratios rather than absolute numbers.\n\n## Machine\n\n${machine()}\n\n${rows.join('\n')}`;
  // bench/lab.ts (npm run bench:lab) owns the section between its markers; keep it.
  const lab = existsSync(outFile) ? readFileSync(outFile, 'utf8').match(/<!-- lab:begin -->[\s\S]*<!-- lab:end -->\n?/)?.[0] : undefined;
  writeFileSync(outFile, lab ? `${text.replace(/\n*$/, '\n\n')}${lab}` : text);
  log(`wrote ${outFile}`);
  process.stdout.write(text);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
