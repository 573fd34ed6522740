// `sessionlb lab up|down|status`: the network-namespace lab (host/lab/, docs/lab.md).
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { labDown, LabError, labStatus, labUp, summary } from '../lab/lab.js';
import { checkPrefix, DEFAULT_PREFIX, METHODS, type LabMethod } from '../lab/topology.js';
import { EXIT_FAIL, EXIT_OK, UsageError, report } from './errors.js';

export const LAB_USAGE = `usage: sessionlb lab up [--method nat|dr|splice|kernel|gateway|handoff] [--json]
       sessionlb lab down
       sessionlb lab status [--json]

Builds a lab of network namespaces (run as root; see docs/lab.md for the picture):
  clients   slb-c1 10.88.1.11, slb-c2 10.88.1.12 on the client LAN; slb-c3 10.88.3.11 and
            slb-c4 10.88.3.12 behind slb-nat, which masquerades them as 10.88.1.20
  router    slb-rtr between the client LAN, the front LAN 10.88.0.0/24 and the server LAN
            10.88.2.0/24
  balancer  slb-lb: bridges br-front and br-srv, sessionlb's TAPs tap-front and tap-srv on them,
            its own address 10.88.2.253 on br-srv (health checks leave from it)
  backends  slb-b1..slb-b3 at 10.88.2.11-13, each running nginx on 80 (answers with its id in the
            body and an X-Backend header), the GStreamer RTSP server on 8554 (rtsp://VIP:8554/test)
            and iperf3 on 5201
  VIPs      10.88.0.100 (HTTP 80, RTSP 8554), 10.88.0.101 (iperf3 5201, by client address)
Nothing is created outside the lab's namespaces; addresses exist only inside them.

Methods:
  nat     sessionlb forwards with NAT; backends route replies back through it (10.88.2.254)
  dr      sessionlb forwards by MAC; backends hold the VIPs on lo and answer clients directly
          through the router
  kernel  no sessionlb: the slb-lb kernel balances with nftables DNAT, the kube-proxy nftables
          way (numgen random into per-backend DNAT chains, conntrack), as the baseline

\`up\` starts sessionlb (nat, dr) as \`ip netns exec slb-lb node dist/host/cli/main.js run --config
STATE/sessionlb.json\` and returns when the VIP answers HTTP. \`down\` stops every process in the
lab's namespaces, deletes the namespaces and the state directory; it also cleans up after a crash.

options:
  --method M     nat (default), dr, splice (TCP splicing with delayed binding on the HTTP/RTSP VIP, docs/splice.md), kernel, gateway (sessionlb gateway, a TCP proxy on the VIP, docs/gateway.md) or handoff (TCP handoff of HTTP to agents in the backends, docs/handoff.md) (up)
  --json         print the topology (up) or the status (status) as JSON on stdout
  --prefix P     namespace name prefix (default ${DEFAULT_PREFIX}); lets two labs coexist
  --max-sessions N        up: VIP-wide concurrent RTSP session limit in sessionlb's config
  --health-interval MS    up: health check interval (default 500)
  --pcap-tap DIR          up: sessionlb mirrors each TAP's frames into DIR/<interface>.pcap
  --ipv6                  up: dual stack: fd88:<lan>::/64 beside every 10.88.<lan>.0/24 (the NAT box
                          masquerades as fd88:1::20) and the VIP fd88::100 for HTTP
  --help         this text

The state directory is $SESSIONLB_LAB_DIR/<prefix> (default /tmp/sessionlb-lab/slb).
exit codes: 0 done, 1 failed (message says why; a failed up removes what it made), 2 usage error`;

export async function runLab(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        method: { type: 'string', short: 'm' },
        json: { type: 'boolean' },
        prefix: { type: 'string' },
        'max-sessions': { type: 'string' },
        'health-interval': { type: 'string' },
        'pcap-tap': { type: 'string' },
        ipv6: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(LAB_USAGE + '\n');
      return EXIT_OK;
    }
    const [sub, ...extra] = positionals;
    if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const prefix = values.prefix ?? DEFAULT_PREFIX;
    const bad = checkPrefix(prefix);
    if (bad) throw new UsageError(bad);
    const num = (name: string, v: string | undefined): number | undefined => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer (got "${v}")`);
      return n;
    };
    switch (sub) {
      case 'up': {
        const method = (values.method ?? 'nat') as LabMethod;
        if (!METHODS.includes(method)) throw new UsageError(`--method must be one of ${METHODS.join(', ')} (got "${values.method}")`);
        if (values['pcap-tap'] !== undefined && (method === 'kernel' || method === 'gateway')) throw new UsageError('--pcap-tap needs sessionlb (method nat, dr, splice or handoff)');
        const t0 = performance.now();
        const st = await labUp({
          method,
          prefix,
          maxSessions: num('max-sessions', values['max-sessions']),
          healthIntervalMs: num('health-interval', values['health-interval']),
          ipv6: values.ipv6 === true,
          runArgs: values['pcap-tap'] ? ['--pcap-tap', resolve(values['pcap-tap'])] : [],
          log: (m) => {
            if (!values.json) process.stderr.write(`lab: ${m}\n`);
          },
        });
        if (values.json) process.stdout.write(JSON.stringify(summary(st), null, 2) + '\n');
        else {
          const s = summary(st);
          process.stderr.write(
            `lab up (${method}) in ${((performance.now() - t0) / 1000).toFixed(1)} s: VIPs ${s.vips.map((v) => v.address).join(', ')}; ` +
              `clients ${s.clients.map((c) => `${c.ns} ${c.address}`).join(', ')}; backends ${s.backends.map((b) => `${b.ns} ${b.address}`).join(', ')}` +
              (s.sessionlb ? `; sessionlb pid ${s.sessionlb.pid}, metrics ${s.sessionlb.metricsUrl}` : '') +
              '\n',
          );
        }
        return EXIT_OK;
      }
      case 'down': {
        const r = await labDown({ prefix });
        if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
        else process.stderr.write(`lab down: ${r.namespaces.length} namespaces removed, ${r.killed} processes stopped\n`);
        return EXIT_OK;
      }
      case 'status': {
        const s = labStatus(prefix);
        if (values.json) process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        else {
          const lines = [`lab ${s.prefix}: ${s.up ? `up (${s.method})` : s.method ? `degraded (${s.method})` : 'down'}`];
          for (const n of s.namespaces) if (n.present || s.method) lines.push(`  ${n.present ? 'ns   ' : 'MISSING ns'} ${n.name}`);
          for (const p of s.processes) lines.push(`  ${p.alive ? 'run  ' : 'DEAD '} ${p.role.padEnd(9)} ${p.ns} pid ${p.pid}`);
          for (const n of s.strayNamespaces) lines.push(`  stray ns ${n} (lab down removes it)`);
          process.stdout.write(lines.join('\n') + '\n');
        }
        return s.up || !s.method ? EXIT_OK : EXIT_FAIL;
      }
      case undefined:
        throw new UsageError('lab needs a subcommand: up, down or status');
      default:
        throw new UsageError(`unknown lab subcommand "${sub}" (up, down, status)`);
    }
  } catch (e) {
    if (e instanceof LabError) {
      process.stderr.write(`sessionlb lab: ${e.message}\n`);
      return EXIT_FAIL;
    }
    return report(e, LAB_USAGE);
  }
}
