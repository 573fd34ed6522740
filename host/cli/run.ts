// `sessionlb run --config FILE [--pcap-tap DIR]`: live mode on TAP devices (host/live/loop.ts).
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from '../ctl/config.js';
import { EXIT_FAIL, EXIT_OK, UsageError, report } from './errors.js';

export const RUN_USAGE = `usage: sessionlb run --config FILE [--pcap-tap DIR]

Balances live traffic on TAP devices (/dev/net/tun) named in the config's "live" section: one
interface towards the clients and one towards the backends, or a single one (role "both") for
one-armed DR. Answers ARP/ND and ping for its own addresses and the VIPs, resolves backend and
gateway MACs, health-checks the backends, and serves Prometheus metrics when live.metrics.listen
is set. Runs until SIGINT or SIGTERM, then prints the final counters (JSON) on stdout.
SIGHUP reloads the config: backends added, removed or re-weighted, flows kept.

options:
  --config FILE    JSON configuration with a "live" section (README "Live mode")   required
  --pcap-tap DIR   write what each interface receives and sends to DIR/<interface>.pcap
  --help           this text

Needs root (or CAP_NET_ADMIN) and /dev/net/tun. Logs are JSON lines on stderr.
exit codes: 0 stopped by a signal, 1 bad config or a failure (message says which), 2 usage error`;

export async function runLive(argv: string[]): Promise<number> {
  let values: { config?: string; 'pcap-tap'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        'pcap-tap': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
    if (values.help) {
      process.stdout.write(RUN_USAGE + '\n');
      return EXIT_OK;
    }
    if (!values.config) throw new UsageError('missing --config FILE');
  } catch (e) {
    return report(e, RUN_USAGE);
  }
  const configFile = values.config!;
  let lb: import('../live/loop.js').LiveBalancer | undefined;
  let metrics: { close(): Promise<void> | void; port: number } | null = null;
  try {
    const config = loadConfig(configFile);
    if (!config.live) throw new ConfigError('live', 'is required for `sessionlb run`: {"interfaces": [...], "gateway": {...}} (README "Live mode")');
    const { tapUnavailable } = await import('../live/tap.js');
    const why = tapUnavailable();
    if (why) {
      process.stderr.write(`sessionlb: cannot run: ${why}\n`);
      return EXIT_FAIL;
    }
    const { LiveBalancer, metricsConfig } = await import('../live/loop.js');
    lb = new LiveBalancer(config, { pcapDir: values['pcap-tap'] ?? null });
    lb.start();
    const mc = metricsConfig(config);
    if (mc) {
      const { startMetricsServer } = await import('../live/metrics.js');
      const l = lb;
      try {
        metrics = await startMetricsServer({ host: mc.address, port: mc.port, allowRemote: mc.allowRemote, collect: () => l.snapshot(), logger: lb.log });
      } catch (e) {
        throw Object.assign(new Error(`metrics: cannot listen on ${mc.address}:${mc.port}: ${(e as Error).message}`), { code: 'TAP_OPEN' });
      }
      lb.log.info('metrics listening', { url: `http://${mc.address.includes(':') ? `[${mc.address}]` : mc.address}:${metrics.port}/metrics` });
    }
  } catch (e) {
    lb?.stop();
    const err = e as Error & { code?: string };
    if (err.code === 'TAP_OPEN' || err.code === 'TAP_ADDON') {
      process.stderr.write(`sessionlb: ${err.message}\n`);
      return EXIT_FAIL;
    }
    return report(e);
  }
  const live = lb!;
  return new Promise<number>((resolve) => {
    const reload = () => {
      try {
        live.reload(loadConfig(configFile));
      } catch (e) {
        live.reloadFailures++;
        live.log.error('reload rejected, the running config stays', { error: (e as Error).message });
      }
    };
    const stop = (sig: string) => {
      process.off('SIGHUP', reload);
      live.log.info('stopping', { signal: sig });
      const snap = live.finalReport();
      live.stop();
      Promise.resolve(metrics?.close()).finally(() => {
        process.stdout.write(JSON.stringify({ final: true, ...snap }, null, 2) + '\n');
        resolve(EXIT_OK);
      });
    };
    process.on('SIGHUP', reload);
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
