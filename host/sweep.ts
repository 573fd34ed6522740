// Packet time for a replay: remembers the first and last capture second seen, paces the engine's
// flow-table sweep (`expire`) so the whole table is covered once per `periodS` seconds of packet
// time, and ends a replay the one correct way (sessions first, then every live flow, events
// drained between). Shared by the CLI's replay loop and the browser view's.
import type { Engine } from './engine.js';

export class PacketClock {
  firstTs = -1;
  lastTs = 0;
  private sweptTo = 0; // packet time (s) the sweep has been run up to
  private readonly buckets: number;
  private readonly perSecond: number;

  constructor(private readonly engine: Engine, periodS = 30) {
    this.buckets = engine.ex.flow_table_entries() / 4;
    this.perSecond = Math.max(1, Math.ceil(this.buckets / periodS));
  }

  /** After process(n): `u32` views the memory, `d32` is desc_ptr() / 4 (descriptor word 4 = tsSec). */
  afterBatch(u32: Uint32Array, d32: number, n: number): void {
    if (n === 0) return;
    if (this.firstTs < 0) this.firstTs = u32[d32 + 4];
    const ts = u32[d32 + (n - 1) * 8 + 4];
    if (ts > this.lastTs) this.lastTs = ts;
    if (this.lastTs > this.sweptTo) {
      const secs = this.sweptTo === 0 ? 1 : Math.min(this.lastTs - this.sweptTo, 3600);
      this.engine.ex.expire(this.lastTs, Math.min(this.buckets, secs * this.perSecond));
      this.sweptTo = this.lastTs;
    }
  }

  /**
   * End of input: sessions still open end first (so their control connections' closing is not
   * taken for a lost connection), then every flow still live is closed and reported.
   */
  finish(onEvent: (recordPtr: number) => void): void {
    const { engine, lastTs } = this;
    engine.ex.flush_sessions(lastTs);
    engine.drainEvents(onEvent);
    while (engine.ex.flush_flows(4096, lastTs) > 0) engine.drainEvents(onEvent);
    engine.drainEvents(onEvent);
  }

  get traceSeconds(): number {
    return this.firstTs < 0 ? 0 : Math.max(0, this.lastTs - this.firstTs);
  }
}
