// `sessionlb gateway --config FILE`: the TCP gateway baseline (host/gateway/, docs/gateway.md).
import { parseArgs } from 'node:util';
import { EXIT_FAIL, EXIT_OK, UsageError, report } from './errors.js';

export const GATEWAY_USAGE = `usage: sessionlb gateway --config FILE

A full TCP proxy on the VIPs' ports (the comparison baseline for splicing): accepts the client
connection, reads its first request head (HTTP/1.1 or RTSP/1.0), chooses the backend by content
(RTSP Session of a live session -> its backend; URL prefix rules; otherwise the VIP's scheduler),
connects to the backend and copies bytes both ways. HTTP keep-alive connections stay on the first
request's backend (tunnel mode). Backends are health-checked as in live mode.

The config is sessionlb's JSON config (VIPs with "ports", backends, schedulers, healthCheck) plus
an optional "gateway" object: rules, source, source6, maxConnections, connectTimeout,
idleTimeout, headTimeout, maxHead, retries, metrics, logLevel (docs/gateway.md). Each VIP must be
an address of this host (or of the network namespace the gateway runs in).

options:
  --config FILE    JSON configuration                                        required
  --help           this text

Runs until SIGINT or SIGTERM, then prints the final counters (JSON) on stdout. SIGHUP reloads
the config without dropping connections (backends, rules, limits, VIP ports; a bad config is
logged and the old one stays). Logs are JSON lines on stderr.
exit codes: 0 stopped by a signal, 1 bad config or cannot listen, 2 usage error`;

export async function runGateway(argv: string[]): Promise<number> {
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } }));
    if (values.help) {
      process.stdout.write(GATEWAY_USAGE + '\n');
      return EXIT_OK;
    }
    if (!values.config) throw new UsageError('missing --config FILE');
  } catch (e) {
    return report(e, GATEWAY_USAGE);
  }
  const { loadGatewayConfig } = await import('../gateway/config.js');
  const { Gateway } = await import('../gateway/proxy.js');
  let gw: import('../gateway/proxy.js').Gateway;
  let metrics: { port: number; close(): Promise<void> } | null = null;
  try {
    const cfg = loadGatewayConfig(values.config!);
    gw = new Gateway(cfg);
    await gw.start();
    const m = cfg.gateway.metrics;
    if (m) {
      const { startGatewayMetrics } = await import('../gateway/metrics.js');
      const g = gw;
      try {
        metrics = await startGatewayMetrics({ host: m.address, port: m.port, allowRemote: m.allowRemote, collect: () => g.snapshot(), logger: gw.log });
      } catch (e) {
        await gw.stop();
        process.stderr.write(`sessionlb: metrics: cannot listen on ${m.address}:${m.port}: ${(e as Error).message}\n`);
        return EXIT_FAIL;
      }
      gw.log.info('metrics listening', { url: `http://${m.address.includes(':') ? `[${m.address}]` : m.address}:${metrics.port}/metrics` });
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === 'GATEWAY_LISTEN') {
      process.stderr.write(`sessionlb: ${err.message}\n`);
      return EXIT_FAIL;
    }
    return report(e);
  }
  const g = gw!;
  g.log.info('gateway ready', { listening: g.addresses() });
  return new Promise<number>((resolve) => {
    const stop = (sig: string) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      process.off('SIGHUP', onHup);
      g.log.info('stopping', { signal: sig });
      const snap = g.snapshot();
      void Promise.all([g.stop(), metrics?.close()]).then(() => {
        process.stdout.write(JSON.stringify(snap, null, 2) + '\n');
        resolve(EXIT_OK);
      });
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    let reloading = Promise.resolve();
    const onHup = () => {
      reloading = reloading.then(async () => {
        try {
          const out = await g.reload(loadGatewayConfig(values.config!));
          g.log.info('config reloaded', out);
        } catch (e) {
          g.reloadFailures++;
          g.log.error('config reload failed; the old config stays', { error: (e as Error).message });
        }
      });
    };
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    process.on('SIGHUP', onHup);
  });
}
