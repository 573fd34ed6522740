// Small fixed-size copies as plain loads and stores. memory.copy/fill with a few bytes costs a
// call into the runtime in some engines (V8 among them); these stay inline.

@inline export function copy16(dst: usize, src: usize): void {
  store<u64>(dst, load<u64>(src));
  store<u64>(dst, load<u64>(src, 8), 8);
}

@inline export function copy40(dst: usize, src: usize): void {
  store<u64>(dst, load<u64>(src));
  store<u64>(dst, load<u64>(src, 8), 8);
  store<u64>(dst, load<u64>(src, 16), 16);
  store<u64>(dst, load<u64>(src, 24), 24);
  store<u64>(dst, load<u64>(src, 32), 32);
}
