// Robustness: every capture of tcpdump's test corpus (../shared/fixtures/tcpdump, ~830 files,
// classic pcap and pcapng, many deliberately malformed, dozens of link types) replays through the
// CLI without a crash, a WebAssembly trap or a hang, and report.json accounts for every packet
// exactly: input.packets == sum(backends[*].packets) + client.packets + passed + sum(dropped).
// Each output pcap must be readable and hold the number of frames the report says. And the reader
// loses nothing: for every file Wireshark's capinfos can read (816 of 830; the rest have link
// types it does not know), input.packets is capinfos's packet count.
//
// Every corpus file starts with a valid pcap or pcapng header, so every one must exit 0 (damage
// after the header is the reader's to report in input.truncated / input.errors). Files that are
// not captures at all are made here (text, empty, bad version, short header); they must exit 1
// with a one-line "sessionlb: ..." message naming the problem, not a stack trace.
//
// The VIPs are the most frequent TCP/UDP destinations of the corpus, found once with
//   for f in *.pcap *.pcapng; do tshark -n -r $f -T fields -e ip.dst -e ipv6.dst \
//     -e tcp.dstport -e udp.dstport -E occurrence=f; done | sort | uniq -c | sort -rn
// 127.0.0.1 (35 files: redis 6379, OpenFlow 6633, ...), 131.151.32.21 (afs.pcap), 10.0.0.20
// (OpenFlow captures), 10.1.1.2 (mptcp ssh), 131.151.1.59, ::1 and 20::1:1:2. They serve every
// port, and between them use every method and every scheduler, so real traffic of every odd shape
// (mid-stream TCP, fragments, ICMP errors, options, tunnels inside tunnels) gets rewritten and
// encapsulated, not only dropped.
//
// Speed: one CLI process per file, two at a time (the CI machine has 2 CPUs); the test logs the
// wall time and writes test-output/robustness/summary.json.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { accounting, ROOT, runCliAsync, tempDir, type CliResult, type Report } from './helpers/cli.js';
import { readPcap } from './helpers/tcprewrite.js';

const CORPUS = resolve(ROOT, '..', 'shared', 'fixtures', 'tcpdump');
const CONCURRENCY = 2;

const be = (prefix: string, net: number) => [1, 2].map((i) => ({ id: `${prefix}${i}`, address: `10.9.${net}.${i}` }));
const CONFIG = {
  mac: '02:00:00:00:00:fe',
  flowCapacity: 16384,
  vips: [
    { address: '127.0.0.1', method: 'nat', scheduler: 'maglev', backends: [{ id: 'lo-a', address: '127.0.0.11' }, { id: 'lo-b', address: '127.0.0.12' }] },
    { address: '131.151.32.21', method: 'ipip', scheduler: 'rr', backends: be('afs', 1) },
    { address: '10.0.0.20', method: 'gre', scheduler: 'wrr', backends: be('of', 2).map((b, i) => ({ ...b, weight: i + 1 })) },
    { address: '10.1.1.2', method: 'dr', scheduler: 'lc', ports: [22], backends: be('ssh', 3) },
    { address: '131.151.1.59', method: 'gue', scheduler: 'sh', tunnel: { source6: 'fd00::1' }, backends: [{ id: 'g6-a', address: 'fd00:9::1' }, { id: 'g6-b', address: 'fd00:9::2' }] },
    { address: '::1', method: 'gue', scheduler: 'p2c', tunnel: { guePort: 6081 }, backends: [{ id: 'v6-a', address: 'fd00:6::1' }, { id: 'v6-b', address: 'fd00:6::2' }] },
    { address: '20::1:1:2', method: 'ipip', scheduler: 'wlc', tunnel: { source: '10.0.0.1' }, backends: be('six', 4) },
  ],
};
const BACKEND_IDS = CONFIG.vips.flatMap((v) => v.backends.map((b) => b.id));

/**
 * Packet counts of the files Wireshark can read, from one `capinfos -T -r -c` over all of them
 * (it prints a row per readable file and an error for each other one, and goes on).
 */
function capinfosCounts(files: string[]): Map<string, number> {
  const r = spawnSync('/usr/bin/capinfos', ['-T', '-r', '-c', ...files], { cwd: CORPUS, encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.error) throw r.error;
  const counts = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const [name, n] = line.split('\t');
    if (name && /^\d+$/.test(n ?? '')) counts.set(name, Number(n));
  }
  return counts;
}

/** Runs `jobs` with at most `n` at a time, keeping results in order. */
async function pool<T, R>(items: T[], n: number, job: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await job(items[i], i);
      }
    }),
  );
  return out;
}

interface Outcome {
  file: string;
  result: CliResult;
  report?: Report;
  problems: string[];
}

function checkReplay(file: string, outDir: string, result: CliResult): Outcome {
  const o: Outcome = { file, result, problems: [] };
  if (result.signal) o.problems.push(`killed by ${result.signal} after ${Math.round(result.ms)} ms (hang or crash)`);
  if (result.code !== 0) {
    o.problems.push(`exit ${result.code}: ${result.stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
    return o;
  }
  let r: Report;
  try {
    r = JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8')) as Report;
  } catch (e) {
    o.problems.push(`report.json unreadable: ${(e as Error).message}`);
    return o;
  }
  o.report = r;
  const a = accounting(r);
  if (a.total !== a.input) o.problems.push(`accounting: input ${a.input} != backends ${a.backends} + client ${a.client} + passed ${a.passed} + dropped ${a.dropped}`);
  const lt = Object.values(r.input.linktypes).reduce((x, y) => x + y, 0);
  if (lt !== a.input) o.problems.push(`input.linktypes add up to ${lt}, input.packets is ${a.input}`);
  for (const id of [...BACKEND_IDS, 'client']) {
    const expected = id === 'client' ? r.client.packets : r.backends[id]?.packets;
    try {
      const p = readPcap(join(outDir, `${id}.pcap`));
      if (p.linktype !== 1) o.problems.push(`${id}.pcap has link type ${p.linktype}, not Ethernet`);
      if (p.frames.length !== expected) o.problems.push(`${id}.pcap holds ${p.frames.length} frames, report says ${expected}`);
    } catch (e) {
      o.problems.push(`${id}.pcap: ${(e as Error).message}`);
    }
  }
  return o;
}

describe('robustness: the tcpdump corpus through the CLI', () => {
  it('replays every capture without a crash and accounts for every packet', { timeout: 900_000 }, async () => {
    const files = readdirSync(CORPUS)
      .filter((f) => /\.(pcap|pcapng)$/.test(f))
      .sort();
    expect(files.length, `corpus at ${CORPUS}`).toBeGreaterThan(800);
    const dir = tempDir('robustness');
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify(CONFIG, null, 2));

    const wireshark = capinfosCounts(files);
    expect(wireshark.size, 'files capinfos reads').toBeGreaterThan(800);

    const t0 = performance.now();
    const outcomes = await pool(files, CONCURRENCY, async (f, i) => {
      const out = join(dir, 'out', String(i));
      const result = await runCliAsync(['replay', join(CORPUS, f), '--config', config, '--out', out, '--quiet'], { timeoutMs: 60_000 });
      const o = checkReplay(f, out, result);
      const expected = wireshark.get(f);
      if (o.report && expected !== undefined && o.report.input.packets !== expected)
        o.problems.push(`input.packets ${o.report.input.packets}, capinfos counts ${expected}`);
      // keep report.json; keep everything of a failure for a look
      if (o.problems.length === 0) for (const id of [...BACKEND_IDS, 'client']) rmSync(join(out, `${id}.pcap`), { force: true });
      return o;
    });
    const seconds = (performance.now() - t0) / 1000;

    const totals = { packets: 0, backends: 0, client: 0, passed: 0, dropped: 0, truncatedFiles: 0, filesWithErrors: 0 };
    const linktypes: Record<string, number> = {};
    const dropped: Record<string, number> = {};
    const passedBy: Record<string, number> = {};
    for (const o of outcomes) {
      if (!o.report) continue;
      const a = accounting(o.report);
      totals.packets += a.input;
      totals.backends += a.backends;
      totals.client += a.client;
      totals.passed += a.passed;
      totals.dropped += a.dropped;
      if (o.report.input.truncated) totals.truncatedFiles++;
      if (o.report.input.errors.length) totals.filesWithErrors++;
      for (const [k, v] of Object.entries(o.report.input.linktypes)) linktypes[k] = (linktypes[k] ?? 0) + v;
      for (const [k, v] of Object.entries(o.report.dropped)) dropped[k] = (dropped[k] ?? 0) + v;
      for (const [k, v] of Object.entries(o.report.passedBy)) passedBy[k] = (passedBy[k] ?? 0) + v;
    }
    const slowest = [...outcomes].sort((x, y) => y.result.ms - x.result.ms).slice(0, 5).map((o) => `${o.file} ${Math.round(o.result.ms)} ms`);
    const failures = outcomes.filter((o) => o.problems.length).map((o) => `${o.file}: ${o.problems.join('; ')}`);
    const summary = { files: files.length, seconds: Math.round(seconds * 10) / 10, concurrency: CONCURRENCY, totals, linktypes, passedBy, dropped, slowest, failures };
    writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    console.log(`robustness: ${files.length} files in ${summary.seconds} s (${CONCURRENCY} at a time); packets ${totals.packets}, to backends ${totals.backends}, to clients ${totals.client}, passed ${totals.passed}, dropped ${totals.dropped}; ${failures.length} failures; details in ${join(dir, 'summary.json')}`);

    expect(failures, 'files that crashed, hung, failed or broke the accounting').toEqual([]);
    // Not trivially true: the corpus really was read, and real traffic matched the VIPs.
    expect(totals.packets).toBeGreaterThan(9000);
    expect(totals.backends, 'packets forwarded to backends across the corpus').toBeGreaterThan(100);
    expect(totals.passed, 'packets passed to the host across the corpus').toBeGreaterThan(100);
    expect(Object.keys(linktypes).length, `link types seen: ${Object.keys(linktypes).join(', ')}`).toBeGreaterThanOrEqual(8);
    for (const lt of ['1', '127', '113', '0', '101']) expect(linktypes[lt] ?? 0, `packets of link type ${lt}`).toBeGreaterThan(0);
  });

  it('refuses files that are not captures with exit 1 and a one-line message', async () => {
    const dir = tempDir('robustness-not-captures');
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify(CONFIG));
    const header = Buffer.alloc(24);
    header.writeUInt32LE(0xa1b2c3d4, 0);
    header.writeUInt16LE(9, 4); // version 9.4: no such pcap
    header.writeUInt16LE(4, 6);
    header.writeUInt32LE(65535, 16);
    header.writeUInt32LE(1, 20);
    // 'refuse': not a capture at all (no known magic number): exit 1 with a message.
    // 'damaged': a pcap magic number but a broken header: either refused like the above, or read
    // with exit 0 and the damage listed in report.json's input.errors (what sessionlb does now).
    const cases: [string, Buffer, 'refuse' | 'damaged'][] = [
      ['text.pcap', readFileSync(join(CORPUS, 'README.md')), 'refuse'],
      ['empty.pcap', Buffer.alloc(0), 'refuse'],
      ['zeros.pcapng', Buffer.alloc(4096), 'refuse'],
      ['short-header.pcap', header.subarray(0, 10), 'damaged'],
      ['bad-version.pcap', header, 'damaged'],
    ];
    for (const [name, bytes, kind] of cases) {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      const out = join(dir, 'out', name);
      const r = await runCliAsync(['replay', path, '--config', config, '--out', out, '--quiet']);
      const msg = r.stderr.trim();
      if (kind === 'damaged' && r.code === 0) {
        const o = checkReplay(name, out, r);
        expect(o.problems, name).toEqual([]);
        expect(o.report!.input.errors.length, `${name}: read with exit 0, so input.errors must say what is wrong`).toBeGreaterThan(0);
        continue;
      }
      expect(r.code, `${name}: ${msg}`).toBe(1);
      expect(msg, `${name}: a one-line message`).not.toContain('\n');
      expect(msg, `${name}: a message, not a stack trace`).not.toMatch(/\bat .*:\d+:\d+/);
      expect(msg, name).toMatch(/^sessionlb: /);
      expect(msg, `${name}: the message should name the file`).toContain(name);
    }
  });
});
