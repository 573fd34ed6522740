// The gateway's config for the lab topology (host/lab/topology.ts): the service VIP (HTTP and
// RTSP) and the bulk VIP (iperf3 over TCP) as kernel addresses of the lb namespace, the three
// backends, HTTP health checks and backend connections from the lb's server-LAN address, metrics
// on 127.0.0.1:9180 inside the namespace (the port live mode's metrics use in the lab).
// Used by `npm run bench:gateway -- --lab` and meant for `sessionlb lab up --method gateway`.
import { HTTP_PORT, IPERF_PORT, LB_HEALTH_ADDR, RTSP_PORT, VIP, VIP_BULK, type Topology } from '../lab/topology.js';

export const LAB_GATEWAY_METRICS_PORT = 9180;

export function gatewayLabConfig(t: Topology, opts: { healthIntervalMs?: number; maxSessions?: number; maxSessionsPerBackend?: number } = {}): Record<string, unknown> {
  const interval = (opts.healthIntervalMs ?? 500) / 1000;
  const healthCheck = { type: 'http', port: HTTP_PORT, path: '/health', interval, timeout: Math.min(0.3, interval), rise: 2, fall: 2, localAddress: LB_HEALTH_ADDR };
  return {
    vips: [
      {
        address: VIP, ports: [HTTP_PORT, RTSP_PORT], rtspPorts: [RTSP_PORT], protocols: ['tcp'], scheduler: 'maglev', policy: 'session',
        ...(opts.maxSessions ? { maxSessions: opts.maxSessions } : {}),
        healthCheck,
        backends: t.backends.map((b) => ({ id: b.id, address: b.address, ...(opts.maxSessionsPerBackend ? { maxSessions: opts.maxSessionsPerBackend } : {}) })),
      },
      {
        // iperf3's control and data connections must meet one server: source hashing.
        address: VIP_BULK, ports: [IPERF_PORT], protocols: ['tcp'], scheduler: 'sh', policy: 'client',
        healthCheck,
        backends: t.backends.map((b) => ({ id: `${b.id}-bulk`, address: b.address })),
      },
    ],
    gateway: {
      source: LB_HEALTH_ADDR,
      // iperf3 is not HTTP: its port is proxied at layer 4.
      tcpPorts: [IPERF_PORT],
      maxConnections: 100000,
      metrics: { address: '127.0.0.1', port: LAB_GATEWAY_METRICS_PORT },
      logLevel: 'info',
    },
  };
}
