// Browser stand-in for node:url, for the page's bundle: host/wasm.ts derives the module's path
// from import.meta.url at load time (the page never uses that path: it passes the module in).

export function fileURLToPath(u: string | URL | undefined): string {
  const s = u === undefined ? '' : String(u);
  return s.startsWith('file://') ? decodeURIComponent(s.slice(7)) : '/';
}
