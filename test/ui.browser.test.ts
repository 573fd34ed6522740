// The browser view in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core;
// no downloaded browser): the page served by `sessionlb ui` and opened from disk (file://) loads
// a capture, is configured through its form, and every number it shows is checked against the
// CLI run on the same capture with the config the page shows: report.json (per backend packets,
// bytes, flows and replies; drops and passes by reason; sessions; integrity; fairness of the
// three policies), the --flows CSV (which sessions, on which backend; integrity per policy) and
// `sessionlb evaluate --json`. The per-backend captures the page writes are downloaded and
// compared byte for byte with the CLI's. Screenshots go to test-output/ui/.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../host/ctl/config.js';
import { backendsByKey, integrity, sessionsFromFlows } from '../host/eval/evaluate.js';
import type { FlowRecord } from '../host/replay.js';
import type { Report } from '../host/report/report.js';
import { CLI, ROOT, runCli, tempDir } from './helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const RTSP = join(ROOT, '..', 'shared', 'fixtures', 'rtsp');
const PAGE = join(ROOT, 'dist', 'ui', 'index.html');
const OUT = tempDir('ui');

let context: BrowserContext;
let profile: string;
let server: ChildProcess | null = null;
let serverUrl = '';

beforeAll(async () => {
  // The page from the current sources (npm test builds it too; this keeps a lone run honest).
  const b = spawnSync(process.execPath, [join(ROOT, 'ui', 'build.mjs')], { encoding: 'utf8' });
  expect(b.status, b.stderr).toBe(0);
  profile = mkdtempSync(join(tmpdir(), 'sessionlb-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1440, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  server = spawn(process.execPath, [CLI, 'ui', '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  serverUrl = await new Promise<string>((done, fail) => {
    let text = '';
    server!.stdout!.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      const m = text.match(/serving (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m) done(m[1]);
    });
    server!.on('exit', (code) => fail(new Error(`sessionlb ui exited with ${code}`)));
    setTimeout(() => fail(new Error(`sessionlb ui printed no address: ${text}`)), 20_000);
  });
});

afterAll(async () => {
  await context?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGINT');
    await exited;
  }
  if (profile) rmSync(profile, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

interface Case {
  name: string;
  capture: string; // file given to the page and to the CLI
  form: { vip: string; ports?: string; rtspPorts?: string; method: string; scheduler: string; policy: string; backends: string };
  via: 'http' | 'file';
  /** Give the capture by dropping it on the page (a drop event carrying the file) instead of the file picker. */
  drop?: boolean;
}

/** The numbers the page shows, by their data-k key (text as displayed, commas and all). */
async function shown(page: Page): Promise<Record<string, string>> {
  const kv = await page.$$eval('[data-k]', (els) => els.map((e) => [(e as HTMLElement).dataset.k!, e.textContent ?? '']));
  return Object.fromEntries(kv);
}

const num = (s: string | undefined) => {
  expect(s, 'a number is shown').toBeDefined();
  return s === '–' ? null : Number(s!.replace(/,/g, ''));
};

async function runPage(c: Case): Promise<{ page: Page; values: Record<string, string>; config: unknown }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => {
    // Self-contained: the page itself is the only thing ever fetched.
    if (!r.url().startsWith('blob:') && r.url() !== (c.via === 'http' ? serverUrl : pathToFileURL(PAGE).href)) errors.push(`fetched ${r.url()}`);
  });
  await page.goto(c.via === 'http' ? serverUrl : pathToFileURL(PAGE).href);
  await page.waitForFunction(() => document.body.dataset.engine === 'ready');
  if (c.drop) {
    const b64 = readFileSync(c.capture).toString('base64');
    const name = c.capture.split('/').pop()!;
    await page.evaluate(([data, file]) => {
      const bytes = Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], file));
      const target = document.getElementById('drop')!;
      target.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      target.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, [b64, name]);
    await page.waitForFunction((file) => document.getElementById('capture-name')!.textContent!.startsWith(file), name);
  } else await page.setInputFiles('#capture-file', c.capture);
  // the page suggests the address with the most peers as the VIP; a click takes it
  await page.waitForSelector('#suggest button[data-vip]');
  expect(await page.getAttribute('#suggest button[data-vip]', 'data-vip')).toBe(c.form.vip);
  await page.fill('#vip', '192.0.2.1');
  await page.click('#suggest button[data-vip]');
  expect(await page.inputValue('#vip')).toBe(c.form.vip);
  await page.fill('#ports', c.form.ports ?? '');
  await page.fill('#rtsp-ports', c.form.rtspPorts ?? '554');
  await page.selectOption('#method', c.form.method);
  await page.selectOption('#scheduler', c.form.scheduler);
  await page.selectOption('#policy', c.form.policy);
  await page.fill('#backends', c.form.backends);
  await page.waitForFunction(() => !(document.getElementById('run') as HTMLButtonElement).disabled);
  await page.click('#run');
  await page.waitForFunction(() => document.body.dataset.state === 'done' || document.body.dataset.state === 'error', null, { timeout: 60_000 });
  expect(await page.textContent('#status')).toMatch(/^done/);
  expect(errors).toEqual([]);
  const config = JSON.parse(await page.inputValue('#config-json'));
  return { page, values: await shown(page), config };
}

function readFlows(csv: string): FlowRecord[] {
  const [head, ...rows] = readFileSync(csv, 'utf8').trim().split('\n');
  expect(head).toBe('proto,client_ip,client_port,vip,vip_port,backend,packets,bytes,session');
  return rows.map((l) => {
    const [proto, clientIp, clientPort, vip, vipPort, backend, packets, bytes, session] = l.split(',');
    return { proto, clientIp, clientPort: +clientPort, vip, vipPort: +vipPort, backend, packets: +packets, bytes: +bytes, session: session ?? '' };
  });
}

/** `sessionlb replay` with the raw config; report.json and the flows CSV. */
function cliReplay(capture: string, raw: unknown, dir: string): { report: Report; flows: FlowRecord[] } {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw));
  const r = runCli(['replay', capture, '--config', join(dir, 'config.json'), '--out', dir, '--flows', join(dir, 'flows.csv')]);
  expect(r.code, r.stderr).toBe(0);
  return { report: JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')), flows: readFlows(join(dir, 'flows.csv')) };
}

function withPolicy(raw: any, policy: string, scheduler: string): unknown {
  return { ...raw, vips: raw.vips.map((v: any) => ({ ...v, policy, scheduler })) };
}

async function check(c: Case): Promise<{ report: Report; values: Record<string, string> }> {
  const { page, values: v, config: raw } = await runPage(c);
  const dir = tempDir(`ui/${c.name}-cli`);
  const { report, flows } = cliReplay(c.capture, raw, dir);
  const config: Config = parseConfig(raw);

  // what happened to every packet
  expect(num(v['summary.input.packets'])).toBe(report.input.packets);
  for (const [id, b] of Object.entries(report.backends)) {
    for (const k of ['packets', 'bytes', 'flows', 'replyPackets', 'replyBytes', 'weight'] as const) expect(num(v[`backends.${id}.${k}`]), `${id} ${k}`).toBe(b[k]);
  }
  expect(num(v['client.packets'])).toBe(report.client.packets);
  expect(num(v['client.bytes'])).toBe(report.client.bytes);
  expect(num(v['summary.passed'])).toBe(report.passed);
  expect(num(v['summary.droppedTotal'])).toBe(report.droppedTotal);
  for (const [k, n] of Object.entries(report.dropped)) expect(num(v[`dropped.${k}`]), `dropped ${k}`).toBe(n);
  for (const [k, n] of Object.entries(report.passedBy)) expect(num(v[`passedBy.${k}`]), `passed ${k}`).toBe(n);
  expect(num(v['summary.flows.created'])).toBe(report.flows.created);
  for (const k of ['started', 'completed', 'timedOut', 'controlLost', 'openAtEnd', 'refused'] as const) expect(num(v[`sessions.${k}`]), k).toBe(report.sessions[k]);
  expect(num(v['sessions.expectations.created'])).toBe(report.sessions.expectations.created);
  expect(num(v['summary.sessions.integrity'])).toBeCloseTo(report.sessions.integrity, 4);

  // the session table: the sessions of the CLI's flows, each on the backend its flows reached
  const bySession = new Map<string, Set<string>>();
  for (const f of flows) if (f.session) bySession.set(f.session, (bySession.get(f.session) ?? new Set()).add(f.backend));
  const rows = await page.$$eval('#sessions-table tbody tr[data-session]', (trs) => trs.map((tr) => (tr as HTMLElement).dataset.session!));
  expect(rows.length).toBe(report.sessions.started);
  expect(new Set(rows)).toEqual(new Set(bySession.keys()));
  for (const id of rows) {
    expect(bySession.get(id)!.size, `session ${id} whole in the CLI run`).toBe(1);
    expect(v[`session.${id}.backend`]).toBe([...bySession.get(id)!][0]);
  }

  // three policies: fairness from the CLI's report.json of each, integrity from its flows with
  // the session run's session -> flows mapping as the ground truth
  const scheduler = config.vips[0].scheduler;
  const runs = [['flow', scheduler], ['client', 'sh'], ['session', scheduler]] as const;
  const results = runs.map(([policy, sched]) => ({ policy, ...cliReplay(c.capture, withPolicy(raw, policy, sched), tempDir(`ui/${c.name}-${policy}`)) }));
  const sessions = sessionsFromFlows(results[2].flows, config);
  for (const r of results) {
    const k = `policy.${r.policy}`;
    for (const m of ['packets', 'bytes', 'flows'] as const) {
      expect(num(v[`${k}.${m}.jain`]), `${k} ${m} jain`).toBeCloseTo(r.report.fairness[m].jain, 4);
      expect(num(v[`${k}.${m}.maxMean`]), `${k} ${m} max/mean`).toBeCloseTo(r.report.fairness[m].maxMean, 4);
    }
    const ig = integrity(sessions, backendsByKey(r.flows));
    if (ig.integrity === null) expect(v[`${k}.integrity`]).toBe('–');
    else expect(num(v[`${k}.integrity`]), `${k} integrity`).toBeCloseTo(ig.integrity, 4);
    expect(v[`${k}.whole`]).toBe(`${ig.whole}/${ig.sessions}`);
  }
  if (scheduler === 'maglev') {
    // and end to end against `sessionlb evaluate`, which runs the same three policies
    const e = runCli(['evaluate', c.capture, '--config', join(dir, 'config.json'), '--json']);
    expect(e.code, e.stderr).toBe(0);
    const ev = JSON.parse(e.stdout);
    for (const p of ['flow', 'client', 'session']) {
      if (ev[p].integrity === null) expect(v[`policy.${p}.integrity`]).toBe('–');
      else expect(num(v[`policy.${p}.integrity`]), `evaluate ${p}`).toBeCloseTo(ev[p].integrity, 4);
    }
  }

  // the chart has lines in each backend's colour
  const coloured = await page.$eval('#chart', (cv) => {
    const c = cv as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && Math.abs(d[i] - d[i + 1]) + Math.abs(d[i + 1] - d[i + 2]) > 60) n++;
    return n;
  });
  expect(coloured).toBeGreaterThan(50);

  // downloads: each backend's capture and the client side's, byte for byte the CLI's
  for (const id of [...Object.keys(report.backends), 'client']) {
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`a[data-download="${id}.pcap"]`)]);
    const saved = join(OUT, `${c.name}-${id}.pcap`);
    await dl.saveAs(saved);
    expect(readFileSync(saved).equals(readFileSync(join(dir, `${id}.pcap`))), `${id}.pcap`).toBe(true);
  }

  await page.screenshot({ path: join(OUT, `${c.name}.png`), fullPage: true });
  await page.close();
  return { report, values: v };
}

// ---------------------------------------------------------------------------------------------

describe('browser view (headless Chromium)', () => {
  it('Chromium and the built page are there', () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} (Debian package chromium; .ci/run installs it)`).toBe(true);
    expect(existsSync(PAGE)).toBe(true);
    const html = readFileSync(PAGE, 'utf8');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|import\s*\(/); // one file, nothing to load
  });

  it('served by `sessionlb ui`: fixtures/sample.pcap, NAT, Maglev, weights 1:1:2, matches the CLI', async () => {
    const { report } = await check({
      name: 'sample-http', capture: join(ROOT, 'fixtures', 'sample.pcap'), via: 'http',
      form: { vip: '10.0.0.100', ports: '80 443', method: 'nat', scheduler: 'maglev', policy: 'flow', backends: 'b1 10.0.1.1 1\nb2 10.0.1.2 1\nb3 10.0.1.3 2' },
    });
    expect(report.input.packets).toBe(20000);
  });

  it('served by `sessionlb ui`: the real concurrent RTSP capture dropped on the page, policy session, matches the CLI; sessions whole only under session and client policies', async () => {
    const { report, values } = await check({
      name: 'rtsp-http', capture: join(RTSP, 'b_concurrent_udp.pcap'), via: 'http', drop: true,
      form: { vip: '10.77.0.1', rtspPorts: '8554', method: 'nat', scheduler: 'maglev', policy: 'session', backends: 'b1 10.77.1.1\nb2 10.77.1.2\nb3 10.77.1.3' },
    });
    expect(report.sessions.started).toBe(6);
    expect(values['policy.session.whole']).toBe('6/6');
    expect(num(values['policy.flow.integrity'])).toBeLessThan(1);
  });

  it('opened from disk (file://): a pcapng of the VLC RTSP capture, DR with wrr 1:2:3, matches the CLI', async () => {
    const pcapng = join(OUT, 'd_vlc_server.pcapng');
    const e = spawnSync('editcap', ['-F', 'pcapng', join(RTSP, 'd_vlc_server.pcap'), pcapng], { encoding: 'utf8' });
    expect(e.status, e.stderr).toBe(0);
    const { report } = await check({
      name: 'vlc-pcapng-file', capture: pcapng, via: 'file',
      form: { vip: '10.77.0.1', rtspPorts: '8554', method: 'dr', scheduler: 'wrr', policy: 'session', backends: 'b1 10.77.1.1 1\nb2 10.77.1.2 2\nb3 10.77.1.3 3' },
    });
    expect(report.input.format).toBe('pcapng');
    expect(report.sessions.started).toBeGreaterThan(0);
  });
});
