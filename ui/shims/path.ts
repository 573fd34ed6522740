// Browser stand-in for node:path (POSIX forms only), for the page's bundle. The reused host
// modules only build paths with it (wasm.ts at load time, replay.ts for output names).

function normalize(p: string): string {
  const abs = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop();
      else if (!abs) out.push('..');
    } else out.push(part);
  }
  const s = out.join('/');
  return abs ? '/' + s : s || '.';
}

export function join(...parts: string[]): string {
  const p = parts.filter((x) => x !== '').join('/');
  const n = normalize(p);
  return p.endsWith('/') && n !== '/' ? `${n}/` : n; // a trailing slash stays, as in Node
}

export function resolve(...parts: string[]): string {
  let p = '';
  for (const x of parts) p = x.startsWith('/') ? x : p ? `${p}/${x}` : x;
  return normalize(p.startsWith('/') ? p : '/' + p);
}

export function dirname(p: string): string {
  const n = normalize(p);
  const i = n.lastIndexOf('/');
  if (i < 0) return '.';
  return i === 0 ? '/' : n.slice(0, i);
}

export function basename(p: string, ext?: string): string {
  const b = normalize(p).split('/').pop() ?? '';
  return ext && b.endsWith(ext) && b !== ext ? b.slice(0, -ext.length) : b;
}

export default { join, resolve, dirname, basename };
