// The browser view: pick or drop a capture, choose the balancing config, and see what the engine
// (build/sessionlb.wasm, inlined into the page by ui/build.mjs) does with it: load per backend
// over time, the RTSP session table, the three policies' integrity and fairness, drops by
// reason, and each backend's capture to download. Everything runs in the page.
import { parseConfig, ConfigError, METHODS, SCHEDULERS, POLICIES, type Config, type Policy, type Scheduler } from '../../host/ctl/config.js';
import { ABI_VERSION } from '../../host/wasm.js';
import { putFile, removeFile } from '../shims/fs.js';
import { runCapture, type RunResult, type SessionRow } from './run.js';
import { comparePolicies, type PolicyRow } from './policies.js';
import { scanCapture } from './scan.js';
import { drawChart, PALETTE } from './chart.js';

declare const __ENGINE_WASM_B64__: string;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const fmt = (n: number) => n.toLocaleString('en-US');
const f4 = (x: number | null) => (x === null ? '–' : x.toFixed(4));
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function bytesOf(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

let modulePromise: Promise<WebAssembly.Module> | null = null;
function engineModule(): Promise<WebAssembly.Module> {
  modulePromise ??= WebAssembly.compile(bytesOf(__ENGINE_WASM_B64__) as BufferSource);
  return modulePromise;
}

// ---------------------------------------------------------------------------------------------
// The form and the config it makes

let capture: { name: string; path: string; size: number } | null = null;
let downloads: string[] = [];

function fillSelect(id: string, values: readonly string[], value: string): void {
  const s = $<HTMLSelectElement>(id);
  s.innerHTML = values.map((v) => `<option${v === value ? ' selected' : ''}>${v}</option>`).join('');
}

function ports(text: string, field: string): number[] | undefined {
  const t = text.trim();
  if (!t) return undefined;
  return t.split(/[\s,]+/).map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(field, `"${x}" is not a port from 1 to 65535`);
    return n;
  });
}

/** The raw JSON config the form describes (what `sessionlb replay --config` would read). */
function formConfig(): Record<string, unknown> {
  const backends = $<HTMLTextAreaElement>('backends').value.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l, i) => {
    const [id, address, weight] = l.split(/\s+/);
    if (!address) throw new ConfigError(`backends line ${i + 1}`, 'write "id address [weight]"');
    const b: Record<string, unknown> = { id, address };
    if (weight !== undefined) b.weight = Number(weight);
    return b;
  });
  const vip: Record<string, unknown> = {
    address: $<HTMLInputElement>('vip').value.trim(),
    method: $<HTMLSelectElement>('method').value,
    scheduler: $<HTMLSelectElement>('scheduler').value,
    policy: $<HTMLSelectElement>('policy').value,
  };
  const p = ports($<HTMLInputElement>('ports').value, 'ports');
  if (p) vip.ports = p;
  const r = ports($<HTMLInputElement>('rtsp-ports').value, 'rtspPorts');
  if (r) vip.rtspPorts = r;
  vip.backends = backends;
  const raw: Record<string, unknown> = { vips: [vip] };
  const cap = $<HTMLInputElement>('flow-capacity').value.trim();
  if (cap) raw.flowCapacity = Number(cap);
  return raw;
}

function currentConfig(): { raw: unknown; config: Config } {
  const useJson = $<HTMLInputElement>('use-json').checked;
  const raw = useJson ? JSON.parse($<HTMLTextAreaElement>('config-json').value) : formConfig();
  const config = parseConfig(raw);
  return { raw, config };
}

function syncJson(): void {
  const err = $('config-error');
  if ($<HTMLInputElement>('use-json').checked) {
    try {
      currentConfig();
      err.textContent = '';
    } catch (e) {
      err.textContent = (e as Error).message;
    }
    return;
  }
  try {
    const raw = formConfig();
    $<HTMLTextAreaElement>('config-json').value = JSON.stringify(raw, null, 2);
    parseConfig(raw);
    err.textContent = '';
  } catch (e) {
    err.textContent = (e as Error).message;
  }
  updateRunButton();
}

function updateRunButton(): void {
  $<HTMLButtonElement>('run').disabled = !capture || $('config-error').textContent !== '';
}

async function setCapture(file: File): Promise<void> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (capture) removeFile(capture.path);
  const path = `/captures/${file.name}`;
  putFile(path, bytes);
  capture = { name: file.name, path, size: bytes.length };
  const magic = bytes.length >= 4 ? ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0 : 0;
  const kind = magic === 0x0a0d0d0a ? 'pcapng' : [0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1].includes(magic) ? 'pcap' : 'unknown format';
  $('capture-name').textContent = `${file.name} — ${fmt(bytes.length)} bytes, ${kind}`;
  $('drop').classList.add('loaded');
  updateRunButton();
  renderSuggestions(path);
}

/** The addresses with the most peers (servers: VIP candidates); a click makes one the VIP. */
function renderSuggestions(path: string): void {
  const box = $('suggest');
  try {
    const c = scanCapture(path);
    box.innerHTML = c.length ? `<div class="muted">Servers in this capture (most peers), click for the VIP:</div>` + c.map((x) =>
      `<button type="button" class="chip" data-vip="${esc(x.address)}">${esc(x.address)}</button> <span class="muted">${fmt(x.peers)} peers, ${fmt(x.packets)} pkts${
        x.ports.length ? `; ${x.ports.map((p) => `${p.proto}/${p.port}`).join(', ')}` : ''}</span>`).join('<br>') : '';
  } catch (e) {
    box.textContent = (e as Error).message;
  }
  box.querySelectorAll<HTMLButtonElement>('button[data-vip]').forEach((btn) => btn.addEventListener('click', () => {
    $<HTMLInputElement>('vip').value = btn.dataset.vip!;
    syncJson();
  }));
}

// ---------------------------------------------------------------------------------------------
// Results

function cell(k: string, text: string, cls = 'num'): string {
  return `<td class="${cls}" data-k="${esc(k)}">${esc(text)}</td>`;
}

function renderSummary(r: RunResult): void {
  const rep = r.report;
  const cards: [string, string, string][] = [
    ['input.packets', 'input packets', fmt(rep.input.packets)],
    ['toBackends', 'to backends', fmt(Object.values(rep.backends).reduce((s, b) => s + b.packets, 0))],
    ['client.packets', 'to clients', fmt(rep.client.packets)],
    ['passed', 'passed', fmt(rep.passed)],
    ['droppedTotal', 'dropped', fmt(rep.droppedTotal)],
    ['flows.created', 'flows', fmt(rep.flows.created)],
    ['sessions.started', 'sessions', fmt(rep.sessions.started)],
    ['sessions.integrity', 'session integrity', rep.sessions.integrity.toFixed(4)],
  ];
  $('summary').innerHTML = cards.map(([k, label, v]) => `<div class="card"><div class="v" data-k="summary.${k}">${v}</div><div class="l">${label}</div></div>`).join('');
  const errs = rep.input.errors.length ? ` · ${rep.input.errors.length} note(s) on the input: ${esc(rep.input.errors[0])}` : '';
  $('input-line').innerHTML = `${esc(capture?.name ?? '')}: ${rep.input.format}, ${fmt(rep.input.packets)} packets, ${fmt(rep.input.bytes)} bytes over ${rep.input.seconds} s of packet time${rep.input.truncated ? ', truncated' : ''}${errs}`;
}

let lastRun: RunResult | null = null;

function renderChart(): void {
  if (!lastRun) return;
  const r = lastRun;
  const ids = Object.keys(r.report.backends);
  const bytes = $<HTMLSelectElement>('chart-unit').value === 'bytes';
  const { binSeconds, series } = r.load.rates(bytes ? 'bytes' : 'packets', 160);
  drawChart($<HTMLCanvasElement>('chart'), ids.map((id, i) => ({ name: id, values: series[i] })), binSeconds, bytes ? 'bytes/s' : 'packets/s');
  $('legend').innerHTML = ids.map((id, i) => `<span><i style="background:${PALETTE[i % PALETTE.length]}"></i>${esc(id)}</span>`).join('') +
    `<span class="muted">rate in ${binSeconds >= 1 ? `${+binSeconds.toFixed(3)} s` : `${+(binSeconds * 1000).toFixed(3)} ms`} bins, to the backend and its replies</span>`;
}

function renderBackends(r: RunResult): void {
  for (const u of downloads) URL.revokeObjectURL(u);
  downloads = [];
  const link = (bytes: Uint8Array | undefined, name: string) => {
    if (!bytes) return '';
    const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/vnd.tcpdump.pcap' }));
    downloads.push(url);
    return `<a class="dl" href="${url}" download="${esc(name)}" data-download="${esc(name)}">${esc(name)}</a>`;
  };
  const rows = Object.entries(r.report.backends).map(([id, b], i) => `<tr data-backend="${esc(id)}">
    <td><i class="sw" style="background:${PALETTE[i % PALETTE.length]}"></i>${esc(id)}</td><td>${esc(b.address)}</td>${cell(`backends.${id}.weight`, fmt(b.weight))}
    ${cell(`backends.${id}.packets`, fmt(b.packets))}${cell(`backends.${id}.bytes`, fmt(b.bytes))}${cell(`backends.${id}.flows`, fmt(b.flows))}
    ${cell(`backends.${id}.replyPackets`, fmt(b.replyPackets))}${cell(`backends.${id}.replyBytes`, fmt(b.replyBytes))}
    <td>${link(r.captures?.[i], `${id}.pcap`)}</td></tr>`);
  rows.push(`<tr class="muted"><td>client side</td><td></td><td></td>${cell('client.packets', fmt(r.report.client.packets))}${cell('client.bytes', fmt(r.report.client.bytes))}<td></td><td></td><td></td>
    <td>${link(r.captures?.[r.captures.length - 1], 'client.pcap')}</td></tr>`);
  $('backends-table').querySelector('tbody')!.innerHTML = rows.join('');
}

function renderDrops(r: RunResult): void {
  const rep = r.report;
  const rows = [
    ...Object.entries(rep.dropped).map(([k, n]) => ({ kind: 'drop', k, n })),
    ...Object.entries(rep.passedBy).map(([k, n]) => ({ kind: 'pass', k, n })),
  ];
  const body = rows.map(({ kind, k, n }) => `<tr class="${n ? '' : 'zero'}"><td>${kind === 'drop' ? 'dropped' : 'passed'}: ${esc(k)}</td>${cell(`${kind === 'drop' ? 'dropped' : 'passedBy'}.${k}`, fmt(n))}</tr>`);
  body.push(`<tr class="total"><td>dropped, total</td>${cell('droppedTotal.table', fmt(rep.droppedTotal))}</tr>`);
  $('drops-table').querySelector('tbody')!.innerHTML = body.join('');
  const max = Math.max(1, ...Object.values(rep.dropped));
  $('drop-bars').innerHTML = Object.entries(rep.dropped).filter(([, n]) => n > 0)
    .map(([k, n]) => `<div class="bar"><span>${esc(k)}</span><b style="width:${(100 * n) / max}%"></b><em>${fmt(n)}</em></div>`).join('') ||
    '<p class="muted">No packet was dropped.</p>';
}

function renderPolicies(rows: PolicyRow[]): void {
  $('policies-table').querySelector('tbody')!.innerHTML = rows.map((p) => {
    const k = `policy.${p.policy}`;
    return `<tr data-policy="${p.policy}"><td>${p.policy} <span class="muted">(${p.scheduler})</span></td>
      ${cell(`${k}.integrity`, f4(p.integrity))}${cell(`${k}.whole`, `${p.whole}/${p.seen}`)}
      ${cell(`${k}.packets.jain`, f4(p.fairness.packets.jain))}${cell(`${k}.packets.maxMean`, f4(p.fairness.packets.maxMean))}
      ${cell(`${k}.bytes.jain`, f4(p.fairness.bytes.jain))}${cell(`${k}.bytes.maxMean`, f4(p.fairness.bytes.maxMean))}
      ${cell(`${k}.flows.jain`, f4(p.fairness.flows.jain))}${cell(`${k}.flows.maxMean`, f4(p.fairness.flows.maxMean))}</tr>`;
  }).join('');
}

function flowText(f: { proto: string; clientIp: string; clientPort: number; vipPort: number; backend: string; packets: number }): string {
  return `${f.proto} ${f.clientIp}:${f.clientPort} → :${f.vipPort} <b>${esc(f.backend)}</b> <span class="muted">${fmt(f.packets)} pkts</span>`;
}

function renderSessions(sessions: SessionRow[], rep: RunResult['report']): void {
  $('sessions-count').textContent = sessions.length ? `${sessions.length} in the table` : '';
  const s = rep.sessions;
  const stats: [string, string, number][] = [
    ['started', 'started (a SETUP reply named a new session)', s.started], ['completed', 'completed (TEARDOWN)', s.completed],
    ['timedOut', 'timed out', s.timedOut], ['controlLost', 'control connection lost', s.controlLost], ['openAtEnd', 'open at the end', s.openAtEnd],
    ['refused', 'refused by admission control', s.refused], ['expectations.created', 'media flows expected', s.expectations.created],
    ['expectations.matched', 'expectations matched', s.expectations.matched],
  ];
  $('session-stats').querySelector('tbody')!.innerHTML = stats.map(([k, label, n]) => `<tr><td>${label}</td>${cell(`sessions.${k}`, fmt(n))}</tr>`).join('');
  const body = sessions.map((s) => {
    const all = [...s.control, ...s.media];
    const whole = new Set(all.map((f) => f.backend)).size <= 1;
    const packets = all.reduce((n, f) => n + f.packets, 0);
    return `<tr data-session="${esc(s.id)}"><td class="mono">${esc(s.id)}</td><td>${esc(s.client)}</td><td data-k="session.${esc(s.id)}.backend">${esc(s.backend)}</td>
      <td>${s.control.map((f) => `<div>${flowText(f)}</div>`).join('')}</td>
      <td>${s.media.map((f) => `<div>${flowText(f)}</div>`).join('')}</td>
      ${cell(`session.${s.id}.packets`, fmt(packets))}<td><span class="${whole ? 'ok' : 'bad'}">${whole ? 'whole' : 'split'}</span><br><span class="muted">${esc(s.endReason || 'open')}</span></td></tr>`;
  });
  $('sessions-table').querySelector('tbody')!.innerHTML = body.join('') ||
    '<tr><td colspan="7" class="muted">No RTSP session: set the policy to session and the VIP\'s RTSP ports to see them.</td></tr>';
}

async function run(): Promise<void> {
  if (!capture) return;
  const status = $('status');
  document.body.dataset.state = 'running';
  $<HTMLButtonElement>('run').disabled = true;
  try {
    const { config } = currentConfig();
    const module = await engineModule();
    const vip = config.vips[0];
    const pause = () => new Promise((r) => setTimeout(r, 0));
    status.textContent = 'replaying…';
    await pause();
    const t0 = performance.now();
    const main = runCapture(module, capture.path, config, { outputs: true });
    lastRun = main;
    renderSummary(main);
    renderChart();
    renderBackends(main);
    renderDrops(main);
    renderSessions(main.sessions, main.report);
    status.textContent = 'comparing policies…';
    await pause();
    const policies = comparePolicies(module, capture.path, config, vip.scheduler as Scheduler, { policy: vip.policy as Policy, scheduler: vip.scheduler as Scheduler, result: main });
    renderPolicies(policies);
    $('results').hidden = false;
    const ms = performance.now() - t0;
    status.textContent = `done: ${fmt(main.report.input.packets)} packets, 4 replays in ${fmt(Math.round(ms))} ms (engine ${fmt(Math.round(main.engineMs))} ms for the first)`;
    document.body.dataset.state = 'done';
  } catch (e) {
    status.textContent = `error: ${(e as Error).message}`;
    document.body.dataset.state = 'error';
  } finally {
    updateRunButton();
  }
}

function init(): void {
  fillSelect('method', METHODS, 'nat');
  fillSelect('scheduler', SCHEDULERS, 'maglev');
  fillSelect('policy', POLICIES, 'session');
  $('engine-line').textContent = `engine.wasm ABI v${ABI_VERSION}, SIMD, inlined (${fmt(Math.round((__ENGINE_WASM_B64__.length * 3) / 4))} bytes)`;
  const form = $('config-form');
  form.addEventListener('input', (e) => {
    if ((e.target as HTMLElement).id !== 'config-json') syncJson();
  });
  $('config-json').addEventListener('input', () => {
    $<HTMLInputElement>('use-json').checked = true;
    syncJson();
    updateRunButton();
  });
  $('use-json').addEventListener('change', () => {
    syncJson();
    updateRunButton();
  });
  const input = $<HTMLInputElement>('capture-file');
  input.addEventListener('change', () => {
    if (input.files?.[0]) void setCapture(input.files[0]);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer?.files?.[0];
    if (f) void setCapture(f);
  });
  $('run').addEventListener('click', () => void run());
  $('chart-unit').addEventListener('change', renderChart);
  window.addEventListener('resize', renderChart);
  syncJson();
  void engineModule().then(
    () => (document.body.dataset.engine = 'ready'),
    (e) => ($('status').textContent = `engine failed to load: ${(e as Error).message}`),
  );
  document.body.dataset.state = 'idle';
}

init();
