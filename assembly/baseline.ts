// Baselines for benchmarks: a null pass that touches each packet of a batch as little as any
// real pass must (read its descriptor and first bytes, write a verdict), and a bulk hash loop, so
// engine figures can be reported as ratios to them (bench/).
import { descPtr, DESC_SIZE } from './layout';
import { flowHash } from './lb/flowhash';

export function nullPass(n: u32): u32 {
  let d = descPtr;
  let acc: u64 = 0;
  for (let i: u32 = 0; i < n; i++, d += DESC_SIZE) {
    const data = <usize>load<u32>(d);
    acc ^= load<u64>(data) ^ load<u64>(data, 24);
    store<u64>(d, 0, 24);
    store<u8>(d, <u8>(acc & 1) | 3, 24);
  }
  return <u32>acc;
}

export function hashKeys(p: usize, n: u32): u32 {
  let x: u32 = 0;
  for (let i: u32 = 0; i < n; i++) x ^= flowHash(p + <usize>i * 40);
  return x;
}
