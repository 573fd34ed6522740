// `sessionlb evaluate IN --config FILE [--truth FILE] [--json] [--out DIR]`: replay one capture
// under the flow, client and session policies and compare session integrity, balance and
// completed sessions per second (host/eval/evaluate.ts; docs/evaluation.md).
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadConfig } from '../ctl/config.js';
import { evaluate, formatMarkdown, formatText, TruthError } from '../eval/evaluate.js';
import { EXIT_FAIL, EXIT_OK, UsageError, report } from './errors.js';
import { progressBar, type Progress } from './progress.js';

export const EVALUATE_USAGE = `usage: sessionlb evaluate IN --config FILE [--truth FILE] [--json] [--out DIR]

Replays capture IN three times in memory (no output captures), with every VIP of the config set to
  flow      scheduler maglev on the 5-tuple
  client    scheduler sh: source-address hashing (client persistence)
  session   scheduler maglev, RTSP-aware: every media flow on its session's backend
and prints, per policy:
  integrity        share of sessions whose every flow (control and media) reached one backend
  whole/seen       sessions kept whole / sessions with at least one flow seen
  imbalance        max/mean of sessions per backend (a session counts on its control
                   connection's backend); jain: Jain's index of the same
  bytesImbalance   max/mean of bytes per backend (to the backend plus its replies)
  sessions/s       completed sessions per second of trace (first to last packet)
  whole sessions/s completed sessions that were also kept whole, per second
  flows            flow records of the run; unseen flows: session flows never seen (ignored)
See docs/evaluation.md for how each column is computed.

options:
  --config FILE   JSON configuration (VIPs, backends; rtspPorts for the session policy)  required
  --truth FILE    ground truth naming each session's control and media 5-tuples (the real
                  captures' *.truth.json, or \`sessionlb generate rtsp --truth\`); without it,
                  sessions are the session run's flows grouped by their RTSP Session id
  --out DIR       also write DIR/evaluation.json and DIR/evaluation.md (created if missing)
  --json          print {"flow": {...}, "client": {...}, "session": {...}} on stdout instead of
                  the table on stderr
  --help          this text

exit codes: 0 done, 1 bad config, truth or input (message says which), 2 usage error`;

export async function runEvaluate(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        truth: { type: 'string', short: 't' },
        out: { type: 'string', short: 'o' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(EVALUATE_USAGE + '\n');
      return EXIT_OK;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length ? `one input capture expected, got ${positionals.length}` : 'missing input capture IN');
    if (!values.config) throw new UsageError('missing --config FILE');
    if (values.truth === '') throw new UsageError('--truth needs a file name');
    if (values.out === '') throw new UsageError('--out needs a directory');
    const config = loadConfig(values.config);
    const input = positionals[0];
    // one progress bar per replay (shown on a terminal for big inputs only)
    let bar: Progress | null = null;
    const ev = await evaluate(input, config, {
      truth: values.truth ?? null,
      onRun: (run) => {
        bar?.done();
        bar = values.json ? null : progressBar(`evaluate ${run.policy.padEnd(7)}`);
      },
      onProgress: (done, total) => bar?.update(done, total),
    });
    (bar as Progress | null)?.done();
    const json = JSON.stringify(ev, null, 2) + '\n';
    if (values.out) {
      mkdirSync(values.out, { recursive: true });
      writeFileSync(join(values.out, 'evaluation.json'), json);
      const cmd = ['sessionlb evaluate', input, '--config', values.config, ...(values.truth ? ['--truth', values.truth] : [])].join(' ');
      writeFileSync(join(values.out, 'evaluation.md'), formatMarkdown(ev, `Evaluation of ${basename(input)}`) + `\nProduced by \`${cmd}\`.\n`);
    }
    if (values.json) process.stdout.write(json);
    else process.stderr.write(formatText(ev) + '\n');
    return EXIT_OK;
  } catch (e) {
    if (e instanceof TruthError) {
      process.stderr.write(`sessionlb: ${e.message}\n`);
      return EXIT_FAIL;
    }
    return report(e, EVALUATE_USAGE);
  }
}
