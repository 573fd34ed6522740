// Fragment tracking: the first fragment of a datagram (the one carrying the L4 ports) is balanced
// like any packet, and its decision is remembered under (source, destination, IP ID, protocol) so
// the following fragments go the same way. Fixed size; the oldest entry in a full window is
// overwritten (counted). Entry: 0 sig | 4 expire | 8 backend u16 | 10 dir u8 | 11 vip u8 |
// 12 flow hash u32 (GUE source port, flow label) | 24.. key
import { fragsPtr, FRAG_BUCKETS, FRAG_SIZE, WAYS } from '../layout';
import { count, C_FRAG_TABLE_FULL } from '../counters';
import { toFrag } from './flowtable';
import { copy40 } from '../mem';

@inline function keyEq(e: usize, k: usize): bool {
  return load<u64>(e, 24) == load<u64>(k) && load<u64>(e, 32) == load<u64>(k, 8) &&
    load<u64>(e, 40) == load<u64>(k, 16) && load<u64>(e, 48) == load<u64>(k, 24) &&
    load<u64>(e, 56) == load<u64>(k, 32);
}

@inline function bucket(h: u32): usize {
  return fragsPtr + <usize>(h & (FRAG_BUCKETS - 1)) * (WAYS * FRAG_SIZE);
}

/** Remembers a first fragment's decision. k: 40-byte key (src, dst, id, proto). */
export function fragRecord(k: usize, h: u32, now: u32, backend: u32, dir: u32, vip: u32, flowHash: u32): void {
  let e = bucket(h);
  let slot: usize = 0, free: usize = 0, oldestEntry: usize = 0;
  let oldest: u32 = 0xffffffff;
  for (let w: u32 = 0; w < WAYS; w++, e += FRAG_SIZE) {
    const s = load<u32>(e);
    if (s == (h | 1) && keyEq(e, k)) {
      slot = e;
      break;
    }
    const exp = load<u32>(e, 4);
    if (s == 0 || exp < now) {
      if (!free) free = e;
    } else if (exp <= oldest) {
      oldest = exp;
      oldestEntry = e;
    }
  }
  if (!slot) slot = free;
  if (!slot) {
    slot = oldestEntry;
    count(C_FRAG_TABLE_FULL);
  }
  store<u32>(slot, h | 1);
  store<u32>(slot, now + toFrag, 4);
  store<u16>(slot, <u16>backend, 8);
  store<u8>(slot, <u8>dir, 10);
  store<u8>(slot, <u8>vip, 11);
  store<u32>(slot, flowHash, 12);
  copy40(slot + 24, k);
}

/** Finds the decision for a later fragment, or 0. */
export function fragLookup(k: usize, h: u32, now: u32): usize {
  let e = bucket(h);
  for (let w: u32 = 0; w < WAYS; w++, e += FRAG_SIZE) {
    if (load<u32>(e) == (h | 1) && keyEq(e, k)) {
      if (load<u32>(e, 4) < now) return 0;
      return e;
    }
  }
  return 0;
}
