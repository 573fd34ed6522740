// Builds the native addons with the node-gyp that ships with npm: the TAP addon (native/tap.c ->
// native/build/Release/sessionlb_tap.node) and the handoff agent's TCP_REPAIR addon (native/repair.c
// -> sessionlb_repair.node). Run by `npm ci` / `npm install` (package.json "install") and by hand:
// `node native/build.mjs`. Uses the headers of the running Node when they are installed beside it
// (no download: CI machines reach only the npm registry), else lets node-gyp fetch them.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  join(dirname(process.execPath), 'node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((p) => existsSync(p));
const prefix = resolve(dirname(process.execPath), '..');
const args = ['rebuild', '-C', here];
if (existsSync(join(prefix, 'include/node/node_api.h')) && existsSync(join(prefix, 'include/node/common.gypi'))) {
  args.push(`--nodedir=${prefix}`);
}
const cmd = gyp ? process.execPath : 'node-gyp';
const r = spawnSync(cmd, gyp ? [gyp, ...args] : args, { stdio: 'inherit' });
if (r.status !== 0) {
  process.stderr.write(`sessionlb: building the native addons (TAP, TCP repair) failed (${cmd} ${args.join(' ')}); ` +
    'it needs g++/gcc, make and python3. Live mode (sessionlb run) and the handoff agent (sessionlb agent) need them; replay does not.\n');
  process.exit(r.status ?? 1);
}
