// config_live (docs/abi.md): in live mode every frame towards clients leaves with the balancer's
// MAC as source and the gateway's as destination, also for Ethernet input that is not a NAT reply
// from a backend (a DR VIP's reply seen by a one-armed balancer). Default (captures): unchanged.
// Both builds. Also the backend table export the live metrics read (live flows per backend).
import { describe, expect, it } from 'vitest';
import { makeEngine, run, simpleConfig } from './helpers/engine.js';
import { frame } from './ref/packet.js';
import { verifyFrame } from './ref/csum.js';

const LB = '02:00:00:00:00:fe';
const GW = '02:00:00:00:00:77';
const hex = (b: Uint8Array, o: number) => Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');

for (const simd of [true, false]) {
  describe(`config_live (${simd ? 'simd' : 'nosimd'})`, () => {
    const reply = () => frame({ src: '10.0.0.100', dst: '192.0.2.10', proto: 'tcp', sport: 80, dport: 40000, srcMac: '02:00:00:00:01:01', dstMac: LB, tcpFlags: 'SA' });
    const syn = () => frame({ src: '192.0.2.10', dst: '10.0.0.100', proto: 'tcp', sport: 40000, dport: 80, tcpFlags: 'S' });

    it('DR reply (Ethernet): MACs kept without it, gateway and balancer MAC with it', () => {
      for (const live of [0, 1]) {
        const e = makeEngine(simpleConfig({ method: 'dr', extra: { gatewayMac: GW } }), { simd });
        e.ex.config_live(live);
        const [f, r] = run(e, [{ bytes: syn() }, { bytes: reply() }]);
        expect(f.verdict).toBe('backend');
        expect(r.verdict).toBe('client');
        if (live) {
          expect(hex(r.bytes, 0)).toBe(GW);
          expect(hex(r.bytes, 6)).toBe(LB);
        } else {
          expect(hex(r.bytes, 0)).toBe(LB);
          expect(hex(r.bytes, 6)).toBe('02:00:00:00:01:01');
        }
        expect(r.bytes.length).toBe(reply().length);
        expect(verifyFrame(r.bytes).problems).toEqual([]);
      }
    });

    it('NAT reply from a backend goes to the gateway either way; the gateway MAC can change at run time', () => {
      const e = makeEngine(simpleConfig({ method: 'nat', extra: { gatewayMac: GW } }), { simd });
      e.ex.config_live(1);
      const [f] = run(e, [{ bytes: syn() }]);
      const backend = `10.0.1.${f.egress + 1}`;
      const back = frame({ src: backend, dst: '192.0.2.10', proto: 'tcp', sport: 80, dport: 40000, srcMac: `02:00:00:00:01:0${f.egress + 1}`, dstMac: LB, tcpFlags: 'SA' });
      const [r1] = run(e, [{ bytes: back }]);
      expect(r1.verdict).toBe('client');
      expect(hex(r1.bytes, 0)).toBe(GW);
      // A host that resolved a new gateway MAC calls config_global again: flows stay.
      e.ex.config_global(0x0200, 0x000000fe, 0x0200, 0x00000088);
      const [r2] = run(e, [{ bytes: back }]);
      expect(r2.verdict).toBe('client');
      expect(hex(r2.bytes, 0)).toBe('02:00:00:00:00:88');
      expect(e.ex.flow_count()).toBe(1);
      // backend_table_ptr: live flows (u32 at +32) of the flow's backend.
      expect(e.dv.getUint32(e.ex.backend_table_ptr() + 64 * f.egress + 32, true)).toBe(1);
    });

    it('config_backend again (a resolved MAC) + config_commit keeps flows and per-backend stats', () => {
      const e = makeEngine(simpleConfig({ method: 'nat' }), { simd });
      const [f] = run(e, [{ bytes: syn() }]);
      const j = f.egress;
      const before = e.backendStats(j);
      const s = e.ex.scratch_ptr();
      e.mem.fill(0, s, s + 16);
      e.mem.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 1, j + 1], s);
      expect(e.ex.config_backend(j, 0, 1, 0, 0x0266, 0x00000099)).toBe(0);
      expect(e.ex.config_commit(1, 3)).toBe(0);
      const [g] = run(e, [{ bytes: frame({ src: '192.0.2.10', dst: '10.0.0.100', proto: 'tcp', sport: 40000, dport: 80, tcpFlags: 'A' }) }]);
      expect(g.verdict).toBe('backend');
      expect(g.egress).toBe(j);
      expect(hex(g.bytes, 0)).toBe('02:66:00:00:00:99');
      expect(e.backendStats(j).packets).toBe(before.packets + 1);
      expect(e.backendStats(j).flows).toBe(before.flows);
      expect(e.ex.flow_count()).toBe(1);
    });
  });
}
