// Browser stand-in for node:fs, used only by the page's bundle (ui/build.mjs maps `node:fs` here).
// The host modules the page reuses read captures through openSync/fstatSync/readSync/closeSync;
// here those read files the page registered in memory (putFile: a dropped or picked capture).
// Everything that would write to or read from a real file system throws.

const files = new Map<string, Uint8Array>();
const open = new Map<number, Uint8Array>();
let nextFd = 3;

/** Makes `bytes` readable under `path` (replacing any file of that name). */
export function putFile(path: string, bytes: Uint8Array): void {
  files.set(path, bytes);
}

export function removeFile(path: string): void {
  files.delete(path);
}

function enoent(path: string): Error {
  return Object.assign(new Error(`ENOENT: no such file in the page, open '${path}'`), { code: 'ENOENT' });
}

function fileOf(fd: number): Uint8Array {
  const f = open.get(fd);
  if (!f) throw Object.assign(new Error(`EBADF: bad file descriptor ${fd}`), { code: 'EBADF' });
  return f;
}

export function openSync(path: string, flags: string = 'r'): number {
  if (flags !== 'r') throw unsupported(`openSync(${path}, ${flags})`);
  const f = files.get(path);
  if (!f) throw enoent(path);
  const fd = nextFd++;
  open.set(fd, f);
  return fd;
}

export function fstatSync(fd: number): { size: number; isFile(): boolean } {
  const f = fileOf(fd);
  return { size: f.length, isFile: () => true };
}

/** Copies up to `length` bytes from file position `position` into buffer[offset..]; returns the count. */
export function readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
  const f = fileOf(fd);
  const start = Math.min(position, f.length);
  const n = Math.max(0, Math.min(length, f.length - start, buffer.length - offset));
  buffer.set(f.subarray(start, start + n), offset);
  return n;
}

export function closeSync(fd: number): void {
  fileOf(fd);
  open.delete(fd);
}

function unsupported(what: string): Error {
  return Object.assign(new Error(`${what}: not available in the browser view`), { code: 'ENOTSUP' });
}

export function readFileSync(path: string): never {
  throw unsupported(`readFileSync(${path})`);
}
export function writeSync(): never {
  throw unsupported('writeSync');
}
export function write(): never {
  throw unsupported('write');
}
export function writeFileSync(): never {
  throw unsupported('writeFileSync');
}
export function mkdirSync(): never {
  throw unsupported('mkdirSync');
}
export function existsSync(path: string): boolean {
  return files.has(path);
}
