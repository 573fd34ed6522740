// Builds the browser view into one self-contained file, dist/ui/index.html: the page's script
// (ui/src, bundled with esbuild) and the engine (build/sessionlb.wasm, base64) are inlined, so it
// works served by `sessionlb ui` and opened from disk (file://) alike: no module imports across
// files, no fetch.
//
// The page reuses the host modules as they are (Engine, the capture reader, config parsing,
// report.json's numbers, the evaluation's integrity). Their node: imports are replaced here, for
// this bundle only, by small browser implementations in ui/shims/ (an in-memory read-only fs for
// the dropped capture, path, url, isIP, and the few Buffer uses); Node keeps the real modules.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const shims = { 'node:fs': 'fs.ts', 'node:path': 'path.ts', 'node:url': 'url.ts', 'node:net': 'net.ts' };
const t0 = Date.now();

const nodeShims = {
  name: 'node-shims',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => {
      const file = shims[args.path];
      if (!file) return { errors: [{ text: `${args.path} (imported by ${args.importer}) has no browser stand-in in ui/shims/` }] };
      return { path: join(root, 'ui', 'shims', file) };
    });
  },
};

const wasm = readFileSync(join(root, 'build', 'sessionlb.wasm'));
const out = await build({
  entryPoints: [join(root, 'ui', 'src', 'main.ts')],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  write: false,
  legalComments: 'none',
  inject: [join(root, 'ui', 'shims', 'buffer.ts')],
  // host/wasm.ts derives the module's file path from import.meta.url at load; the page never
  // uses that path (it passes the inlined module in).
  define: { __ENGINE_WASM_B64__: JSON.stringify(wasm.toString('base64')), 'import.meta.url': JSON.stringify('about:sessionlb') },
  plugins: [nodeShims],
  logLevel: 'warning',
});
const js = out.outputFiles[0].text.replace(/<\/script/gi, '<\\/script');
const html = readFileSync(join(root, 'ui', 'index.html'), 'utf8');
const page = html.replace('<!--SCRIPT-->', () => `<script>${js}</script>`);
if (page === html) throw new Error('ui/index.html has no <!--SCRIPT--> placeholder');
mkdirSync(join(root, 'dist', 'ui'), { recursive: true });
// Written aside and renamed into place, so a reader (a test, the server) never sees half a page.
const tmp = join(root, 'dist', 'ui', `.index.html.${process.pid}`);
writeFileSync(tmp, page);
renameSync(tmp, join(root, 'dist', 'ui', 'index.html'));
console.log(`dist/ui/index.html: ${page.length} bytes (engine ${wasm.length} bytes inlined) in ${Date.now() - t0} ms`);
