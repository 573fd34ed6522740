// Deterministic test randomness, from the generators' own PRNG (host/gen/rng.ts), so failures
// reproduce from their seed.
import { Rng } from '../../host/gen/rng.js';

/** A function returning uniform floats in [0, 1). */
export function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.float();
}

export { Rng };
