// The browser view's build and server: ui/build.mjs makes one self-contained page whose inlined
// engine is build/sessionlb.wasm byte for byte and whose sources type-check (DOM + host types);
// `sessionlb ui` serves exactly that file on localhost, refuses other paths and methods, and
// reports usage errors and a busy port with the CLI's exit codes.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, ROOT, runCli } from './helpers/cli.js';

const PAGE = join(ROOT, 'dist', 'ui', 'index.html');

/** Starts `sessionlb ui` with args; resolves with its URL once it listens. */
function startUi(args: string[]): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'ui', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((done, fail) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = out.match(/serving (http:\/\/\S+\/)/);
      if (m) {
        done({
          url: m[1],
          stop: () => new Promise((r) => {
            child.once('exit', (code) => r(code));
            child.kill('SIGINT');
          }),
        });
      }
    });
    child.once('exit', (code) => fail(new Error(`sessionlb ui exited with ${code}: ${out}`)));
  });
}

describe('ui build', () => {
  it('writes one page with the script and engine.wasm inlined, quickly', () => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [join(ROOT, 'ui', 'build.mjs')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(performance.now() - t0).toBeLessThan(20_000);
    const html = readFileSync(PAGE, 'utf8');
    expect(html).not.toContain('<!--SCRIPT-->');
    expect(html).not.toMatch(/<script[^>]+src=|\bfetch\(|import\s*\(|from\s*"node:|require\("node:/);
    const b64 = html.match(/"((?:AGFzbQ)[A-Za-z0-9+/=]+)"/); // "\0asm" in base64
    expect(b64, 'the engine is inlined').not.toBeNull();
    expect(Buffer.from(b64![1], 'base64').equals(readFileSync(join(ROOT, 'build', 'sessionlb.wasm')))).toBe(true);
  });

  it('its sources type-check against the DOM and the host modules', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'ui', 'tsconfig.json')], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('sessionlb ui', () => {
  it('serves the built page at / on 127.0.0.1 and nothing else', async () => {
    const ui = await startUi(['--port', '0']);
    try {
      expect(ui.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const page = await fetch(ui.url);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(Buffer.from(await page.arrayBuffer()).equals(readFileSync(PAGE))).toBe(true);
      expect((await fetch(ui.url + 'index.html')).status).toBe(200);
      expect((await fetch(ui.url + '../etc/passwd')).status).toBe(404);
      expect((await fetch(ui.url + 'build/sessionlb.wasm')).status).toBe(404);
      expect((await fetch(ui.url, { method: 'POST', body: 'x' })).status).toBe(405);
    } finally {
      expect(await ui.stop()).toBe(0); // Ctrl-C stops it cleanly
    }
  });

  it('usage errors exit 2, a busy port exits 1, --help exits 0', async () => {
    const help = runCli(['ui', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: sessionlb ui \[--port N\] \[--host ADDR\]/);
    expect(runCli(['help']).stdout).toMatch(/\n {2}ui \[--port N\]/);
    for (const args of [['--port', 'x'], ['--port', '70000'], ['--port', '-1'], ['extra'], ['--bogus']]) {
      const r = runCli(['ui', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^sessionlb: /);
    }
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const port = (busy.address() as AddressInfo).port;
      const r = runCli(['ui', '--port', String(port)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
    } finally {
      busy.close();
    }
  });
});
