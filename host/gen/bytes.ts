// What the traffic generators share: big-endian field writes into a frame buffer, the pieces of
// a ones-complement checksum computed field by field, and header constants.

export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** Sum of the two 16-bit halves of a 32-bit word (a ones-complement partial sum). */
export const halves = (w: number) => (w >>> 16) + (w & 0xffff);

/** Folds a non-negative partial sum (any size below 2^53) to 16 bits. */
export function fold(s: number): number {
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

// Header constants and the TCP settings both generators give their endpoints (Linux defaults).
export const ETH_IPV4 = 0x0800;
export const ETH_IPV6 = 0x86dd;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const F_FIN = 0x01;
export const F_SYN = 0x02;
export const F_PSH = 0x08;
export const F_ACK = 0x10;
export const SERVER_TTL = 64;
export const SYN_WINDOW = 64240;
export const SYNACK_WINDOW = 65160;
