/**
 * netmap's split between the wire and the host stack, made of tc rules on the interface.
 *
 * While a split is installed on IF:
 *  - frames from the wire no longer reach the stack: a tc ingress filter in direct-action mode
 *    drops every frame without our mark (classic BPF returning TC_ACT_SHOT: no action module,
 *    and cheaper per frame than a redirect). Packet sockets on IF still receive those frames
 *    (they see frames before tc ingress) — that is the NIC RX ring;
 *  - frames the stack sends no longer reach the wire: a tc egress filter redirects them to
 *    `nmh<ifindex>`, a TAP whose descriptor we read (the host RX ring) — or to `nmd<ifindex>`
 *    (dropped) while nobody wants them;
 *  - frames for the wire are sent with PACKET_QDISC_BYPASS, which skips tc egress (NIC TX ring);
 *  - frames for the stack (host TX ring) are sent on IF carrying skb mark SPLIT_MARK; an egress
 *    filter turns them around into IF's ingress, where the ingress filter lets marked frames
 *    through to the stack. Receivers of the NIC RX ring drop marked frames (dropMark option).
 *
 * Both TAPs are non-persistent: they vanish with the process that holds them. So `nmd<ifindex>`
 * existing means "a live owner holds IF" (EBUSY for anyone else), and filters of ours on an
 * interface without its `nmd` device are leftovers of a crash, removed by the next install or by
 * removeStaleSplits(). Our filters are recognised by their preferences (SPLIT_PREF, +1).
 */
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { NetmapError, fail } from '../errors.js';
import { interfaceInfo, interfaceExists, setInterfaceUp, checkInterfaceName } from './ifinfo.js';
import { TapDevice } from './tap.js';
import * as native from '../native/index.js';

/** skb mark of frames we hand to the host stack ('NMTS'). */
export const SPLIT_MARK = 0x4e4d5453;
/** tc filter preference of our rules ('NM'); the egress capture rule uses SPLIT_PREF + 1. */
export const SPLIT_PREF = 0x4e4d;
const TC_TIMEOUT_MS = 10_000;

// Classic BPF for cls_bpf: `ld mark` is ancillary load SKF_AD_OFF + SKF_AD_MARK (0xfffff014).
// Ingress, direct action: frames without our mark -> TC_ACT_SHOT (2), marked ones -> TC_ACT_UNSPEC
// (-1: on to the next filter, if any, and the stack).
const BPF_DROP_UNMARKED = `4,32 0 0 4294963220,21 1 0 ${SPLIT_MARK},6 0 0 2,6 0 0 4294967295`;
const BPF_MARK = `4,32 0 0 4294963220,21 0 1 ${SPLIT_MARK},6 0 0 4294967295,6 0 0 0`;
const BPF_ALL = '1,6 0 0 4294967295';

export function sinkDeviceName(ifindex: number): string {
  return `nmd${ifindex}`;
}
export function hostDeviceName(ifindex: number): string {
  return `nmh${ifindex}`;
}
/** Whether `name` is one of the helper devices made here (nmd<N>/nmh<N>). */
export function isHelperDevice(name: string): boolean {
  return /^nm[dh]\d+$/.test(name);
}

interface TcResult { status: number; out: string; err: string }

function tc(args: string[]): TcResult {
  const r = spawnSync('tc', args, { encoding: 'utf8', timeout: TC_TIMEOUT_MS, killSignal: 'SIGKILL' });
  if (r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    fail('EOPNOTSUPP', 'the tc command (iproute2) is needed to split an interface from its host stack');
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

function filtersOf(ifname: string, dir: 'ingress' | 'egress'): string {
  const r = tc(['filter', 'show', 'dev', ifname, dir]);
  return r.status === 0 ? r.out : '';
}

/** Whether rules of ours are on `ifname` (installed by a live owner or left by a crash). */
export function hasSplitRules(ifname: string): boolean {
  const pref = new RegExp(`pref (${SPLIT_PREF}|${SPLIT_PREF + 1}) `);
  return pref.test(filtersOf(ifname, 'ingress')) || pref.test(filtersOf(ifname, 'egress'));
}

/** Removes our tc rules from `ifname` (idempotent), and its clsact qdisc if no filter is left. */
function removeRules(ifname: string): void {
  tc(['filter', 'del', 'dev', ifname, 'ingress', 'pref', String(SPLIT_PREF)]);
  tc(['filter', 'del', 'dev', ifname, 'egress', 'pref', String(SPLIT_PREF)]);
  tc(['filter', 'del', 'dev', ifname, 'egress', 'pref', String(SPLIT_PREF + 1)]);
  if (hasClsact(ifname) && filtersOf(ifname, 'ingress').trim() === '' && filtersOf(ifname, 'egress').trim() === '') {
    tc(['qdisc', 'del', 'dev', ifname, 'clsact']);
  }
}

function disableIpv6(dev: string): void {
  try {
    fs.writeFileSync(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1');
  } catch { /* no IPv6 in this kernel or namespace: nothing would be sent anyway */ }
}

export interface SplitOptions {
  /** Redirect what the stack sends to the host TAP for reading (true) or drop it (false, default). */
  capture?: boolean;
}

/**
 * An installed split. Holds the two helper TAPs; `host` delivers the frames the stack sends (when
 * capturing). Remove with remove(); a crash leaves rules that the next install cleans.
 */
export class HostSplit {
  readonly ifname: string;
  readonly ifindex: number;
  readonly sink: TapDevice;
  readonly host: TapDevice;
  private capturing: boolean;
  private removed = false;

  private constructor(ifname: string, ifindex: number, sink: TapDevice, host: TapDevice, capture: boolean) {
    this.ifname = ifname;
    this.ifindex = ifindex;
    this.sink = sink;
    this.host = host;
    this.capturing = capture;
  }

  /**
   * Cuts `ifname` off its host stack. ENXIO: no such interface; EBUSY: another live process holds
   * it; EPERM: not root; EINVAL: one of our own helper devices.
   */
  static install(ifname: string, opts: SplitOptions = {}): HostSplit {
    checkInterfaceName(ifname);
    if (isHelperDevice(ifname)) fail('EINVAL', `'${ifname}' is a netmap-ts helper device and cannot be opened`);
    const info = interfaceInfo(ifname);
    let sink: TapDevice;
    try {
      // The exclusive, non-persistent sink device is the ownership lock.
      sink = TapDevice.open(sinkDeviceName(info.index), { exclusive: true, up: false });
    } catch (e) {
      if (e instanceof NetmapError && e.code === 'EBUSY') fail('EBUSY', `interface '${ifname}' is already in netmap mode, held by another process`);
      throw e;
    }
    let host: TapDevice | null = null;
    try {
      removeRules(ifname); // leftovers of a crashed owner
      const hostName = hostDeviceName(info.index);
      host = TapDevice.open(hostName, { up: false });
      disableIpv6(hostName);
      disableIpv6(sink.name);
      setInterfaceUp(hostName, true);
      const capture = opts.capture === true;
      if (!hasClsact(ifname)) tcMust(['qdisc', 'add', 'dev', ifname, 'clsact'], `add a clsact qdisc to '${ifname}'`);
      tcMust(['filter', 'add', 'dev', ifname, 'ingress', 'pref', String(SPLIT_PREF), 'bpf', 'da', 'bytecode', BPF_DROP_UNMARKED], `cut '${ifname}' off from its host stack (ingress)`);
      tcMust(['filter', 'add', 'dev', ifname, 'egress', 'pref', String(SPLIT_PREF), 'bpf', 'bytecode', BPF_MARK,
        'action', 'mirred', 'ingress', 'redirect', 'dev', ifname], `route host-ring frames into the stack of '${ifname}'`);
      tcMust(['filter', 'add', 'dev', ifname, 'egress', 'pref', String(SPLIT_PREF + 1), 'handle', '1', 'bpf', 'bytecode', BPF_ALL,
        'action', 'mirred', 'egress', 'redirect', 'dev', capture ? hostName : sink.name], `cut '${ifname}' off from its host stack (egress)`);
      return new HostSplit(ifname, info.index, sink, host, capture);
    } catch (e) {
      try { removeRules(ifname); } catch { /* best effort */ }
      host?.close();
      sink.close();
      throw e;
    }
  }

  get capture(): boolean {
    return this.capturing;
  }

  /** Switches what the stack sends between the host TAP (true) and the drop sink (false). */
  setCapture(on: boolean): void {
    if (this.removed) fail('ENXIO', `the split of '${this.ifname}' was removed`);
    if (on === this.capturing) return;
    tcMust(['filter', 'replace', 'dev', this.ifname, 'egress', 'pref', String(SPLIT_PREF + 1), 'handle', '1', 'bpf', 'bytecode', BPF_ALL,
      'action', 'mirred', 'egress', 'redirect', 'dev', on ? this.host.name : this.sink.name], `switch host capture on '${this.ifname}'`);
    this.capturing = on;
  }

  /** Puts the interface back in the stack's hands (idempotent). */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    try {
      if (interfaceExists(this.ifname)) removeRules(this.ifname);
    } finally {
      this.host.close();
      this.sink.close();
    }
  }
}

/**
 * Removes the split on `ifname` that another thread of this process installed and left in place
 * for the threads still using the interface: our rules, then its two TAP descriptors (by number:
 * descriptors belong to the process, not to the thread that opened them).
 */
export function removeSplitOfThisProcess(ifname: string, sinkFd: number, hostFd: number): void {
  try {
    if (interfaceExists(ifname)) removeRules(ifname);
  } finally {
    if (hostFd > 0) native.closeFd(hostFd);
    if (sinkFd > 0) native.closeFd(sinkFd);
  }
}

/**
 * Removes a split left by a dead owner on `ifname`. Returns true when leftovers were removed; false
 * when there were none; EBUSY when a live process holds the interface.
 */
export function removeStaleSplit(ifname: string): boolean {
  const info = interfaceInfo(ifname);
  if (interfaceExists(sinkDeviceName(info.index))) fail('EBUSY', `interface '${ifname}' is held by a live netmap-ts process`);
  if (!hasSplitRules(ifname)) return false;
  removeRules(ifname);
  return true;
}

/** Cleans every interface of this network namespace left split by a dead owner; returns their names. */
export function removeStaleSplits(): string[] {
  const r = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8', timeout: TC_TIMEOUT_MS, killSignal: 'SIGKILL' });
  const cleaned: string[] = [];
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)[@:]/.exec(line);
    if (m === null || isHelperDevice(m[1]!)) continue;
    try {
      if (removeStaleSplit(m[1]!)) cleaned.push(m[1]!);
    } catch { /* live owner or gone: leave it */ }
  }
  return cleaned;
}
