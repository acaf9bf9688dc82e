/**
 * Dummynet as the firewall plugs it in. The kipfw daemon owns one Dummynet (its packets wait in
 * the daemon's buffer pool, its counters live in its memory): `pipe`/`queue`/`sched` commands
 * reach it through the control socket, and the configuration it ends up with is kept in the
 * published FirewallConfig too (`dummynet`), so that it survives as text like the rules.
 * A firewall without a daemon (inside a VALE switch) keeps only the configuration: a lookup
 * cannot hold packets, so its pipe/queue rules drop (see vale.ts), and `pipe show` prints the
 * configuration with zero counters.
 */
import { Dummynet, FlowKey } from './dummynet/index.js';
import type { FirewallAccess, CommandResult } from './commands.js';
import type { FirewallConfig } from './rule.js';
import type { DaemonDummynet } from './daemon.js';
import type { Firewall } from './firewall.js';

/** Commands that change dummynet's configuration (the others only read it). */
function changes(argv: string[]): boolean {
  return argv.some((a) => a === 'config' || a === 'delete' || a === 'flush');
}

function run(dn: Dummynet, argv: string[], config: FirewallConfig): CommandResult {
  const r = dn.command(argv);
  const next = r.status === 0 && changes(argv) ? { ...config, dummynet: dn.configJSON() } : config;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, config: next };
}

/**
 * Fills `key` with the flow of the Ethernet frame u8[off, off+len) (dummynet's masks classify on
 * it): protocol, addresses, ports, IPv6 flow label. Fields a short frame lacks stay 0.
 */
export function flowKeyOf(key: FlowKey, u8: Uint8Array, off: number, len: number): void {
  if (len < 14) { key.setV4(0, 0, 0, 0, 0); return; }
  let et = (u8[off + 12]! << 8) | u8[off + 13]!;
  let l3 = off + 14;
  if ((et === 0x8100 || et === 0x88a8) && len >= 18) { et = (u8[off + 16]! << 8) | u8[off + 17]!; l3 += 4; }
  const end = off + len;
  if (et === 0x0800 && l3 + 20 <= end) {
    const ihl = (u8[l3]! & 15) * 4;
    const proto = u8[l3 + 9]!;
    const src = ((u8[l3 + 12]! << 24) | (u8[l3 + 13]! << 16) | (u8[l3 + 14]! << 8) | u8[l3 + 15]!) >>> 0;
    const dst = ((u8[l3 + 16]! << 24) | (u8[l3 + 17]! << 16) | (u8[l3 + 18]! << 8) | u8[l3 + 19]!) >>> 0;
    const frag = ((u8[l3 + 6]! & 0x1f) << 8) | u8[l3 + 7]!;
    const l4 = l3 + ihl;
    let sp = 0, dp = 0;
    if (frag === 0 && (proto === 6 || proto === 17 || proto === 132) && l4 + 4 <= end) {
      sp = (u8[l4]! << 8) | u8[l4 + 1]!;
      dp = (u8[l4 + 2]! << 8) | u8[l4 + 3]!;
    }
    key.setV4(proto, src, sp, dst, dp);
  } else if (et === 0x86dd && l3 + 40 <= end) {
    key.setV4(0, 0, 0, 0, 0); // every field IPv6 leaves unset back to 0
    key.isV6 = true;
    key.proto = u8[l3 + 6]!;
    key.flowId6 = ((u8[l3 + 1]! & 15) << 16) | (u8[l3 + 2]! << 8) | u8[l3 + 3]!;
    for (let i = 0; i < 4; i++) {
      const s = l3 + 8 + 4 * i, d = l3 + 24 + 4 * i;
      key.src6[i] = ((u8[s]! << 24) | (u8[s + 1]! << 16) | (u8[s + 2]! << 8) | u8[s + 3]!) >>> 0;
      key.dst6[i] = ((u8[d]! << 24) | (u8[d + 1]! << 16) | (u8[d + 2]! << 8) | u8[d + 3]!) >>> 0;
    }
    const l4 = l3 + 40;
    if ((key.proto === 6 || key.proto === 17 || key.proto === 132) && l4 + 4 <= end) {
      key.srcPort = (u8[l4]! << 8) | u8[l4 + 1]!;
      key.dstPort = (u8[l4 + 2]! << 8) | u8[l4 + 3]!;
    }
  } else {
    key.setV4(0, 0, 0, 0, 0); // not IP (ARP...): the all-zero flow
  }
}

/** The daemon's dummynet: the data path side and the command side. */
export function makeDaemonDummynet(): DaemonDummynet {
  const dn = new Dummynet();
  const key = new FlowKey();
  return {
    enqueue(kind, n, handle, len, u8, off, ruleIndex, nowNs) {
      flowKeyOf(key, u8, off, len);
      return dn.enqueue(kind, n, handle, len, key, ruleIndex, nowNs);
    },
    nextEventNs: () => dn.nextEventNs(),
    dequeueDue: (nowNs, handles, rules, max) => dn.dequeueDue(nowNs, handles, rules, max),
    settings(s) { dn.settings.ioFast = s.ioFast; dn.settings.onePass = s.onePass; },
    command: (argv, config) => run(dn, argv, config),
    flushAll() { dn.flushAll(() => { /* the path takes every pool buffer back itself */ }); },
    lateness: () => dn.releaseLateness(),
  };
}

/** For a firewall without a daemon: dummynet commands on the configuration alone. */
export function makeConfigDummynet(_fw: Firewall): NonNullable<FirewallAccess['dummynet']> {
  return (argv, config) => {
    const dn = new Dummynet();
    if (config.dummynet !== null && config.dummynet !== undefined) dn.loadConfig(config.dummynet);
    return run(dn, argv, config);
  };
}
