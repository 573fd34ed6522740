// The lab's topology: namespace names, addresses and MACs, and the shell script that builds it.
// Everything lives inside network namespaces named with one prefix (default "slb-"); bridges and
// TAP devices are created inside the namespaces, never in the caller's, and addresses come from
// 10.88.0.0/16, which exists only inside the lab. docs/lab.md draws the picture.
//
//   client LAN 10.88.1.0/24 (bridge br-cli in the router): c1 .11, c2 .12, the NAT box .20
//   NAT LAN 10.88.3.0/24 (bridge br-in in the NAT box, masquerade to 10.88.1.20): c3 .11, c4 .12
//   front LAN 10.88.0.0/24 (bridge br-front in lb): router .1, sessionlb .2, VIPs .100 and .101
//   server LAN 10.88.2.0/24 (bridge br-srv in lb): router .1, backends .11-.13, lb kernel .253,
//     sessionlb's (or, for method kernel, lb's) gateway address .254

export const METHODS = ['nat', 'dr', 'splice', 'kernel', 'gateway', 'handoff'] as const;
export type LabMethod = (typeof METHODS)[number];

export const DEFAULT_PREFIX = 'slb-';

/** The service VIP: HTTP on 80 and RTSP on 8554, flows scheduled (RTSP sessions kept whole by sessionlb). */
export const VIP = '10.88.0.100';
/** The bulk VIP: iperf3 on 5201 (TCP and UDP), scheduled by client address so iperf3's control and
 * data connections meet the same server. */
export const VIP_BULK = '10.88.0.101';
export const HTTP_PORT = 80;
export const RTSP_PORT = 8554;
export const IPERF_PORT = 5201;

/** With --ipv6: the service VIP's IPv6 twin (HTTP), on the front LAN fd88::/64. */
export const VIP6 = 'fd88::100';
export const LB_FRONT_ADDR6 = 'fd88::2';
export const LB_HEALTH_ADDR6 = 'fd88:2::fd';
export const LB_SERVER_GW6 = 'fd88:2::fe';
export const ROUTER_FRONT6 = 'fd88::1';
export const ROUTER_SERVER6 = 'fd88:2::1';
export const ROUTER_FRONT = '10.88.0.1';
export const ROUTER_CLIENT = '10.88.1.1';
export const ROUTER_SERVER = '10.88.2.1';
export const NAT_OUTSIDE = '10.88.1.20';
export const NAT_INSIDE = '10.88.3.1';
/** The lb namespace's own kernel address on the server LAN: health checks leave from it. */
export const LB_HEALTH_ADDR = '10.88.2.253';
/** The backends' gateway in NAT and kernel modes (sessionlb answers ARP for it in NAT mode). */
export const LB_SERVER_GW = '10.88.2.254';

/** MACs are fixed so a config can name them: 02:88:00:00:<lan>:<host>. */
export function labMac(lan: number, host: number): string {
  return `02:88:00:00:${lan.toString(16).padStart(2, '0')}:${host.toString(16).padStart(2, '0')}`;
}
export const ROUTER_FRONT_MAC = labMac(0, 1);
export const ROUTER_SERVER_MAC = labMac(2, 1);
/** sessionlb's MAC (both TAP sides) and its own address on the front LAN. */
export const LB_FRONT_MAC = labMac(0, 0xfe);
export const LB_FRONT_ADDR = '10.88.0.2';
export const TAP_FRONT = 'tap-front';
export const TAP_SERVER = 'tap-srv';

export interface LabHost {
  ns: string;
  address: string;
}
export interface LabClient extends LabHost {
  id: string;
  /** With ipv6: the client's IPv6 address and the one the balancer sees (the NAT box's for c3, c4). */
  address6?: string;
  seenAs6?: string;
  /** The address the balancer sees: the NAT box's outside address for clients behind it. */
  seenAs: string;
  behindNat: boolean;
}
export interface LabBackend extends LabHost {
  id: string;
  mac: string;
  address6?: string;
}

export interface Topology {
  prefix: string;
  clients: LabClient[];
  backends: LabBackend[];
  nat: LabHost;
  router: string;
  lb: string;
  vips: string[];
  /** Dual stack: IPv6 addresses beside every IPv4 one and the VIP fd88::100 (HTTP). */
  ipv6: boolean;
}

export function topology(prefix = DEFAULT_PREFIX, ipv6 = false): Topology {
  const clients: LabClient[] = [
    { id: 'c1', ns: `${prefix}c1`, address: '10.88.1.11', seenAs: '10.88.1.11', behindNat: false },
    { id: 'c2', ns: `${prefix}c2`, address: '10.88.1.12', seenAs: '10.88.1.12', behindNat: false },
    { id: 'c3', ns: `${prefix}c3`, address: '10.88.3.11', seenAs: NAT_OUTSIDE, behindNat: true },
    { id: 'c4', ns: `${prefix}c4`, address: '10.88.3.12', seenAs: NAT_OUTSIDE, behindNat: true },
  ];
  if (ipv6) {
    for (const c of clients) {
      const host = c.address.split('.')[3];
      c.address6 = c.behindNat ? `fd88:3::${host}` : `fd88:1::${host}`;
      c.seenAs6 = c.behindNat ? 'fd88:1::20' : c.address6;
    }
  }
  const backends: LabBackend[] = [1, 2, 3].map((i) => ({
    id: `b${i}`,
    ns: `${prefix}b${i}`,
    address: `10.88.2.${10 + i}`,
    mac: labMac(2, 0x10 + i),
    ...(ipv6 ? { address6: `fd88:2::${10 + i}` } : {}),
  }));
  return {
    prefix,
    clients,
    backends,
    nat: { ns: `${prefix}nat`, address: NAT_OUTSIDE },
    router: `${prefix}rtr`,
    lb: `${prefix}lb`,
    vips: [VIP, VIP_BULK],
    ipv6,
  };
}

export function namespaces(t: Topology): string[] {
  return [t.router, t.lb, t.nat.ns, ...t.clients.map((c) => c.ns), ...t.backends.map((b) => b.ns)];
}

const PREFIX_RE = /^[a-z][a-z0-9]{0,11}-$/;
export function checkPrefix(p: string): string | null {
  return PREFIX_RE.test(p) ? null : `prefix "${p}" must be 1-12 lowercase letters or digits (starting with a letter) followed by "-"`;
}

/** sysctl writes run inside a namespace (one `ip netns exec` per namespace). */
function sysctls(ns: string, kv: [string, string | number][]): string {
  const body = kv.map(([k, v]) => `echo ${v} > /proc/sys/${k.replace(/\./g, '/')}`).join('; ');
  return `ip netns exec ${ns} sh -c '${body}'`;
}

/**
 * The shell script (bash -e) that builds the topology for one method. Namespaces, veths,
 * bridges and persistent TAPs (nat, dr) are created; no process is started here.
 */
export function buildScript(t: Topology, method: LabMethod): string {
  const L: string[] = ['set -e'];
  const ip = (ns: string, rest: string) => L.push(`ip -n ${ns} ${rest}`);
  const all = namespaces(t);
  for (const ns of all) L.push(`ip netns add ${ns}`);
  for (const ns of all) {
    ip(ns, 'link set lo up');
    // IPv4 only unless ipv6 (then without DAD, so addresses are usable at once).
    const v6: [string, number][] = t.ipv6
      ? [['net.ipv6.conf.all.disable_ipv6', 0], ['net.ipv6.conf.default.disable_ipv6', 0], ['net.ipv6.conf.all.accept_dad', 0], ['net.ipv6.conf.default.accept_dad', 0], ['net.ipv6.conf.default.accept_ra', 0]]
      : [['net.ipv6.conf.all.disable_ipv6', 1], ['net.ipv6.conf.default.disable_ipv6', 1]];
    L.push(sysctls(ns, [...v6, ['net.ipv4.conf.all.rp_filter', 0], ['net.ipv4.conf.default.rp_filter', 0]]));
  }
  const R = t.router, LB = t.lb, N = t.nat.ns;

  // Router: client LAN bridge, front and server legs.
  ip(R, 'link add br-cli type bridge');
  ip(R, `addr add ${ROUTER_CLIENT}/24 dev br-cli`);
  ip(R, 'link set br-cli up');
  for (const c of t.clients.filter((x) => !x.behindNat)) {
    ip(R, `link add ${c.id} type veth peer name eth0 netns ${c.ns}`);
    ip(R, `link set ${c.id} master br-cli up`);
    ip(c.ns, `addr add ${c.address}/24 dev eth0`);
    ip(c.ns, 'link set eth0 up');
    ip(c.ns, `route add default via ${ROUTER_CLIENT}`);
  }
  ip(R, `link add nat type veth peer name eth0 netns ${N}`);
  ip(R, 'link set nat master br-cli up');
  ip(N, `addr add ${NAT_OUTSIDE}/24 dev eth0`);
  ip(N, 'link set eth0 up');
  ip(N, `route add default via ${ROUTER_CLIENT}`);
  ip(N, 'link add br-in type bridge');
  ip(N, `addr add ${NAT_INSIDE}/24 dev br-in`);
  ip(N, 'link set br-in up');
  for (const c of t.clients.filter((x) => x.behindNat)) {
    ip(N, `link add ${c.id} type veth peer name eth0 netns ${c.ns}`);
    ip(N, `link set ${c.id} master br-in up`);
    ip(c.ns, `addr add ${c.address}/24 dev eth0`);
    ip(c.ns, 'link set eth0 up');
    ip(c.ns, `route add default via ${NAT_INSIDE}`);
  }
  L.push(sysctls(N, [['net.ipv4.ip_forward', 1]]));
  L.push(`ip netns exec ${N} nft -f - <<'NFT'
table ip slb-lab-nat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "eth0" ip saddr 10.88.3.0/24 masquerade
  }
}
NFT`);

  ip(LB, 'link add br-front type bridge');
  ip(LB, 'link add br-srv type bridge');
  // Bridges forward at once (no STP, no learning delay on ports).
  ip(LB, 'link set br-front type bridge stp_state 0 forward_delay 0');
  ip(LB, 'link set br-srv type bridge stp_state 0 forward_delay 0');
  ip(R, `link add front address ${ROUTER_FRONT_MAC} type veth peer name rtr netns ${LB}`);
  ip(R, `addr add ${ROUTER_FRONT}/24 dev front`);
  ip(R, 'link set front up');
  ip(LB, 'link set rtr master br-front up');
  // The router's server leg (DR replies and nothing else leave the backends through it).
  ip(R, `link add srv address ${ROUTER_SERVER_MAC} type veth peer name rtr-srv netns ${LB}`);
  ip(R, `addr add ${ROUTER_SERVER}/24 dev srv`);
  ip(R, 'link set srv up');
  ip(LB, 'link set rtr-srv master br-srv up');
  L.push(sysctls(R, [['net.ipv4.ip_forward', 1], ['net.ipv4.conf.front.rp_filter', 0], ['net.ipv4.conf.srv.rp_filter', 0], ['net.ipv4.conf.br-cli.rp_filter', 0]]));
  ip(R, `route add 10.88.3.0/24 via ${NAT_OUTSIDE}`);

  for (const b of t.backends) {
    ip(LB, `link add ${b.id} type veth peer name eth0 netns ${b.ns}`);
    ip(LB, `link set ${b.id} master br-srv up`);
    ip(b.ns, `link set eth0 address ${b.mac}`);
    ip(b.ns, `addr add ${b.address}/24 dev eth0`);
    ip(b.ns, 'link set eth0 up');
    if (method === 'dr' || method === 'handoff') {
      // One-way methods: the backend owns the VIPs (handoff: its agent's sockets are bound to them).
      for (const v of t.vips) ip(b.ns, `addr add ${v}/32 dev lo`);
      L.push(sysctls(b.ns, [['net.ipv4.conf.all.arp_ignore', 1], ['net.ipv4.conf.all.arp_announce', 2], ['net.ipv4.conf.eth0.arp_ignore', 1], ['net.ipv4.conf.eth0.arp_announce', 2]]));
      // Unbound sockets (the RTSP server's RTP) send from the service VIP, as the clients expect
      // (a client behind NAT only lets in media from the address it sent its punch packets to).
      ip(b.ns, `route add default via ${ROUTER_SERVER} src ${t.vips[0]}`);
    } else {
      ip(b.ns, `route add default via ${LB_SERVER_GW}`);
    }
  }
  ip(LB, `addr add ${LB_HEALTH_ADDR}/24 dev br-srv`);
  ip(LB, 'link set br-front up');
  ip(LB, 'link set br-srv up');

  if (t.ipv6) L.push(...ipv6Lines(t, method));

  if (method === 'gateway') {
    // sessionlb gateway (host/gateway): the VIPs are kernel addresses of lb and it proxies; nothing is forwarded.
    for (const v of t.vips) ip(LB, `addr add ${v}/24 dev br-front`);
    ip(LB, `addr add ${LB_SERVER_GW}/24 dev br-srv`);
    ip(LB, `route add default via ${ROUTER_FRONT}`);
  } else if (method === 'kernel') {
    for (const v of t.vips) ip(LB, `addr add ${v}/24 dev br-front`);
    ip(LB, `addr add ${LB_SERVER_GW}/24 dev br-srv`);
    ip(LB, `route add default via ${ROUTER_FRONT}`);
    L.push(sysctls(LB, [['net.ipv4.ip_forward', 1]]));
    L.push(`ip netns exec ${LB} nft -f - <<'NFT'\n${kernelRuleset(t)}NFT`);
  } else {
    // Persistent TAPs for sessionlb, already bridged when it opens them.
    ip(LB, `tuntap add dev ${TAP_FRONT} mode tap`);
    ip(LB, `tuntap add dev ${TAP_SERVER} mode tap`);
    ip(LB, `link set ${TAP_FRONT} master br-front up`);
    ip(LB, `link set ${TAP_SERVER} master br-srv up`);
  }
  return L.join('\n') + '\n';
}

/** The IPv6 half of a dual-stack lab: the same links, fd88:<lan>::/64 addresses, the VIP fd88::100. */
function ipv6Lines(t: Topology, method: LabMethod): string[] {
  const L: string[] = [];
  const ip = (ns: string, rest: string) => L.push(`ip -n ${ns} ${rest}`);
  const R = t.router, LB = t.lb, N = t.nat.ns;
  ip(R, 'addr add fd88:1::1/64 dev br-cli nodad');
  ip(R, `addr add ${ROUTER_FRONT6}/64 dev front nodad`);
  ip(R, `addr add ${ROUTER_SERVER6}/64 dev srv nodad`);
  ip(R, 'route add fd88:3::/64 via fd88:1::20');
  L.push(sysctls(R, [['net.ipv6.conf.all.forwarding', 1]]));
  ip(N, 'addr add fd88:1::20/64 dev eth0 nodad');
  ip(N, 'addr add fd88:3::1/64 dev br-in nodad');
  ip(N, 'route add default via fd88:1::1');
  L.push(sysctls(N, [['net.ipv6.conf.all.forwarding', 1]]));
  L.push(`ip netns exec ${N} nft -f - <<'NFT'
table ip6 slb-lab-nat6 {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "eth0" ip6 saddr fd88:3::/64 masquerade
  }
}
NFT`);
  for (const c of t.clients) {
    ip(c.ns, `addr add ${c.address6}/64 dev eth0 nodad`);
    ip(c.ns, `route add default via ${c.behindNat ? 'fd88:3::1' : 'fd88:1::1'}`);
  }
  for (const b of t.backends) {
    ip(b.ns, `addr add ${b.address6}/64 dev eth0 nodad`);
    if (method === 'dr') {
      ip(b.ns, `addr add ${VIP6}/128 dev lo`);
      ip(b.ns, `route add default via ${ROUTER_SERVER6} src ${VIP6}`);
    } else {
      ip(b.ns, `route add default via ${LB_SERVER_GW6}`);
    }
  }
  ip(LB, `addr add ${LB_HEALTH_ADDR6}/64 dev br-srv nodad`);
  if (method === 'kernel') {
    ip(LB, `addr add ${VIP6}/64 dev br-front nodad`);
    ip(LB, `addr add ${LB_SERVER_GW6}/64 dev br-srv nodad`);
    ip(LB, `route add default via ${ROUTER_FRONT6}`);
    L.push(sysctls(LB, [['net.ipv6.conf.all.forwarding', 1]]));
    L.push(`ip netns exec ${LB} nft -f - <<'NFT'\n${kernelRuleset6(t)}NFT`);
  }
  return L;
}

/** kernelRuleset's IPv6 twin for the VIP fd88::100 (HTTP). */
export function kernelRuleset6(t: Topology): string {
  const n = t.backends.length;
  const L: string[] = ['table ip6 slb-lab-kernel6 {'];
  L.push('  chain services {');
  L.push(`    ip6 daddr . meta l4proto . th dport vmap { ${VIP6} . tcp . ${HTTP_PORT} : goto svc-web }`);
  L.push('  }');
  L.push('  chain svc-web {');
  L.push(`    numgen random mod ${n} vmap { ${t.backends.map((b, i) => `${i} : goto sep-${b.id}`).join(', ')} }`);
  L.push('  }');
  for (const b of t.backends) L.push(`  chain sep-${b.id} {`, `    dnat to ${b.address6}`, '  }');
  L.push('  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', '    jump services', '  }', '}');
  return L.join('\n') + '\n';
}

/**
 * The kernel baseline, written the way kube-proxy's nftables mode does it: a services map from
 * (VIP, protocol, port) to a per-service chain, `numgen random mod N` into a vmap of per-endpoint
 * chains that DNAT, conntrack for the rest. The bulk VIP hashes the client address instead
 * (kube-proxy's ClientIP affinity keeps a client on one endpoint too) so iperf3 works.
 */
export function kernelRuleset(t: Topology): string {
  const n = t.backends.length;
  const L: string[] = ['table ip slb-lab-kernel {'];
  L.push('  chain services {');
  L.push(`    ip daddr . meta l4proto . th dport vmap { ${VIP} . tcp . ${HTTP_PORT} : goto svc-web, ${VIP} . tcp . ${RTSP_PORT} : goto svc-web, ${VIP_BULK} . tcp . ${IPERF_PORT} : goto svc-bulk, ${VIP_BULK} . udp . ${IPERF_PORT} : goto svc-bulk }`);
  L.push('  }');
  L.push('  chain svc-web {');
  L.push(`    numgen random mod ${n} vmap { ${t.backends.map((b, i) => `${i} : goto sep-${b.id}`).join(', ')} }`);
  L.push('  }');
  L.push('  chain svc-bulk {');
  L.push(`    jhash ip saddr mod ${n} vmap { ${t.backends.map((b, i) => `${i} : goto sep-${b.id}`).join(', ')} }`);
  L.push('  }');
  for (const b of t.backends) {
    L.push(`  chain sep-${b.id} {`);
    L.push(`    dnat to ${b.address}`);
    L.push('  }');
  }
  L.push('  chain prerouting {');
  L.push('    type nat hook prerouting priority dstnat; policy accept;');
  L.push('    jump services');
  L.push('  }');
  L.push('}');
  return L.join('\n') + '\n';
}
