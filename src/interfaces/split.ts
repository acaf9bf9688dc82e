/**
 * netmap's split between the wire and the host stack of interface IF.
 *
 * While a split is installed on IF:
 *  - frames from the wire no longer reach the stack: an ingress program drops every frame without
 *    our mark. Packet sockets on IF still receive those frames (they see frames before tc
 *    ingress) — that is the NIC RX ring;
 *  - frames the stack sends no longer reach the wire: an egress program redirects them to
 *    `nmh<ifindex>`, a TAP whose descriptor we read (the host RX ring) — or drops them while
 *    nobody wants them;
 *  - frames for the wire are sent with PACKET_QDISC_BYPASS, which skips tc egress (NIC TX ring),
 *    and carry skb mark WIRE_MARK, which nf_tables' egress chain lets through;
 *  - frames for the stack (host TX ring) are sent on IF carrying skb mark SPLIT_MARK; the egress
 *    program turns them around into IF's ingress, where the ingress program lets marked frames
 *    through to the stack. Receivers of the NIC RX ring drop marked frames (dropMark option).
 *
 * Three implementations, chosen at run time (splitMethod()):
 *  - 'nft' (the default; nf_tables with netdev egress, Linux 5.16+, and tcx for the host TX ring):
 *    a netdev table `nmts<ifindex>` owned by our NETLINK_NETFILTER socket, with an ingress chain
 *    and an egress chain on IF (policy drop, marked frames accepted, the rest of what the stack
 *    sends forwarded to the host TAP while capturing). Made and removed in well under a
 *    millisecond, with no RCU grace period under the RTNL lock; the kernel deletes the table when
 *    the socket closes, also on SIGKILL. nf_tables cannot send a frame into an interface's own
 *    ingress, so the host TX ring's turnaround is a tcx egress link (`nmts_host`), made only when
 *    a host TX ring is first bound.
 *  - 'tcx' (kernel 6.6+, where nf_tables is missing, or NETMAP_TS_SPLIT=tcx): two eBPF SCHED_CLS
 *    programs assembled here, attached with BPF_LINK_CREATE at BPF_TCX_INGRESS / BPF_TCX_EGRESS.
 *    The links are descriptors of the owning process: they go away with it, also on SIGKILL, so a
 *    crash leaves nothing on IF. Each link's creation and release waits for an RCU grace period
 *    under the RTNL lock. No process is spawned.
 *  - 'tc' (older kernels, or NETMAP_TS_SPLIT=tc): classic-BPF cls_bpf filters and mirred actions
 *    on a clsact qdisc, installed by spawning `tc`. These stay after a crash until the next
 *    install or removeStaleSplits() removes them; ours are recognised by their preferences
 *    (SPLIT_PREF, +1), looked up over rtnetlink.
 *
 * Ownership: the owner binds an abstract AF_UNIX socket name, `netmap-ts/if/<ifindex>` (such
 * names belong to the network namespace and go with their last descriptor, at once, also when the
 * process dies): a second binder gets EADDRINUSE, which is EBUSY here. The host TAP is
 * non-persistent, so it vanishes with its process too. (The lock was a TAP device `nmd<ifindex>`:
 * creating and destroying a net device costs several RCU grace periods per open and close.)
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { NetmapError, fail } from '../errors.js';
import { interfaceInfo, interfaceExists, setInterfaceUp, checkInterfaceName } from './ifinfo.js';
import { TapDevice } from './tap.js';
import * as native from '../native/index.js';
import * as bpf from '../native/bpf.js';
import * as nft from '../native/nftables.js';
import { links, tcFilterPrefs, TC_PARENT_INGRESS, TC_PARENT_EGRESS } from '../native/netlink.js';

/** skb mark of frames we hand to the host stack ('NMTS'). */
export const SPLIT_MARK = 0x4e4d5453;
/**
 * skb mark of the frames our NIC TX rings send to the wire ('NMTW'). Qdisc bypass skips tc and
 * tcx egress but not nf_tables' egress hook (AF_PACKET runs it since Linux 6.1), where the nft
 * split lets these through and takes everything else the stack sends. Across a network namespace
 * the kernel clears the mark; a veth peer in the same namespace receives it.
 */
export const WIRE_MARK = 0x4e4d5457;
/** tc filter preference of our rules ('NM'); the egress capture rule uses SPLIT_PREF + 1. */
export const SPLIT_PREF = 0x4e4d;
/** Names of our tcx programs (kept by the kernel, shown by bpftool): the cut, the egress, the host TX turnaround. */
export const TCX_INGRESS_NAME = 'nmts_cut', TCX_EGRESS_NAME = 'nmts_out', TCX_HOST_NAME = 'nmts_host';
/** Environment variable forcing one implementation: 'nft', 'tcx' or 'tc'. */
export const SPLIT_ENV = 'NETMAP_TS_SPLIT';
const TC_TIMEOUT_MS = 10_000;

export type SplitMethod = 'nft' | 'tcx' | 'tc';

/** Whether nf_tables chains and tcx links worked on this kernel (null: not tried yet in this thread). */
let nftWorks: boolean | null = null;
let tcxWorks: boolean | null = null;

/**
 * The implementation installs use: NETMAP_TS_SPLIT=nft|tcx|tc forces one; otherwise nft, unless
 * an attempt found the kernel without it (then tcx), and tc where tcx failed too (for the rest of
 * the thread's life).
 */
export function splitMethod(): SplitMethod {
  const forced = process.env[SPLIT_ENV];
  if (forced === 'nft' || forced === 'tc' || forced === 'tcx') return forced;
  // a misspelt value chose nothing and said nothing: it was the default's figures one measured
  if (forced !== undefined && forced !== '') fail('EINVAL', `${SPLIT_ENV}=${forced}: not a host-stack split (nft, tcx or tc; unset: nft where it works)`);
  if (nftWorks !== false) return 'nft';
  return tcxWorks === false ? 'tc' : 'tcx';
}

/**
 * Registry word of a split's cut (port.ts keeps it for the process's other threads): the
 * nf_tables socket's descriptor with this flag, or the tcx ingress link's descriptor.
 */
export const NFT_CUT_FLAG = 0x40000000;

// ---- nft: a netdev table owned by our socket --------------------------------------------------

/** Name of our nf_tables table for interface `ifindex`. */
export function nftTableName(ifindex: number): string {
  return `nmts${ifindex}`;
}

/**
 * The egress chain's rules: our NIC TX frames on to the wire, the host TX ring's on to the
 * turnaround; the rest to the host TAP (or the policy's drop).
 */
function nftEgressRules(table: string, hostIfindex: number): nft.NftMessage[] {
  const rules = [nft.rule(table, 'out', [...nft.markEquals(WIRE_MARK), nft.accept()]), nft.rule(table, 'out', [...nft.markEquals(SPLIT_MARK), nft.accept()])];
  if (hostIfindex !== 0) rules.push(nft.rule(table, 'out', nft.forwardTo(hostIfindex)));
  return rules;
}

/** The ingress chain: marked frames (the host TX ring's) on to the stack, the rest dropped. */
function nftIngressChain(table: string, ifname: string): nft.NftMessage[] {
  return [nft.newDropChain(table, 'in', nft.NF_NETDEV_INGRESS, ifname), nft.rule(table, 'in', [...nft.markEquals(SPLIT_MARK), nft.accept()])];
}

/**
 * Makes the owned table of `ifname` in one transaction; returns the owning socket. EOPNOTSUPP
 * when this kernel has no nf_tables with netdev egress hooks.
 */
function installNft(ifname: string, ifindex: number, ingressCut: boolean, hostIfindex: number): number {
  const table = nftTableName(ifindex);
  let fd: number;
  try {
    fd = nft.openSocket();
  } catch (e) {
    if (e instanceof NetmapError && e.code !== 'EPERM') fail('EOPNOTSUPP', `this kernel has no nf_tables netlink (${e.message})`);
    throw e;
  }
  try {
    const msgs = [nft.newOwnedTable(table), nft.newDropChain(table, 'out', nft.NF_NETDEV_EGRESS, ifname), ...nftEgressRules(table, hostIfindex)];
    if (ingressCut) msgs.push(...nftIngressChain(table, ifname));
    try {
      nft.transact(fd, msgs, `cut '${ifname}' off from its host stack (nf_tables)`);
    } catch (e) {
      if (!(e instanceof NetmapError)) throw e;
      if (e.code === 'EEXIST') fail('EBUSY', `nf_tables table netdev ${table} exists already (not made by a live netmap-ts owner: delete it with 'nft delete table netdev ${table}')`);
      if (e.code === 'EPERM' || e.code === 'ENODEV' || e.code === 'ENOENT') throw e;
      fail('EOPNOTSUPP', `this kernel cannot hook nf_tables chains to an interface's egress (${e.message}; needs Linux 5.16+)`);
    }
    return fd;
  } catch (e) {
    native.closeFd(fd);
    throw e;
  }
}

// ---- tcx: eBPF programs on BPF links --------------------------------------------------------

/** Ingress: frames without SPLIT_MARK are dropped; marked ones go on (TCX_NEXT) to the stack. */
export function ingressProgram(): Buffer {
  return new bpf.Asm()
    .load(4, 2, 1, bpf.SKB_MARK)
    .movImm(0, bpf.TCX_NEXT)
    .jeqImm(2, SPLIT_MARK, 'out')
    .movImm(0, bpf.TCX_DROP)
    .label('out').exit()
    .build();
}

/**
 * Egress of interface `ifindex`: frames with SPLIT_MARK are redirected into its own ingress
 * (host TX ring -> stack); every other frame the stack sends is redirected to `hostIfindex`
 * (the host TAP), or dropped when that is 0.
 */
export function egressProgram(ifindex: number, hostIfindex: number): Buffer {
  const a = new bpf.Asm()
    .load(4, 2, 1, bpf.SKB_MARK)
    .jneImm(2, SPLIT_MARK, 'host')
    .movImm(1, ifindex)
    .movImm(2, bpf.BPF_F_INGRESS)
    .call(bpf.BPF_FUNC_redirect)
    .exit()
    .label('host');
  if (hostIfindex === 0) return a.movImm(0, bpf.TCX_DROP).exit().build();
  return a.movImm(1, hostIfindex).movImm(2, 0).call(bpf.BPF_FUNC_redirect).exit().build();
}

/**
 * The host TX ring's turnaround (with the nft split, whose egress chain accepted the marked
 * frames): frames with SPLIT_MARK are redirected into the ingress of `ifindex`; others go on.
 */
export function turnaroundProgram(ifindex: number): Buffer {
  return new bpf.Asm()
    .load(4, 2, 1, bpf.SKB_MARK)
    .movImm(0, bpf.TCX_NEXT)
    .jneImm(2, SPLIT_MARK, 'out')
    .movImm(1, ifindex)
    .movImm(2, bpf.BPF_F_INGRESS)
    .call(bpf.BPF_FUNC_redirect)
    .label('out').exit()
    .build();
}

function loadTcx(insns: Buffer, name: string, attachType: number): number {
  return bpf.loadProgram({ type: bpf.BPF_PROG_TYPE_SCHED_CLS, insns, name, expectedAttachType: attachType });
}

/**
 * Loads `insns` and links it to `attachType` of `ifindex`; returns the link's descriptor (the
 * program is held by the link). EOPNOTSUPP when this kernel has no tcx.
 */
function attachTcx(ifindex: number, insns: Buffer, name: string, attachType: number): number {
  const prog = loadTcx(insns, name, attachType);
  try {
    const link = bpf.createLinkTry(prog, ifindex, attachType);
    if (link >= 0) return link;
    if (link === -22 /* EINVAL */ || link === -95 /* EOPNOTSUPP */) fail('EOPNOTSUPP', `this kernel cannot link a program to tcx ${attachType === bpf.BPF_TCX_INGRESS ? 'ingress' : 'egress'} (errno ${-link}; tcx needs Linux 6.6+)`);
    if (link === -1 || link === -13) fail('EPERM', `cannot attach a tcx program: needs root or CAP_BPF + CAP_NET_ADMIN (errno ${-link})`);
    if (link === -19) fail('ENXIO', `interface ${ifindex} is gone`);
    throw new NetmapError('EIO', `BPF_LINK_CREATE (tcx) failed: errno ${-link}`);
  } finally {
    native.closeFd(prog);
  }
}

/** Ids of our tcx programs attached to `ifindex` (any process's). */
function ourTcxPrograms(ifindex: number): number[] {
  const out: number[] = [];
  for (const type of [bpf.BPF_TCX_INGRESS, bpf.BPF_TCX_EGRESS]) {
    let ids: number[];
    try {
      ids = bpf.queryPrograms(ifindex, type);
    } catch {
      continue; // no tcx on this kernel, or not allowed to look
    }
    for (const id of ids) {
      const name = bpf.programName(id);
      if (name === TCX_INGRESS_NAME || name === TCX_EGRESS_NAME || name === TCX_HOST_NAME) out.push(id);
    }
  }
  return out;
}

// ---- tc: classic BPF filters installed by the tc command -------------------------------------

// Classic BPF for cls_bpf: `ld mark` is ancillary load SKF_AD_OFF + SKF_AD_MARK (0xfffff014).
// Ingress, direct action: frames without our mark -> TC_ACT_SHOT (2), marked ones -> TC_ACT_UNSPEC
// (-1: on to the next filter, if any, and the stack).
const BPF_DROP_UNMARKED = `4,32 0 0 4294963220,21 1 0 ${SPLIT_MARK},6 0 0 2,6 0 0 4294967295`;
const BPF_MARK = `4,32 0 0 4294963220,21 0 1 ${SPLIT_MARK},6 0 0 4294967295,6 0 0 0`;
const BPF_ALL = '1,6 0 0 4294967295';
// Direct action, every frame -> TC_ACT_SHOT: the drop without tc's gact action module, which
// kernels may lack (this one does: "Failed to load TC action module").
const BPF_SHOT_ALL = '1,6 0 0 2';

/** Name of the former sink TAP (the ownership lock before interfaceLock); reserved still. */
export function sinkDeviceName(ifindex: number): string {
  return `nmd${ifindex}`;
}

const AF_UNIX = 1;

/**
 * Takes the ownership lock of interface `ifindex` of this network namespace: binds the abstract
 * AF_UNIX name `netmap-ts/if/<ifindex>`; returns the socket's descriptor (closing it, or the
 * process ending, frees the lock). EBUSY when a live process holds it.
 */
export function takeInterfaceLock(ifindex: number): number {
  const name = `netmap-ts/if/${ifindex}`;
  const addr = Buffer.alloc(3 + name.length);
  addr.writeUInt16LE(AF_UNIX, 0); // sun_path[0] = 0: an abstract name
  addr.write(name, 3, 'latin1');
  const fd = native.socket(AF_UNIX, native.SOCK_DGRAM, 0);
  try {
    native.bind(fd, addr);
  } catch (e) {
    native.closeFd(fd);
    if (e instanceof NetmapError && e.code === 'EADDRINUSE') fail('EBUSY', `interface ${ifindex} is held in netmap mode by a live process`);
    throw e;
  }
  return fd;
}

/** Whether a live process holds interface `ifindex` of this network namespace (takeInterfaceLock). */
export function interfaceLockHeld(ifindex: number): boolean {
  try {
    native.closeFd(takeInterfaceLock(ifindex));
    return false;
  } catch (e) {
    if (e instanceof NetmapError && e.code === 'EBUSY') return true;
    throw e;
  }
}
export function hostDeviceName(ifindex: number): string {
  return `nmh${ifindex}`;
}
/** Whether `name` is one of the helper devices made here (nmd<N>/nmh<N>). */
export function isHelperDevice(name: string): boolean {
  return /^nm[dh]\d+$/.test(name);
}

interface TcResult { status: number; out: string; err: string }

/** child_process, loaded on the tc path only (a tcx open spawns nothing: no need to load it at start). */
let spawnSyncFn: typeof import('node:child_process').spawnSync | null = null;

function tc(args: string[]): TcResult {
  spawnSyncFn ??= (createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process')).spawnSync;
  const r = spawnSyncFn('tc', args, { encoding: 'utf8', timeout: TC_TIMEOUT_MS, killSignal: 'SIGKILL' });
  if (r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    fail('EOPNOTSUPP', 'the tc command (iproute2) is needed to split an interface from its host stack on a kernel without tcx');
  }
  return { status: r.status ?? -1, out: r.stdout ?? '', err: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

function tcMust(args: string[], what: string): void {
  const r = tc(args);
  if (r.status !== 0) {
    const code = /Operation not permitted/i.test(r.err) ? 'EPERM' : /No such device|Cannot find device/i.test(r.err) ? 'ENXIO' : 'EIO';
    fail(code, `cannot ${what}: tc ${args.join(' ')}: ${r.err.trim()}${code === 'EPERM' ? ' (needs root or CAP_NET_ADMIN)' : ''}`);
  }
}

function hasClsact(ifname: string): boolean {
  const r = tc(['qdisc', 'show', 'dev', ifname]);
  return /qdisc clsact/.test(r.out);
}

/** Whether tc rules of ours are on interface `ifindex` (rtnetlink: nothing spawned). */
function hasTcRules(ifindex: number): boolean {
  const ours = (p: number): boolean => p === SPLIT_PREF || p === SPLIT_PREF + 1;
  return tcFilterPrefs(ifindex, TC_PARENT_INGRESS).some(ours) || tcFilterPrefs(ifindex, TC_PARENT_EGRESS).some(ours);
}

/** Whether our nf_tables table for `ifindex` exists (false where there is no nf_tables). */
function hasNftTable(ifindex: number): boolean {
  try {
    return nft.tableExists(nftTableName(ifindex));
  } catch {
    return false;
  }
}

/**
 * Whether anything of ours is on `ifname`: tc rules (installed by a live owner or left by a
 * crash), our nf_tables table or tcx programs (only ever a live owner's).
 */
export function hasSplitRules(ifname: string): boolean {
  const index = interfaceInfo(ifname).index;
  return hasTcRules(index) || hasNftTable(index) || ourTcxPrograms(index).length > 0;
}

/** Removes our tc rules from `ifname` (idempotent), and its clsact qdisc if no filter is left. */
function removeRules(ifname: string): void {
  tc(['filter', 'del', 'dev', ifname, 'ingress', 'pref', String(SPLIT_PREF)]);
  tc(['filter', 'del', 'dev', ifname, 'egress', 'pref', String(SPLIT_PREF)]);
  tc(['filter', 'del', 'dev', ifname, 'egress', 'pref', String(SPLIT_PREF + 1)]);
  const index = native.ifNameToIndex(ifname);
  if (index !== 0 && tcFilterPrefs(index, TC_PARENT_INGRESS).length === 0 && tcFilterPrefs(index, TC_PARENT_EGRESS).length === 0 && hasClsact(ifname)) {
    tc(['qdisc', 'del', 'dev', ifname, 'clsact']);
  }
}

/** Removes tc rules of ours left on `ifname` by a crashed owner; spawns tc only when there are some. */
function removeTcLeftovers(ifname: string, ifindex: number): boolean {
  if (!hasTcRules(ifindex)) return false;
  removeRules(ifname);
  return true;
}

/** The cls_bpf filter for what the stack sends: to the host TAP (mirred), or dropped (direct action). */
function captureFilter(hostName: string | null): string[] {
  return hostName !== null ? ['bytecode', BPF_ALL, 'action', 'mirred', 'egress', 'redirect', 'dev', hostName] : ['da', 'bytecode', BPF_SHOT_ALL];
}

function installTcRules(ifname: string, hostName: string, capture: boolean): void {
  if (!hasClsact(ifname)) tcMust(['qdisc', 'add', 'dev', ifname, 'clsact'], `add a clsact qdisc to '${ifname}'`);
  tcMust(['filter', 'add', 'dev', ifname, 'ingress', 'pref', String(SPLIT_PREF), 'bpf', 'da', 'bytecode', BPF_DROP_UNMARKED], `cut '${ifname}' off from its host stack (ingress)`);
  tcMust(['filter', 'add', 'dev', ifname, 'egress', 'pref', String(SPLIT_PREF), 'bpf', 'bytecode', BPF_MARK,
    'action', 'mirred', 'ingress', 'redirect', 'dev', ifname], `route host-ring frames into the stack of '${ifname}'`);
  tcMust(['filter', 'add', 'dev', ifname, 'egress', 'pref', String(SPLIT_PREF + 1), 'handle', '1', 'bpf',
    ...captureFilter(capture ? hostName : null)], `cut '${ifname}' off from its host stack (egress)`);
}

function disableIpv6(dev: string): void {
  try {
    fs.writeFileSync(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1');
  } catch { /* no IPv6 in this kernel or namespace: nothing would be sent anyway */ }
}

export interface SplitOptions {
  /** Redirect what the stack sends to the host TAP for reading (true) or drop it (false, default). */
  capture?: boolean;
  /**
   * Cut the wire off the stack with the ingress chain or program (true, default). false: the caller
   * cuts it another way — netmap:IF ports over AF_XDP, whose XDP program drops what it does not
   * redirect to a socket — and one link fewer is made and closed (each costs an RCU grace period);
   * `addIngressCut()` adds it later if that other way fails. The tc path installs its ingress rule
   * whatever this says.
   */
  ingressCut?: boolean;
}

/** Makes the host TAP `nmh<ifindex>`: up, without IPv6 (nothing of its own to send). */
function openHostTap(ifindex: number): TapDevice {
  const name = hostDeviceName(ifindex);
  const host = TapDevice.open(name, { up: false });
  try {
    disableIpv6(name);
    setInterfaceUp(name, true);
  } catch (e) {
    host.close();
    throw e;
  }
  return host;
}

/**
 * Switches what the stack sends on `ifname` to the host TAP (`host`) or to a drop (null): with
 * nft by replacing the egress chain's rules in one transaction on the owning socket (`cutWord`),
 * with tcx by replacing the program of link `egressLink` (BPF_LINK_UPDATE, atomic), with tc by
 * replacing the capture rule. Usable from any thread of the process that holds the split.
 */
export function switchCapture(ifname: string, ifindex: number, cutWord: number, egressLink: number, host: TapDevice | null): void {
  if (cutWord > 0 && (cutWord & NFT_CUT_FLAG) !== 0) {
    const table = nftTableName(ifindex);
    nft.transact(cutWord & ~NFT_CUT_FLAG, [nft.flushChain(table, 'out'), ...nftEgressRules(table, host?.ifindex ?? 0)], `switch host capture on '${ifname}'`);
  } else if (egressLink > 0) {
    const prog = loadTcx(egressProgram(ifindex, host?.ifindex ?? 0), TCX_EGRESS_NAME, bpf.BPF_TCX_EGRESS);
    try {
      bpf.updateLink(egressLink, prog);
    } finally {
      native.closeFd(prog);
    }
  } else {
    tcMust(['filter', 'replace', 'dev', ifname, 'egress', 'pref', String(SPLIT_PREF + 1), 'handle', '1', 'bpf',
      ...captureFilter(host?.name ?? null)], `switch host capture on '${ifname}'`);
  }
}

/**
 * Starts capturing what the stack sends on `ifname` into a new host TAP, for a split of this
 * process installed without capture (possibly by another thread: the split is known by its
 * descriptors). Returns the TAP; it is the process's, closed with the split.
 */
export function startCaptureOfThisProcess(ifname: string, ifindex: number, cutWord: number, egressLink: number): TapDevice {
  const host = openHostTap(ifindex);
  try {
    switchCapture(ifname, ifindex, cutWord, egressLink, host);
  } catch (e) {
    host.close();
    throw e;
  }
  return host;
}

/**
 * Makes the host TX ring's way into the stack for a split of this process where it needs one of
 * its own (nft: the tcx turnaround link; tcx's egress link and tc's rule do it already). Returns
 * the new link's descriptor, or 0 when none was needed.
 */
export function hostTxTurnaroundOfThisProcess(ifindex: number, cutWord: number): number {
  if (cutWord <= 0 || (cutWord & NFT_CUT_FLAG) === 0) return 0;
  return attachTcx(ifindex, turnaroundProgram(ifindex), TCX_HOST_NAME, bpf.BPF_TCX_EGRESS);
}

/**
 * An installed split. Holds the ownership lock (takeInterfaceLock), the host TAP once capturing
 * (with tc always), with nft the owning socket (and the turnaround link once the host TX path is
 * asked for), with tcx the two links; `host` delivers the frames the stack sends.
 * Remove with remove().
 */
export class HostSplit {
  readonly ifname: string;
  readonly ifindex: number;
  /** Descriptor of the ownership lock (closed by remove()). */
  readonly lockFd: number;
  /** Which implementation this split uses. */
  readonly method: SplitMethod;
  /** nft: the owning socket; tcx: the ingress link (-1 without its cut: SplitOptions.ingressCut); tc: -1. */
  private cut: number;
  /** tcx: the egress link; nft: the host TX turnaround link (-1 until made); tc: -1. */
  private egress: number;
  private hostTap: TapDevice | null;
  private capturing: boolean;
  private removed = false;

  private constructor(ifname: string, ifindex: number, lockFd: number, host: TapDevice | null, capture: boolean, method: SplitMethod, cut: number, egress: number) {
    this.ifname = ifname;
    this.ifindex = ifindex;
    this.lockFd = lockFd;
    this.hostTap = host;
    this.capturing = capture;
    this.method = method;
    this.cut = cut;
    this.egress = egress;
  }

  /** The cut's registry word (NFT_CUT_FLAG | the nf_tables socket, or the tcx ingress link), -1 when none. */
  get cutWord(): number {
    return this.method === 'nft' ? this.cut | NFT_CUT_FLAG : this.cut;
  }

  /** tcx: the egress link; nft: the host TX turnaround link; -1 when none. */
  get egressLink(): number {
    return this.egress;
  }

  /**
   * Installs the ingress cut of a split made without it (SplitOptions.ingressCut false), for a
   * caller whose own cut did not happen. Nothing to do with tc (its rule is there) or when the
   * cut is in place.
   */
  addIngressCut(): void {
    if (this.removed) fail('ENXIO', `the split of '${this.ifname}' was removed`);
    if (this.method === 'nft') {
      if (this.ingressCutMade) return;
      nft.transact(this.cut, nftIngressChain(nftTableName(this.ifindex), this.ifname), `cut '${this.ifname}' off from its host stack (ingress)`);
      this.ingressCutMade = true;
      return;
    }
    if (this.method !== 'tcx' || this.cut > 0) return;
    this.cut = attachTcx(this.ifindex, ingressProgram(), TCX_INGRESS_NAME, bpf.BPF_TCX_INGRESS);
  }

  /** nft: whether the ingress chain was made. */
  private ingressCutMade = false;

  /** Makes the host TX ring's way into the stack where it needs its own (nft; idempotent). */
  addHostTxPath(): void {
    if (this.removed) fail('ENXIO', `the split of '${this.ifname}' was removed`);
    if (this.method === 'nft' && this.egress <= 0) this.egress = hostTxTurnaroundOfThisProcess(this.ifindex, this.cutWord);
  }

  /**
   * Cuts `ifname` off its host stack. ENXIO: no such interface; EBUSY: another live process holds
   * it; EPERM: not root; EINVAL: one of our own helper devices; EOPNOTSUPP: NETMAP_TS_SPLIT=nft
   * or tcx on a kernel without it. Without capture, no host TAP is made (nft, tcx: one device less
   * to create and destroy, each costs milliseconds of RCU waits). With nft the host TX ring's
   * turnaround is made by addHostTxPath().
   */
  static install(ifname: string, opts: SplitOptions = {}): HostSplit {
    checkInterfaceName(ifname);
    if (isHelperDevice(ifname)) fail('EINVAL', `'${ifname}' is a netmap-ts helper device and cannot be opened`);
    const info = interfaceInfo(ifname);
    let method = splitMethod(); // (EINVAL for a misspelt NETMAP_TS_SPLIT: before the lock is taken)
    let lock: number;
    try {
      lock = takeInterfaceLock(info.index);
    } catch (e) {
      if (e instanceof NetmapError && e.code === 'EBUSY') fail('EBUSY', `interface '${ifname}' is already in netmap mode, held by another process`);
      throw e;
    }
    let host: TapDevice | null = null;
    const made: number[] = [];
    const capture = opts.capture === true;
    const ingressCut = opts.ingressCut !== false;
    // A kernel without the method (or one refusing our programs): the next one, unless forced.
    const fallBack = (e: unknown): boolean => !(e instanceof NetmapError) || e.code !== 'EOPNOTSUPP' || process.env[SPLIT_ENV] === method;
    try {
      removeTcLeftovers(ifname, info.index); // of a crashed owner on the tc path
      if (capture) host = openHostTap(info.index);
      if (method === 'nft') {
        try {
          const fd = installNft(ifname, info.index, ingressCut, host?.ifindex ?? 0);
          nftWorks = true;
          const split = new HostSplit(ifname, info.index, lock, host, capture, 'nft', fd, -1);
          split.ingressCutMade = ingressCut;
          return split;
        } catch (e) {
          if (fallBack(e)) throw e;
          nftWorks = false;
          method = splitMethod();
        }
      }
      if (method === 'tcx') {
        try {
          const ingress = ingressCut ? attachTcx(info.index, ingressProgram(), TCX_INGRESS_NAME, bpf.BPF_TCX_INGRESS) : -1;
          if (ingress > 0) made.push(ingress);
          const egress = attachTcx(info.index, egressProgram(info.index, host?.ifindex ?? 0), TCX_EGRESS_NAME, bpf.BPF_TCX_EGRESS);
          made.push(egress);
          tcxWorks = true;
          return new HostSplit(ifname, info.index, lock, host, capture, 'tcx', ingress, egress);
        } catch (e) {
          if (fallBack(e)) throw e;
          for (const fd of made.splice(0)) native.closeFd(fd);
          tcxWorks = false;
          method = 'tc';
        }
      }
      host ??= openHostTap(info.index);
      installTcRules(ifname, host.name, capture);
      return new HostSplit(ifname, info.index, lock, host, capture, 'tc', -1, -1);
    } catch (e) {
      for (const fd of made) native.closeFd(fd);
      if (method === 'tc') try { removeRules(ifname); } catch { /* best effort */ }
      host?.close();
      native.closeFd(lock);
      throw e;
    }
  }

  get capture(): boolean {
    return this.capturing;
  }

  /** The host TAP: what the stack sends, while capturing. ENXIO when none was made yet. */
  get host(): TapDevice {
    if (this.hostTap === null) fail('ENXIO', `the split of '${this.ifname}' has no host TAP: it was installed without capture`);
    return this.hostTap;
  }

  /** Descriptor of the host TAP, -1 when there is none. */
  get hostFd(): number {
    return this.hostTap?.fd ?? -1;
  }

  /** Switches what the stack sends between the host TAP (true; made now if needed) and a drop (false). */
  setCapture(on: boolean): void {
    if (this.removed) fail('ENXIO', `the split of '${this.ifname}' was removed`);
    if (on === this.capturing) return;
    if (on && this.hostTap === null) this.hostTap = startCaptureOfThisProcess(this.ifname, this.ifindex, this.cutWord, this.egress);
    else switchCapture(this.ifname, this.ifindex, this.cutWord, this.egress, on ? this.hostTap : null);
    this.capturing = on;
  }

  /** Puts the interface back in the stack's hands (idempotent). */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    removeSplitOfThisProcess(this.ifname, this.lockFd, this.hostFd, this.cutWord, this.egress);
  }
}

/**
 * Removes the split of `ifname` that this process installed, possibly from another thread than
 * the installer's (descriptors belong to the process, not to the thread that opened them): its
 * nf_tables socket (the kernel deletes the table it owns) or tcx links (or, when there are none,
 * our tc rules), its host TAP, and `alsoClose` (the port's sockets, its XDP link), all closed at
 * once on native threads (closeConcurrently: the links' releases each wait for an RCU grace
 * period, together they wait about one), then the ownership lock.
 */
export function removeSplitOfThisProcess(ifname: string, lockFd: number, hostFd: number, cutWord = -1, egressLink = -1, alsoClose: readonly number[] = []): void {
  const fds = [...alsoClose];
  try {
    if (cutWord <= 0 && egressLink <= 0 && interfaceExists(ifname)) {
      native.closeConcurrently(fds.splice(0));
      removeRules(ifname);
    }
  } finally {
    try {
      native.closeConcurrently([...fds, cutWord > 0 ? cutWord & ~NFT_CUT_FLAG : -1, egressLink, hostFd]);
    } finally {
      if (lockFd > 0) native.closeFd(lockFd);
    }
  }
}

/**
 * Removes a split left by a dead owner on `ifname` (tc rules; nf_tables tables and tcx links
 * never outlive their owner). Returns true when leftovers were removed; false when there were none; EBUSY when a live
 * process holds the interface.
 */
export function removeStaleSplit(ifname: string): boolean {
  const info = interfaceInfo(ifname);
  if (interfaceLockHeld(info.index)) fail('EBUSY', `interface '${ifname}' is held by a live netmap-ts process`);
  return removeTcLeftovers(ifname, info.index);
}

/** Cleans every interface of this network namespace left split by a dead owner; returns their names. */
export function removeStaleSplits(): string[] {
  const cleaned: string[] = [];
  for (const { name } of links()) {
    if (isHelperDevice(name)) continue;
    try {
      if (removeStaleSplit(name)) cleaned.push(name);
    } catch { /* live owner or gone: leave it */ }
  }
  return cleaned;
}
