// TAP devices for live mode, through the small N-API addon in native/tap.c (built from source by
// `npm ci`: package.json "install" runs native/build.mjs). Frames are read straight into the
// engine's arena slots (filling the descriptors) and written from them, one addon call per batch.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TapAddon {
  open(name: string, persist: boolean, mtu: number, offload?: boolean): [number, string];
  close(fd: number): void;
  readBatch(fd: number, mem: ArrayBuffer, descPtr: number, slots: Uint32Array, cap: number, max: number, port: number, mac?: Uint8Array | null, hdrs?: Uint8Array | null): number;
  writeBatch(fd: number, mem: ArrayBuffer, descPtr: number, list: Uint32Array, n: number, hdrs?: Uint8Array | null): number;
  writeFrames(fd: number, mem: ArrayBuffer | Uint8Array, offs: Uint32Array, lens: Uint32Array, n: number): number;
  pollStart(fd: number, cb: (events: number) => void): object;
  pollStop(handle: object): void;
  stats(): [number, number, number, number, number];
}

let addon: TapAddon | null = null;

/** Path of the built addon, whether this file runs from host/live (tsx) or dist/host/live. */
export function addonPath(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    const p = join(here, up, 'native/build/Release/sessionlb_tap.node');
    if (existsSync(p)) return p;
  }
  return null;
}

export function loadTapAddon(): TapAddon {
  if (addon) return addon;
  const p = addonPath();
  if (!p) {
    throw Object.assign(new Error('the TAP addon is not built (native/build/Release/sessionlb_tap.node): run `npm ci` or `node native/build.mjs` (needs gcc, make, python3)'), { code: 'TAP_ADDON' });
  }
  addon = createRequire(import.meta.url)(p) as TapAddon;
  return addon;
}

/**
 * Why live mode cannot open TAP devices here, or null when it may (/dev/net/tun exists). Missing
 * privileges show when a device is opened (EPERM: "run as root or with CAP_NET_ADMIN"), so a
 * non-root process with CAP_NET_ADMIN is not turned away.
 */
export function tapUnavailable(): string | null {
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing (no TUN/TAP support in this kernel or container)';
  return null;
}

export class Tap {
  readonly fd: number;
  readonly name: string;
  readonly port: number;
  /** Opened with IFF_VNET_HDR and offloads: reads fill, writes take, 10-byte virtio_net_hdr per slot. */
  readonly offload: boolean;
  private poll: object | null = null;
  private readonly a: TapAddon;

  private constructor(a: TapAddon, fd: number, name: string, port: number, offload: boolean) {
    this.a = a;
    this.offload = offload;
    this.fd = fd;
    this.name = name;
    this.port = port;
  }

  /** Opens (creating if missing) TAP device `name`, sets it up, and its MTU when mtu > 0. */
  static open(name: string, opts: { persist?: boolean; mtu?: number; port?: number; offload?: boolean } = {}): Tap {
    const a = loadTapAddon();
    let fd: number, actual: string;
    try {
      [fd, actual] = a.open(name, opts.persist ?? false, opts.mtu ?? 0, opts.offload ?? false);
    } catch (e) {
      const err = e as Error & { code?: string };
      const hint = err.code === 'EPERM' || err.code === 'EACCES' ? ' (run as root or with CAP_NET_ADMIN)'
        : err.code === 'ENOENT' ? ' (no /dev/net/tun: load the tun module)'
        : err.code === 'EBUSY' ? ' (another process has it open, or it is a TUN device, not TAP)'
        : err.code === 'EINVAL' ? ' (a device of that name exists and is not a TAP device)' : '';
      throw Object.assign(new Error(`TAP ${name}: ${err.message}${hint}`), { code: 'TAP_OPEN' });
    }
    return new Tap(a, fd, actual, opts.port ?? 0, opts.offload ?? false);
  }

  /** Reads up to `max` frames into the slots, filling descriptors 0..n-1; returns n. */
  read(mem: ArrayBuffer, descPtr: number, slots: Uint32Array, cap: number, max: number, mac?: Uint8Array | null, hdrs?: Uint8Array | null): number {
    return this.a.readBatch(this.fd, mem, descPtr, slots, cap, max, this.port, mac, hdrs);
  }

  /** Writes the frames of descriptors list[0..n-1]; returns how many were written. */
  writeDescs(mem: ArrayBuffer, descPtr: number, list: Uint32Array, n: number, hdrs?: Uint8Array | null): number {
    return n ? this.a.writeBatch(this.fd, mem, descPtr, list, n, hdrs) : 0;
  }

  /** Writes one frame held in JS memory (the slow path's replies). */
  writeFrame(frame: Uint8Array): boolean {
    const offs = new Uint32Array([frame.byteOffset]);
    const lens = new Uint32Array([frame.length]);
    return this.a.writeFrames(this.fd, frame.buffer as ArrayBuffer, offs, lens, 1) === 1;
  }

  /** Calls cb (on the JS thread, from libuv) whenever the device has frames to read. */
  onReadable(cb: () => void): void {
    this.stopPolling();
    this.poll = this.a.pollStart(this.fd, () => cb());
  }

  stopPolling(): void {
    if (this.poll) this.a.pollStop(this.poll);
    this.poll = null;
  }

  close(): void {
    this.stopPolling();
    this.a.close(this.fd);
  }
}
