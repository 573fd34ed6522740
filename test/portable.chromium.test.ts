// Headless Chromium (Debian's /usr/bin/chromium through playwright-core; never a downloaded
// browser) runs every conformance vector: the page imports the runtime-neutral harness
// (portable/js/harness.mjs), fetches the module and the vector files from a loopback server and
// returns the outputs, which must be byte-identical to the vector's.
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, VECTORS, vectorNames } from './helpers/vectors.js';

const CHROMIUM = '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) console.warn('portable.chromium: SKIPPED, /usr/bin/chromium is missing (apt-get install chromium; .ci/run installs it)');

const TYPES: Record<string, string> = { '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
const SERVED = ['portable/js/', 'build/', 'fixtures/vectors/'];

describe.skipIf(!existsSync(CHROMIUM))('headless Chromium runs the conformance vectors', () => {
  let server: Server;
  let base = '';
  let context: BrowserContext;
  let profile = '';

  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^\/+/, '');
      if (path === '') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>vectors</title>');
        return;
      }
      if (!SERVED.some((p) => path.startsWith(p)) || path.includes('..') || !existsSync(join(ROOT, path))) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[path.slice(path.lastIndexOf('.'))] ?? 'application/octet-stream' }).end(readFileSync(join(ROOT, path)));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/`;
    profile = mkdtempSync(join(tmpdir(), 'slb-chromium-vec-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });

  afterAll(async () => {
    await context?.close();
    await new Promise((r) => server?.close(r));
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it.each([['sessionlb.wasm'], ['sessionlb-nosimd.wasm']])('every vector with build/%s: byte-identical', async (wasmName) => {
    const page = await context.newPage();
    try {
      await page.goto(base);
      const names = vectorNames();
      // Plain JavaScript text: vitest would rewrite a dynamic import() written in this file.
      const result = (await page.evaluate(`(${BROWSER_RUN})(${JSON.stringify({ names, wasmName })})`)) as { out: Record<string, Record<string, string>>; ua: string };
      expect(result.ua).toMatch(/HeadlessChrome|Chrome/);
      for (const n of names) {
        const want = readdirExpected(n);
        expect(Object.keys(result.out[n]).sort(), n).toEqual(want);
        for (const f of want) {
          const got = Buffer.from(result.out[n][f], 'base64');
          expect(got.equals(readFileSync(join(VECTORS, n, 'expected', f))), `Chromium: ${n}/${f}`).toBe(true);
        }
      }
    } finally {
      await page.close();
    }
  });
});

const BROWSER_RUN = `async ({ names, wasmName }) => {
  const { runVector } = await import('/portable/js/harness.mjs');
  const bytes = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
  const module = await WebAssembly.compile(await bytes('/build/' + wasmName));
  const out = {};
  for (const n of names) {
    const calls = await (await fetch('/fixtures/vectors/' + n + '/calls.txt')).text();
    const { files } = runVector({ wasm: module, calls, input: await bytes('/fixtures/vectors/' + n + '/input.pcap') });
    out[n] = {};
    for (const [f, b] of Object.entries(files)) {
      let s = '';
      for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
      out[n][f] = btoa(s);
    }
  }
  return { out, ua: navigator.userAgent };
}`;

function readdirExpected(name: string): string[] {
  return readdirSync(join(VECTORS, name, 'expected')).sort();
}
