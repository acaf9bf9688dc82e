/**
 * Monitor ports (netmap_monitor.c): `PORT/r`, `PORT/t`, `PORT/rt` copy what an open port
 * receives and/or sends into the monitor's own RX rings; `PORT/z` is the zero-copy monitor.
 * See README.md in this folder for the semantics.
 *
 * A monitor is a port entry of kind PORT_KIND_MONITOR, one per open (named
 * `<parent>/<flags>#<n>`), with PE_PARENT naming the watched port and PE_MON_* saying what it
 * watches. The watched port's PE_MONITORS counts its monitors; the data path of that port
 * (tap.ts) does nothing else while it is 0.
 */
import { fail } from '../errors.js';
import type { Registry } from '../memory/registry.js';
import { registry } from '../memory/registry.js';
import * as L from '../memory/layout.js';
import * as sync from '../rings/sync.js';
import { selfTid, ownerAlive } from '../memory/lock.js';
import type { Ring } from '../rings/ring.js';
import type { OpenOptions, Port, PortAdapter, PortType } from '../ports/port.js';
import { parsePortSpec, formatPortSpec, type PortSpec } from '../ports/name.js';
import { currentNetnsId } from '../interfaces/ifinfo.js';

/** Monitors of one port at once. */
export const MAX_MONITORS_PER_PORT = 8;
/** Largest monitor ring (slots); the default is the watched port's ring size, at most 4096. */
export const MAX_MONITOR_SLOTS = 16384;
const DEFAULT_MAX_SLOTS = 4096;

const W_HWCUR = L.KR_HWCUR >>> 2, W_SHADOW = L.KR_SHADOW_TAIL >>> 2, W_HWTAIL = L.KR_HWTAIL >>> 2;

/** The port a monitor name watches (never created by the monitor), or a NetmapError. */
function findParent(reg: Registry, spec: PortSpec): number {
  let index = reg.findPort(spec.name);
  if (index < 0 && spec.subsystem === 'vale' && spec.pipe === null) {
    // a persistent port attached to that switch is registered under its own name
    const named = reg.findPort(spec.portName);
    const sw = spec.switchName === null ? -1 : reg.findSwitch(spec.switchName);
    if (named >= 0 && sw >= 0 && reg.portGet(named, L.PE_SWITCH) === sw + 1) index = named;
  }
  if (index < 0) fail('EINVAL', `${spec.spec}: no port ${spec.name} is open: a monitor watches a port that is in netmap mode`);
  const kind = reg.portGet(index, L.PE_KIND);
  if (kind === L.PORT_KIND_MONITOR) fail('EINVAL', `${spec.spec}: ${spec.name} is a monitor; monitors cannot be monitored`);
  if (kind === L.PORT_KIND_PARENT) fail('EOPNOTSUPP', `${spec.spec}: ${spec.name} is only the memory of its pipes and carries no traffic; monitor a pipe end instead`);
  if (kind === L.PORT_KIND_INTERFACE && reg.portGet(index, L.PE_IF_NETNS) !== 0 && reg.portGet(index, L.PE_IF_NETNS) !== (currentNetnsId() >>> 0)) {
    fail('EINVAL', `${spec.spec}: interface ${spec.name} in netmap mode here belongs to another network namespace`);
  }
  if (kind === L.PORT_KIND_INTERFACE && reg.portGet(index, L.PE_USERS) === 0) {
    fail('EINVAL', `${spec.spec}: interface ${spec.name} is not in netmap mode (nobody has it open)`);
  }
  return index;
}

/** The monitor's own ring range [first, end) for the name's ring selection. */
function ringRange(spec: PortSpec, nic: number, host: number): [number, number] {
  switch (spec.mode) {
    case 'ALL_NIC': return [0, nic];
    case 'NIC_SW':
    case 'SW':
      if (host === 0) fail('EINVAL', `${spec.spec}: ${spec.name} has no host rings`);
      return spec.mode === 'SW' ? [nic, nic + host] : [0, nic + host];
    case 'ONE_NIC':
      if (spec.ringId >= nic) fail('EINVAL', `${spec.spec}: ring ${spec.ringId} out of range (${spec.name} has ${nic} rings per direction at most)`);
      return [spec.ringId, spec.ringId + 1];
    case 'ONE_SW':
      if (spec.ringId >= host) fail('EINVAL', `${spec.spec}: host ring ${spec.ringId} out of range (${spec.name} has ${host})`);
      return [nic + spec.ringId, nic + spec.ringId + 1];
  }
}

function resolveMonitor(reg: Registry, spec: PortSpec, opts: OpenOptions): number {
  if (spec.txRingsOnly) fail('EINVAL', `${spec.spec}: a monitor has RX rings only, /T does not apply`);
  const c = spec.conf;
  if (c.txRings !== undefined || c.rxRings !== undefined || c.hostTxRings !== undefined || c.hostRxRings !== undefined ||
      c.backend !== undefined || c.vnetHdr !== undefined) {
    fail('EINVAL', `${spec.spec}: a monitor's rings follow the watched port; only slots= and extra-bufs= apply`);
  }
  const parent = findParent(reg, spec);
  const zcopy = spec.zcopyMonitor;
  let flags = (spec.monitorTx ? L.MON_FLAG_TX : 0) | (spec.monitorRx ? L.MON_FLAG_RX : 0);
  if (zcopy) flags = (flags === 0 ? L.MON_FLAG_TX | L.MON_FLAG_RX : flags) | L.MON_FLAG_ZCOPY;
  const parentName = reg.portName(parent);
  if (zcopy && (reg.portGet(parent, L.PE_FLAGS) & L.PORT_FLAG_ATTACHED) !== 0) {
    fail('EOPNOTSUPP', `${spec.spec}: ${parentName} is an attached interface's switch port: its frames bypass its rings, so only a copy monitor (/r, /t, /rt) can see them`);
  }
  if (reg.portGet(parent, L.PE_MONITORS) >= MAX_MONITORS_PER_PORT) fail('EBUSY', `${spec.spec}: ${parentName} already has ${MAX_MONITORS_PER_PORT} monitors`);
  if (zcopy) {
    for (let m = 0; m < L.MAX_PORTS; m++) {
      if (reg.portLive(m) && reg.portGet(m, L.PE_KIND) === L.PORT_KIND_MONITOR && reg.portGet(m, L.PE_PARENT) === parent + 1 &&
          (reg.portGet(m, L.PE_MON_FLAGS) & L.MON_FLAG_ZCOPY) !== 0) {
        fail('EBUSY', `${spec.spec}: ${parentName} already has a zero-copy monitor (one at a time; copy monitors have no limit but ${MAX_MONITORS_PER_PORT})`);
      }
    }
  }
  const ntx = reg.portGet(parent, L.PE_NUM_TX), nrx = reg.portGet(parent, L.PE_NUM_RX);
  const nic = Math.max(ntx, nrx), host = Math.max(reg.portGet(parent, L.PE_NUM_HOST_TX), reg.portGet(parent, L.PE_NUM_HOST_RX));
  const range = ringRange(spec, nic, host);
  const wanted = c.rxSlots ?? c.txSlots;
  const slots = wanted ?? Math.min(DEFAULT_MAX_SLOTS, Math.max(reg.portGet(parent, L.PE_TX_SLOTS), reg.portGet(parent, L.PE_RX_SLOTS)));
  if (slots < 2 || slots > MAX_MONITOR_SLOTS) fail('EINVAL', `${spec.spec}: a monitor ring has 2 to ${MAX_MONITOR_SLOTS} slots, not ${slots}`);
  const letters = (zcopy ? 'z' : '') + ((flags & L.MON_FLAG_RX) !== 0 ? 'r' : '') + ((flags & L.MON_FLAG_TX) !== 0 ? 't' : '');
  let name = '';
  for (let n = 0; n < 4 * L.MAX_PORTS; n++) {
    const candidate = `${parentName}/${letters}#${n}`;
    if (reg.findPort(candidate) < 0) { name = candidate; break; }
  }
  if (name.length === 0 || name.length >= L.PE_NAME_MAX) fail('EINVAL', `${spec.spec}: the name ${parentName} is too long to name a monitor of it`);
  let memId: number;
  if (zcopy) memId = reg.portGet(parent, L.PE_MEM_ID);
  else {
    const rings = nic + host;
    const ringPages = Math.ceil(L.ringBytes(slots) / L.PAGE_SIZE);
    memId = reg.createRegion({
      numBufs: 2 + rings * slots + Math.min(opts.extraBuffers ?? c.extraBufs ?? 0, 1 << 20) + 64,
      numPages: rings * ringPages + L.MAX_HANDLES + 16,
      bufSize: L.DEFAULT_BUF_SIZE,
    });
  }
  let index: number;
  try {
    index = reg.createPort({
      name, kind: L.PORT_KIND_MONITOR, memId, flags: 0,
      numTx: 0, numRx: nic, numHostTx: 0, numHostRx: host, txSlots: slots, rxSlots: slots,
    });
  } catch (e) {
    // (a copy monitor's region has no port: the next collectGarbage sweeps it)
    if (zcopy && e instanceof Error && (e as { code?: string }).code === 'ENOMEM') {
      fail('ENOMEM', `${spec.spec}: the memory of ${parentName} has no room for a zero-copy monitor's ${(nic + host) * slots} buffers (try @conf:slots=N with a smaller N)`);
    }
    throw e;
  }
  reg.portSet(index, L.PE_PARENT, parent + 1);
  reg.portSet(index, L.PE_MON_FLAGS, flags);
  reg.portSet(index, L.PE_MON_RANGE, range[0] | (range[1] << 16));
  reg.portSet(index, L.PE_MON_PARENT_GEN, reg.portGet(parent, L.PE_GENERATION));
  reg.portSet(parent, L.PE_MONITORS, reg.portGet(parent, L.PE_MONITORS) + 1);
  Atomics.store(reg.sp.u32, reg.portWord(parent, L.PE_MON_GEN), reg.nextToken()); // unique: a reused entry never matches a stale view
  return index;
}

/** Takes a monitor off its parent (before its rings go): writers see it gone on their next batch. */
function detachMonitor(reg: Registry, index: number): void {
  const parent = reg.portGet(index, L.PE_PARENT) - 1;
  if (parent >= 0 && reg.portLive(parent) && reg.portGet(parent, L.PE_GENERATION) === reg.portGet(index, L.PE_MON_PARENT_GEN)) {
    reg.portSet(parent, L.PE_MONITORS, Math.max(0, reg.portGet(parent, L.PE_MONITORS) - 1));
    Atomics.store(reg.sp.u32, reg.portWord(parent, L.PE_MON_GEN), reg.nextToken()); // unique: a reused entry never matches a stale view
  }
  reg.portSet(index, L.PE_PARENT, 0);
  // Wait out a writer in the middle of a batch, then close the rings to writers for good (-1):
  // one that read the old list just before the generation moved drops its batch.
  const i32 = reg.sp.i32;
  const me = selfTid();
  const n = reg.totalRings(index);
  for (let k = 0; k < n; k++) {
    const w = (reg.ringOffset(index, k) + L.KR_MON_LOCK) >>> 2;
    for (let spins = 0; ; spins++) {
      const owner = Atomics.compareExchange(i32, w, 0, me);
      if (owner === 0 || owner === me || owner === -1) break;
      if (spins > 100000 && !ownerAlive(owner)) break;
      if (spins > 10_000_000) break; // a live writer never holds it this long: give up waiting
    }
    Atomics.store(i32, w, -1);
  }
}

/** A monitor's handle: RX rings fed by the watched port's data path; no TX rings. */
class MonitorAdapter implements PortAdapter {
  private readonly u32: Uint32Array;
  private readonly parentStateWord: number;
  private readonly parentGenWord: number;
  private readonly parentGen: number;
  private readonly parentWord: number;

  constructor(private readonly port: Port) {
    const reg = registry();
    this.u32 = port.mem.u32;
    const parent = reg.portGet(port.index, L.PE_PARENT) - 1;
    if (parent < 0) fail('ENXIO', `${port.spec}: the monitored port is gone`);
    this.parentWord = reg.portWord(port.index, L.PE_PARENT);
    this.parentStateWord = reg.portWord(parent, L.PE_STATE);
    this.parentGenWord = reg.portWord(parent, L.PE_GENERATION);
    this.parentGen = reg.portGet(port.index, L.PE_MON_PARENT_GEN);
  }

  /** Monitors cannot inject (netmap: txsync fails with EIO). They have no TX rings anyway. */
  txsync(_ring: Ring): boolean {
    return false;
  }

  rxsync(ring: Ring): boolean {
    const head = sync.rxPrologue(ring);
    const u32 = this.u32, w = ring.offset >>> 2, n = ring.numSlots;
    if (head >= 0 && head !== u32[w + W_HWCUR]) Atomics.store(u32, w + W_HWCUR, head);
    let tail = Atomics.load(u32, w + W_SHADOW);
    if (tail >= n) tail = u32[w + W_HWCUR]!;
    const before = u32[w + W_HWTAIL]!;
    sync.setTail(ring, tail);
    sync.stampRx(ring, tail !== before);
    // netmap: EIO once the watched port left netmap mode (what was copied is still delivered)
    const parentThere = u32[this.parentWord] !== 0 && u32[this.parentStateWord] === L.PORT_STATE_LIVE && u32[this.parentGenWord] === this.parentGen;
    return head >= 0 && (parentThere || tail !== before);
  }
}

/** Monitor ports: resolved from the /t /r /z flags of any name, before its port type. */
export const monitorPortType: PortType = {
  name: 'monitor', kind: L.PORT_KIND_MONITOR, family: 'monitor', resolve: resolveMonitor,
  monitors: 'none',
  adapter: (port) => new MonitorAdapter(port),
  lastUser: (reg, index) => reg.destroyPort(index),
  destroy: detachMonitor,
};

/**
 * For tools that "capture on a port" (netmap dump): the monitor name that watches `name` in
 * `direction` (tcpdump -Q: in = `/r`, out = `/t`, inout = `/rt`) when `name` is a port somebody
 * has open (or an attached interface's switch port); null when it is not (then opening `name`
 * itself is the way to see its traffic), or when `name` already is a monitor name.
 */
export function monitorNameFor(name: string, direction: 'in' | 'out' | 'inout' = 'inout', opts: OpenOptions = {}): string | null {
  const spec = parsePortSpec(name, { strictNames: opts.relaxedNames !== true });
  if (spec.zcopyMonitor || spec.monitorRx || spec.monitorTx) return null;
  const reg = registry();
  reg.collectGarbage();
  const inUse = reg.locked(() => {
    let index: number;
    try { index = findParent(reg, spec); } catch { return false; }
    return reg.portGet(index, L.PE_USERS) > 0;
  });
  if (!inUse) return null;
  return formatPortSpec({ ...spec, monitorRx: direction !== 'out', monitorTx: direction !== 'in' });
}

/**
 * A copy monitor's name (`PORT/r`, `/t`, `/rt`, with no slots= of its own) given slots= so that
 * its rings hold about `bytes` of 2048-byte buffers in all (tcpdump's -B, libpcap's buffer
 * size): bytes / (2048 x the monitor's rings), 2 to MAX_MONITOR_SLOTS. A capture tool needs
 * the room: the monitored port never waits, so whatever arrives while the capturing process
 * waits for a CPU (milliseconds on a busy machine, tens of thousands of frames at 10 Mpps)
 * must fit in the ring. Any other name (no monitor, `/z`, slots= given, a port not open) is
 * returned as it is.
 */
export function monitorWithBuffer(name: string, bytes: number, opts: OpenOptions = {}): string {
  const spec = parsePortSpec(name, { strictNames: opts.relaxedNames !== true });
  if (!(spec.monitorRx || spec.monitorTx) || spec.zcopyMonitor || spec.conf.rxSlots !== undefined || spec.conf.txSlots !== undefined) return name;
  if (!Number.isFinite(bytes) || bytes <= 0) return name;
  const reg = registry();
  const rings = reg.locked(() => {
    let index: number;
    try { index = findParent(reg, spec); } catch { return 0; }
    return Math.max(reg.portGet(index, L.PE_NUM_TX), reg.portGet(index, L.PE_NUM_RX)) +
      Math.max(reg.portGet(index, L.PE_NUM_HOST_TX), reg.portGet(index, L.PE_NUM_HOST_RX));
  });
  if (rings === 0) return name;
  const slots = Math.max(2, Math.min(MAX_MONITOR_SLOTS, Math.floor(bytes / (L.DEFAULT_BUF_SIZE * rings))));
  return formatPortSpec({ ...spec, conf: { ...spec.conf, rxSlots: slots, txSlots: slots } });
}
