// Byte helpers shared by the traffic generators: big-endian field writes into a frame buffer and
// the pieces of a ones-complement checksum computed field by field.

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
