// Prometheus text for the gateway (families prefixed sessionlb_gateway_), served on a loopback
// address like live mode's endpoint (same content type, /metrics and /healthz).
//
//   sessionlb_gateway_uptime_seconds gauge
//   sessionlb_gateway_config_reloads_total, _config_reload_failures_total counters
//   sessionlb_gateway_connections_open gauge            client connections being proxied
//   sessionlb_gateway_connections_accepted_total counter
//   sessionlb_gateway_connections_proxied_total counter  reached a backend
//   sessionlb_gateway_refused_total{reason} counter      limit|no_backend|bad_request|too_large|head_timeout|closed_early
//   sessionlb_gateway_choices_total{reason} counter      session|rule|scheduler
//   sessionlb_gateway_redispatches_total counter         another backend tried after a failed connect
//   sessionlb_gateway_sessions{vip} gauge                RTSP sessions in the table
//   sessionlb_gateway_sessions_created_total, _ended_total counters
//   sessionlb_gateway_backend_up{vip,backend} gauge 1/0 (not checked = 1)
//   sessionlb_gateway_backend_state{vip,backend,state} gauge
//   sessionlb_gateway_backend_connections{vip,backend} gauge (open)
//   sessionlb_gateway_backend_connections_total, _connect_failures_total counters
//   sessionlb_gateway_backend_bytes_total{vip,backend,direction="to_backend"|"to_client"} counter
//   sessionlb_gateway_backend_sessions{vip,backend} gauge
import { createServer } from 'node:http';
import { METRICS_CONTENT_TYPE, isLoopback } from '../live/metrics.js';
import type { Logger } from '../live/log.js';
import type { GatewaySnapshot } from './proxy.js';

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderGatewayMetrics(s: GatewaySnapshot): string {
  const out: string[] = [];
  const fam = (name: string, type: 'counter' | 'gauge', help: string, samples: [Record<string, string>, number][]) => {
    if (!samples.length) return;
    const full = `sessionlb_gateway_${name}`;
    out.push(`# HELP ${full} ${help}`, `# TYPE ${full} ${type}`);
    for (const [labels, v] of samples) {
      const ls = Object.entries(labels).map(([k, x]) => `${k}="${esc(x)}"`).join(',');
      out.push(`${full}${ls ? `{${ls}}` : ''} ${v}`);
    }
  };
  const st = s.stats;
  fam('uptime_seconds', 'gauge', 'Seconds since the gateway started.', [[{}, s.uptimeSeconds]]);
  fam('config_reloads_total', 'counter', 'Configuration reloads applied (SIGHUP).', [[{}, s.reloads]]);
  fam('config_reload_failures_total', 'counter', 'Configuration reloads refused (the old configuration stayed).', [[{}, s.reloadFailures]]);
  fam('connections_open', 'gauge', 'Client connections being proxied.', [[{}, st.open]]);
  fam('connections_accepted_total', 'counter', 'Client connections accepted.', [[{}, st.accepted]]);
  fam('connections_proxied_total', 'counter', 'Client connections joined to a backend connection.', [[{}, st.proxied]]);
  fam('refused_total', 'counter', 'Client connections answered or closed by the gateway itself, by reason.', Object.entries(st.refused).map(([reason, v]) => [{ reason }, v]));
  fam('choices_total', 'counter', 'Backend choices by what decided them.', Object.entries(st.choices).map(([reason, v]) => [{ reason }, v]));
  fam('redispatches_total', 'counter', 'Another backend tried after a failed connect.', [[{}, st.redispatches]]);
  fam('sessions', 'gauge', 'RTSP sessions in the session table.', s.vips.map((v) => [{ vip: v.address }, v.sessions]));
  fam('sessions_created_total', 'counter', 'RTSP sessions learnt from SETUP replies.', [[{}, st.sessionsCreated]]);
  fam('sessions_ended_total', 'counter', 'RTSP sessions ended by TEARDOWN or timeout.', [[{}, st.sessionsEnded]]);
  const bl = (b: GatewaySnapshot['backends'][number]) => ({ vip: b.vip, backend: b.id });
  fam('backend_up', 'gauge', 'Health of the backend: 1 up (or not checked), 0 down.', s.backends.map((b) => [bl(b), b.health === 'down' ? 0 : 1]));
  fam('backend_state', 'gauge', 'Backend state (configured state and health): 1 for the current one.',
    s.backends.flatMap((b) => (['active', 'draining', 'down'] as const).map((x): [Record<string, string>, number] => [{ ...bl(b), state: x }, b.state === x ? 1 : 0])));
  fam('backend_connections', 'gauge', 'Open proxied connections to the backend.', s.backends.map((b) => [bl(b), b.conns]));
  fam('backend_connections_total', 'counter', 'Proxied connections opened to the backend.', s.backends.map((b) => [bl(b), b.total]));
  fam('backend_connect_failures_total', 'counter', 'Connects to the backend that failed or timed out.', s.backends.map((b) => [bl(b), b.connectFailures]));
  fam('backend_bytes_total', 'counter', 'Bytes copied, by direction.', s.backends.flatMap((b): [Record<string, string>, number][] => [
    [{ ...bl(b), direction: 'to_backend' }, b.bytesToBackend], [{ ...bl(b), direction: 'to_client' }, b.bytesToClient]]));
  fam('backend_sessions', 'gauge', 'RTSP sessions on the backend.', s.backends.map((b) => [bl(b), b.sessions]));
  return out.join('\n') + '\n';
}

export async function startGatewayMetrics(opts: { host: string; port: number; allowRemote: boolean; collect: () => GatewaySnapshot; logger?: Logger }): Promise<{ port: number; close(): Promise<void> }> {
  if (!isLoopback(opts.host) && !opts.allowRemote) throw new Error(`metrics: refusing to listen on ${opts.host}: not a loopback address`);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : 'ok\n');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: try /metrics or /healthz\n');
      return;
    }
    let text: string;
    try {
      text = renderGatewayMetrics(opts.collect());
    } catch (e) {
      opts.logger?.error('metrics collection failed', { err: e });
      res.writeHead(500).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : text);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  return {
    port: typeof a === 'object' && a ? a.port : 0,
    close: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }),
  };
}
