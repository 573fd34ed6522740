#!/usr/bin/env node
// sessionlb command line: dispatches to one module per command.
import { readFileSync } from 'node:fs';
import { runReplay } from './replay.js';
import { EXIT_OK, EXIT_USAGE } from './errors.js';

const USAGE = `usage: sessionlb <command> [options]

commands:
  replay IN --config FILE --out DIR   balance a capture file, write per-backend captures and report.json
  generate flows --out FILE ...       write a deterministic capture of client flows to VIPs
  evaluate IN --config FILE           compare the flow, client and session policies on a capture:
                                      session integrity, balance, completed sessions per second
  lab up|down|status [--method M]     a network-namespace lab: clients, router, sessionlb on TAPs,
                                      three backends with nginx, an RTSP server and iperf3
  run --config FILE [--pcap-tap DIR]  live mode: balance traffic on TAP devices (root)
  gateway --config FILE               TCP gateway baseline: a full proxy choosing backends by content
  agent --listen ADDR:PORT --id ID    TCP handoff agent of a backend: restores handed-off client
                                      connections (TCP_REPAIR) for its HTTP server process (root)
  ui [--port N] [--host ADDR]         serve the browser view (a capture through the engine, in the
                                      page) on http://127.0.0.1:8080/
  help [command]                      this text, or a command's options

Every command takes --help. Exit codes: 0 done, 1 bad input or config, 2 usage error.`;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'replay':
      return runReplay(rest);
    case 'generate': {
      const { runGenerate } = await import('./generate.js');
      return runGenerate(rest);
    }
    case 'run': {
      const { runLive } = await import('./run.js');
      return runLive(rest);
    }
    case 'ui': {
      const { runUi } = await import('./ui.js');
      return runUi(rest);
    }
    case 'evaluate': {
      const { runEvaluate } = await import('./evaluate.js');
      return runEvaluate(rest);
    }
    case 'lab': {
      const { runLab } = await import('./lab.js');
      return runLab(rest);
    }
    case 'gateway': {
      const { runGateway } = await import('./gateway.js');
      return runGateway(rest);
    }
    case 'agent': {
      const { runAgent } = await import('./agent.js');
      return runAgent(rest);
    }
    case 'help':
    case '--help':
    case '-h':
      if (rest[0]) return main([rest[0], '--help']);
      process.stdout.write(USAGE + '\n');
      return EXIT_OK;
    case '--version':
    case '-V':
      process.stdout.write(version() + '\n');
      return EXIT_OK;
    case undefined:
      process.stderr.write(USAGE + '\n');
      return EXIT_USAGE;
    default:
      process.stderr.write(`sessionlb: unknown command "${cmd}"\n\n${USAGE}\n`);
      return EXIT_USAGE;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`sessionlb: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
  },
);
