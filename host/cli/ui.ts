// `sessionlb ui [--port N] [--host ADDR]`: serves the browser view (dist/ui/index.html, built by
// `npm run build`) on a local HTTP port. The page is one self-contained file with the engine
// inlined; everything it computes runs in the browser, so the server only hands out that file.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EXIT_FAIL, EXIT_OK, UsageError, report } from './errors.js';

export const UI_USAGE = `usage: sessionlb ui [--port N] [--host ADDR]

Serves the browser view on http://ADDR:N/ until interrupted (Ctrl-C). In the page: drop a pcap or
pcapng, choose method, scheduler, policy and backends, and see, computed in the page by the same
engine.wasm: load per backend over time, the RTSP session table, integrity and fairness of the
flow, client and session policies, drops by reason; download each backend's capture.
The page is one file, dist/ui/index.html: it also works opened straight from disk.

options:
  --port N       TCP port (default 8080; 0 picks a free one)
  --host ADDR    address to listen on (default 127.0.0.1: this machine only)
  --help         this text

exit codes: 0 stopped, 1 the page is not built or the port cannot be used, 2 usage error`;

/** dist/ui/index.html, from dist/host/cli/ui.js or (run from source) host/cli/ui.ts. */
export function pagePath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = here.includes(`${'dist'}`) ? resolve(here, '..', '..', '..') : resolve(here, '..', '..');
  return resolve(root, 'dist', 'ui', 'index.html');
}

export async function runUi(argv: string[]): Promise<number> {
  let port = 8080;
  let host = '127.0.0.1';
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        port: { type: 'string', short: 'p' },
        host: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(UI_USAGE + '\n');
      return EXIT_OK;
    }
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (values.port !== undefined) {
      port = Number(values.port);
      if (!/^\d+$/.test(values.port) || port > 65535) throw new UsageError(`--port must be a port number from 0 to 65535 (got "${values.port}")`);
    }
    if (values.host !== undefined) {
      if (!values.host) throw new UsageError('--host needs an address');
      host = values.host;
    }
  } catch (e) {
    return report(e, UI_USAGE);
  }
  const file = pagePath();
  let page: Buffer;
  try {
    page = readFileSync(file);
  } catch {
    process.stderr.write(`sessionlb ui: ${file} is missing: run "npm run build"\n`);
    return EXIT_FAIL;
  }
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path !== '/' && path !== '/index.html') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: the view is at /\n');
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': page.length,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : page);
  });
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(port, host, () => ok());
    });
  } catch (e) {
    process.stderr.write(`sessionlb ui: cannot listen on ${host}:${port}: ${(e as Error).message}\n`);
    return EXIT_FAIL;
  }
  const addr = server.address();
  const shown = typeof addr === 'object' && addr ? addr.port : port;
  const h = host.includes(':') ? `[${host}]` : host;
  process.stdout.write(`sessionlb ui: serving http://${h}:${shown}/ (Ctrl-C to stop)\n`);
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      server.close(() => done());
      server.closeAllConnections();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return EXIT_OK;
}
