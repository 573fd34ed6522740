// `sessionlb replay IN --config FILE --out DIR`: balance a capture file and write what each backend
// and the clients would receive, with report.json.
import { parseArgs } from 'node:util';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../ctl/config.js';
import { replayFile } from '../replay.js';
import { summary } from '../report/report.js';
import { EXIT_OK, UsageError, report } from './errors.js';
import { progressBar } from './progress.js';

export const REPLAY_USAGE = `usage: sessionlb replay IN --config FILE --out DIR [options]

Balances the packets of capture IN (pcap or pcapng) as the cluster's entry point would and writes
  DIR/<backend-id>.pcap  what each backend receives (Ethernet frames)
  DIR/client.pcap        what goes back towards the clients
  DIR/report.json        per-backend load, drops by reason, fairness, packets/s

options:
  --config FILE   JSON configuration (VIPs, backends, method, scheduler)      required
  --out DIR       output folder (created if missing)                        required
  --flows FILE    also write one CSV row per flow:
                  proto,client_ip,client_port,vip,vip_port,backend,packets,bytes,session
                  (session: the RTSP Session id the flow belongs to, empty when none)
  --json          print report.json on stdout instead of the summary on stderr
  --quiet         no summary, no progress bar
  --help          this text

exit codes: 0 done, 1 bad config or input (message says which), 2 usage error`;

export async function runReplay(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        out: { type: 'string', short: 'o' },
        flows: { type: 'string' },
        json: { type: 'boolean' },
        quiet: { type: 'boolean', short: 'q' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(REPLAY_USAGE + '\n');
      return EXIT_OK;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length ? `one input capture expected, got ${positionals.length}` : 'missing input capture IN');
    if (!values.config) throw new UsageError('missing --config FILE');
    if (!values.out) throw new UsageError('missing --out DIR');
    const config = loadConfig(values.config);
    mkdirSync(values.out, { recursive: true });
    const bar = !values.quiet && !values.json ? progressBar('replay') : null;
    const { report: r } = await replayFile(positionals[0], config, {
      outDir: values.out,
      flowsCsv: values.flows ?? null,
      onProgress: bar ? (done, total) => bar.update(done, total) : undefined,
    });
    bar?.done();
    writeFileSync(join(values.out, 'report.json'), JSON.stringify(r, null, 2) + '\n');
    if (values.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else if (!values.quiet) process.stderr.write(summary(r) + '\n');
    return EXIT_OK;
  } catch (e) {
    return report(e, REPLAY_USAGE);
  }
}
