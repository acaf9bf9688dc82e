/**
 * VALE control: switches and their ports (ephemeral and persistent), attach/detach, listing,
 * counters, pluggable lookups, and the hooks that plug VALE into openPort.
 */
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { fail, NetmapError } from '../errors.js';
import { registry, writeLatin1, Registry } from '../memory/registry.js';
import * as L from '../memory/layout.js';
import { portTypeOfFamily, requestedVnetHdr, type OpenOptions, type PortType, type SwitchAttachRequest } from '../ports/port.js';
import type { PortSpec } from '../ports/name.js';
import { LEASE_TABLE_BYTES, LeaseOps, initLeases } from './lease.js';
import { ValeAdapter, readString } from './forward.js';
import { resetLearningTable, forgetLastSource, forgetPortEntries } from './learning.js';
import { loadedLookup, lookupContext, type LookupContext } from './lookup.js';
import { SWITCH_RE, splitValeName, checkPortName, locate } from './listing.js';

// Names, listing and counters need only the registry: they live in listing.ts, which vale-ctl's
// listing commands load alone (a faster start).
export {
  splitValeName, locate, switchPorts, listAll, switches, portCounters, persistentPorts,
  type PortCounters, type SwitchPortInfo,
} from './listing.js';

export const VALE_MAX_RINGS = 16;
export const VALE_DEFAULT_RINGS = 1;
export const VALE_MAX_SLOTS = 4096;
export const VALE_MIN_SLOTS = 2;
export const VALE_DEFAULT_SLOTS = 1024;
export const VALE_MAX_EXTRA_BUFS = 524288;
/** Ports per switch: every port number 0..253 is usable (254 and 255 are BROADCAST and DROP). */
export const VALE_MAX_PORTS = L.MAX_SWITCH_PORTS;
export const VALE_MAX_SWITCHES = L.MAX_SWITCHES;
/** Pipes a VALE port's memory has room for (netmap lets pipes hang on VALE ports). */
export const VALE_PIPE_ROOM = 2;

/** SW_FLAGS bit: keep the switch when its last port leaves (set while a lookup is plugged in). */
const SW_FLAG_KEEP = 1;

export interface ValeGeometry {
  txRings: number; rxRings: number; txSlots: number; rxSlots: number; extraBufs: number;
  /** virtio-net header length of every frame on the port: 0 (default), 10 or 12. */
  vnetHdr?: number;
}

function checkGeometry(what: string, g: ValeGeometry): void {
  for (const [k, v, lo, hi] of [
    ['tx rings', g.txRings, 1, VALE_MAX_RINGS], ['rx rings', g.rxRings, 1, VALE_MAX_RINGS],
    ['tx slots', g.txSlots, VALE_MIN_SLOTS, VALE_MAX_SLOTS], ['rx slots', g.rxSlots, VALE_MIN_SLOTS, VALE_MAX_SLOTS],
    ['extra buffers', g.extraBufs, 0, VALE_MAX_EXTRA_BUFS],
  ] as const) {
    if (!Number.isInteger(v) || v < lo || v > hi) fail('EINVAL', `${what}: ${k} ${v} out of range [${lo}, ${hi}]`);
  }
  const h = g.vnetHdr ?? 0;
  if (h !== 0 && h !== 10 && h !== 12) fail('EINVAL', `${what}: a virtio-net header is 0, 10 or 12 bytes, not ${String(h)}`);
}

function geometryOf(spec: PortSpec, opts: OpenOptions): ValeGeometry {
  const c = spec.conf;
  const g = {
    txRings: c.txRings ?? VALE_DEFAULT_RINGS, rxRings: c.rxRings ?? VALE_DEFAULT_RINGS,
    txSlots: c.txSlots ?? VALE_DEFAULT_SLOTS, rxSlots: c.rxSlots ?? VALE_DEFAULT_SLOTS,
    extraBufs: opts.extraBuffers ?? c.extraBufs ?? 0,
    vnetHdr: requestedVnetHdr(spec, opts) ?? 0,
  };
  checkGeometry(spec.spec, g);
  return g;
}

/**
 * Creates a VALE port entry with its own region (rings, extra buffers, room for pipes), or, when
 * `inMemId` names a live region (netmap's `@N`), with its rings and buffers in that region: the
 * attach daemon puts an interface's switch port in the interface's memory, so the bridge between
 * them swaps buffers instead of copying.
 */
function createValePort(reg: Registry, name: string, g: ValeGeometry, flags: number, inMemId = 0): number {
  let memId = inMemId;
  if (memId === 0) {
    const ringPages = (slots: number): number => Math.ceil(L.ringBytes(slots) / L.PAGE_SIZE);
    const ringBufs = g.txRings * g.txSlots + g.rxRings * g.rxSlots;
    const pagesPerSet = g.txRings * ringPages(g.txSlots) + g.rxRings * ringPages(g.rxSlots);
    const numBufs = 2 + ringBufs * (1 + VALE_PIPE_ROOM) + g.extraBufs + 64;
    const numPages = pagesPerSet * (1 + 2 * VALE_PIPE_ROOM) + g.rxRings + (1 + 2 * VALE_PIPE_ROOM) * (L.MAX_HANDLES + 1) + 16;
    memId = reg.createRegion({ numBufs, numPages, bufSize: L.DEFAULT_BUF_SIZE });
  } else if (!reg.regionLive(memId)) {
    fail('ENXIO', `${name}: no memory region ${memId}`);
  }
  let index: number;
  try {
    index = reg.createPort({
      name, kind: L.PORT_KIND_VALE, memId, flags,
      numTx: g.txRings, numRx: g.rxRings, numHostTx: 0, numHostRx: 0, txSlots: g.txSlots, rxSlots: g.rxSlots,
    });
  } catch (e) {
    // a region made for this port has no port yet: take it down by hand
    if (inMemId === 0) dropEmptyRegion(reg, memId);
    throw e;
  }
  const region = reg.region(memId);
  // netmap's PORT_HDR_SET: a port with a header takes frames up to its buffer size
  const hdr = g.vnetHdr ?? 0;
  reg.portSet(index, L.PE_HDR_LEN, hdr);
  if (hdr !== 0) reg.portSet(index, L.PE_MFS, region.bufSize);
  const u32 = reg.sp.u32;
  for (let r = 0; r < g.rxRings; r++) {
    const ring = reg.ringOffset(index, g.txRings + r);
    initLeases(u32, ring, region.allocObject(LEASE_TABLE_BYTES));
  }
  return index;
}

function dropEmptyRegion(reg: Registry, memId: number): void {
  // A region is destroyed when its port count drops to zero; a region that never had a port is
  // removed the same way by a create/destroy-free path: create a throwaway reference.
  try {
    const idx = reg.createPort({ name: `\u0001tmp${memId}`, kind: L.PORT_KIND_PARENT, memId, flags: 0, numTx: 0, numRx: 0, numHostTx: 0, numHostRx: 0, txSlots: 2, rxSlots: 2 });
    reg.destroyPort(idx);
  } catch { /* leave it: collected with the registry */ }
}

/** Rings of a persistent port go back to a clean state when its last user leaves. */
function resetRings(reg: Registry, index: number): void {
  reg.region(reg.portGet(index, L.PE_MEM_ID)); // mapped in this thread
  const u32 = reg.sp.u32;
  const leases = new LeaseOps(reg.sp);
  const numTx = reg.portGet(index, L.PE_NUM_TX), numRx = reg.portGet(index, L.PE_NUM_RX);
  for (let k = 0; k < numTx + numRx; k++) {
    const ring = reg.ringOffset(index, k);
    const ringWord = ring >>> 2;
    const n = u32[ringWord + L.RING_NUM_SLOTS / 4]!;
    if (k < numTx) {
      const h = u32[ringWord + L.KR_HWCUR / 4]! % n;
      const t = h === 0 ? n - 1 : h - 1;
      u32[ringWord + L.RING_HEAD / 4] = h; u32[ringWord + L.RING_CUR / 4] = h; u32[ringWord + L.RING_TAIL / 4] = t;
      u32[ringWord + L.KR_RHEAD / 4] = h; u32[ringWord + L.KR_RCUR / 4] = h; u32[ringWord + L.KR_RTAIL / 4] = t; u32[ringWord + L.KR_HWTAIL / 4] = t;
    } else {
      // drop what was received and not read: everything up to the published tail is released
      leases.lock(ring);
      const t = Atomics.load(u32, ringWord + L.KR_SHADOW_TAIL / 4) % n;
      for (const f of [L.RING_HEAD, L.RING_CUR, L.RING_TAIL, L.KR_RHEAD, L.KR_RCUR, L.KR_RTAIL, L.KR_HWTAIL]) u32[ringWord + f / 4] = t;
      Atomics.store(u32, ringWord + L.KR_HWCUR / 4, t);
      leases.unlock(ring);
    }
  }
}

// ---- resolver, adapter, lifecycle --------------------------------------------------------------

function resolveVale(reg: Registry, spec: PortSpec, opts: OpenOptions): number {
  const switchName = spec.switchName!;
  if (!SWITCH_RE.test(switchName)) fail('EINVAL', `${spec.spec}: invalid switch name '${switchName}'`);
  if (spec.mode !== 'ALL_NIC' && spec.mode !== 'ONE_NIC') fail('EINVAL', `${spec.spec}: VALE ports have no host rings`);
  const existing = reg.findPort(spec.parentName);
  if (existing >= 0) {
    if (reg.portGet(existing, L.PE_KIND) !== L.PORT_KIND_VALE) fail('EINVAL', `${spec.spec}: ${spec.parentName} is not a VALE port`);
    return existing;
  }
  const named = reg.findPort(spec.portName);
  if (named >= 0) {
    const kind = reg.portGet(named, L.PE_KIND);
    const switchIndex = reg.findSwitch(switchName);
    if (kind === L.PORT_KIND_VALE && (reg.portGet(named, L.PE_FLAGS) & L.PORT_FLAG_PERSISTENT) !== 0) {
      if (switchIndex >= 0 && reg.portGet(named, L.PE_SWITCH) === switchIndex + 1) return named;
      fail('ENXIO', `${spec.spec}: persistent port ${spec.portName} is not attached to ${switchName} (vale-ctl -a ${switchName}:${spec.portName})`);
    }
    if ((reg.portGet(named, L.PE_FLAGS) & L.PORT_FLAG_ATTACHED) !== 0) fail('EBUSY', `${spec.spec}: ${spec.portName} is attached to a switch and owned by it`);
    // the attach daemon makes the switch port of the interface it holds
    if (opts.owner !== true) fail('EINVAL', `${spec.spec}: ${spec.portName} is an interface: attach it with vale-ctl -a, it cannot be opened as a VALE port`);
  }
  const g = geometryOf(spec, opts);
  const switchIndex = ensureSwitch(reg, switchName);
  try {
    if (reg.sp.u32[reg.switchWord(switchIndex, L.SW_NUM_PORTS)]! >= VALE_MAX_PORTS) fail('ENOMEM', `${spec.spec}: switch ${switchName} is full (${VALE_MAX_PORTS} ports)`);
    // AUTODELETE: if pipes hang on it when its last handle closes, it goes with the last pipe
    const index = createValePort(reg, spec.parentName, g, L.PORT_FLAG_AUTODELETE, spec.memId);
    try {
      attachToSwitch(reg, switchIndex, index);
    } catch (e) {
      reg.destroyPort(index);
      throw e;
    }
    return index;
  } catch (e) {
    dropIdleSwitch(reg, switchIndex);
    throw e;
  }
}

/** Finds or creates switch `name`, a new one with an empty learning table. Lock held. */
function ensureSwitch(reg: Registry, name: string): number {
  const existing = reg.findSwitch(name);
  if (existing >= 0) return existing;
  const created = reg.ensureSwitch(name);
  resetLearningTable(reg, created);
  return created;
}

/** Puts port `index` on switch `switchIndex` with nothing learnt from its port number. Lock held. */
function attachToSwitch(reg: Registry, switchIndex: number, index: number): number {
  const switchPort = reg.switchAttach(switchIndex, index);
  forgetLastSource(reg, switchIndex, switchPort);
  return switchPort;
}

/** Takes port `index` off its switch, and what the switch learnt on it. Lock held. */
function detachFromSwitch(reg: Registry, index: number): void {
  const switchPlusOne = reg.portGet(index, L.PE_SWITCH);
  if (switchPlusOne === 0) return;
  const switchPort = reg.portGet(index, L.PE_SWITCH_PORT);
  const holdsPortNumber = reg.sp.u32[reg.switchWord(switchPlusOne - 1, L.SW_PORTS + 4 * switchPort)] === index + 1;
  reg.switchDetach(index);
  if (holdsPortNumber) forgetPortEntries(reg, switchPlusOne - 1, switchPort);
}

function dropIdleSwitch(reg: Registry, switchIndex: number): void {
  const u32 = reg.sp.u32;
  if (u32[reg.switchWord(switchIndex, L.SW_STATE)] === L.SWITCH_STATE_LIVE && u32[reg.switchWord(switchIndex, L.SW_NUM_PORTS)] === 0 && (u32[reg.switchWord(switchIndex, L.SW_FLAGS)]! & SW_FLAG_KEEP) === 0) {
    Atomics.store(reg.sp.i32, reg.switchWord(switchIndex, L.SW_STATE), L.SWITCH_STATE_FREE);
  }
}

/** Ephemeral ports go with their last user; persistent ones get fresh rings for the next. */
function valeLastUser(reg: Registry, index: number): void {
  const flags = reg.portGet(index, L.PE_FLAGS);
  if ((flags & L.PORT_FLAG_PERSISTENT) !== 0) { resetRings(reg, index); return; }
  if (reg.portGet(index, L.PE_PIPES) > 0) return; // pipes still hang on it
  reg.destroyPort(index);
}

/** Off the switch, and the receive rings' lease tables back to the region. */
function valeDestroy(reg: Registry, index: number): void {
  detachFromSwitch(reg, index);
  const memId = reg.portGet(index, L.PE_MEM_ID);
  if (!reg.regionLive(memId)) return;
  const region = reg.region(memId);
  const numTx = reg.portGet(index, L.PE_NUM_TX), numRx = reg.portGet(index, L.PE_NUM_RX);
  for (let r = 0; r < numRx; r++) {
    const ring = reg.ringOffset(index, numTx + r);
    const table = reg.sp.u32[(ring + L.KR_LEASE_TABLE) >>> 2]!;
    if (table !== 0) region.freeObject(table);
  }
}

/** VALE ports (`valeX:PORT`). */
export const valePortType: PortType = {
  name: 'vale', kind: L.PORT_KIND_VALE, family: 'vale', resolve: resolveVale,
  monitors: 'self', // the forwarder feeds copy monitors (forward.ts)
  adapter: (port) => new ValeAdapter(port),
  lastUser: valeLastUser, destroy: valeDestroy,
};

// ---- persistent ports ------------------------------------------------------------------------

/** vale-ctl -n: a persistent VALE port `name` with its own memory, not attached yet. */
export function createPersistentPort(name: string, geometry: Partial<ValeGeometry> = {}): void {
  checkPortName(name, name);
  if (name.startsWith('vale')) fail('EINVAL', `invalid port name '${name}': names starting with 'vale' are switch names`);
  const g: ValeGeometry = {
    txRings: geometry.txRings ?? VALE_DEFAULT_RINGS, rxRings: geometry.rxRings ?? VALE_DEFAULT_RINGS,
    txSlots: geometry.txSlots ?? VALE_DEFAULT_SLOTS, rxSlots: geometry.rxSlots ?? VALE_DEFAULT_SLOTS,
    extraBufs: geometry.extraBufs ?? 0, vnetHdr: geometry.vnetHdr ?? 0,
  };
  checkGeometry(name, g);
  const reg = registry();
  reg.collectGarbage();
  reg.locked(() => {
    if (reg.findPort(name) >= 0) fail('EEXIST', `port ${name} already exists`);
    if (fs.existsSync(`/sys/class/net/${name}`)) fail('EEXIST', `an interface named ${name} already exists`);
    createValePort(reg, name, g, L.PORT_FLAG_PERSISTENT);
  });
}

/** vale-ctl -r: removes persistent port `name` (EBUSY while attached or open). */
export function removePersistentPort(name: string): void {
  if (typeof name !== 'string' || name === '') fail('EINVAL', 'missing port name');
  const reg = registry();
  reg.collectGarbage();
  reg.locked(() => {
    const index = reg.findPort(name);
    if (index < 0) fail('ENXIO', `no such interface ${name}`);
    if (reg.portGet(index, L.PE_KIND) !== L.PORT_KIND_VALE || (reg.portGet(index, L.PE_FLAGS) & L.PORT_FLAG_PERSISTENT) === 0) {
      fail('EINVAL', `${name} is not a persistent VALE port`);
    }
    if (reg.portGet(index, L.PE_SWITCH) !== 0) fail('EBUSY', `${name} is attached to a switch`);
    if (reg.portGet(index, L.PE_USERS) !== 0) fail('EBUSY', `${name} is open`);
    if (reg.portGet(index, L.PE_PIPES) !== 0) fail('EBUSY', `${name} has pipes`);
    reg.destroyPort(index);
  });
}

// ---- attach / detach ------------------------------------------------------------------------

/** What -a/-h/-d ask of the port type behind a name that is no VALE port (an interface). */
export type InterfaceAttachRequest = SwitchAttachRequest;

/** The interface port type's switchAttach, or ENXIO when the build has none. */
function interfaceAttach(portName: string): (req: SwitchAttachRequest) => void {
  const attachment = portTypeOfFamily('interface')?.switchAttach;
  if (attachment === undefined) fail('ENXIO', `no such interface ${portName}`);
  return attachment;
}

/**
 * vale-ctl -a / -h: attaches persistent port (or, through the interfaces layer, an interface)
 * `valeX:NAME` to switch X, creating the switch. Returns the port number on the switch.
 */
export function attach(name: string, options: { host?: boolean } = {}): number {
  const { switchName, portName } = splitValeName(name);
  const reg = registry();
  reg.collectGarbage();
  const result = reg.locked(() => {
    const index = reg.findPort(portName);
    if (index >= 0 && reg.portGet(index, L.PE_KIND) === L.PORT_KIND_VALE && (reg.portGet(index, L.PE_FLAGS) & L.PORT_FLAG_PERSISTENT) !== 0) {
      if (options.host === true) fail('EINVAL', `${portName} is a VALE port: it has no host stack to attach`);
      if (reg.portGet(index, L.PE_SWITCH) !== 0) fail('EBUSY', `${portName} is already attached to ${reg.switchName(reg.portGet(index, L.PE_SWITCH) - 1)}`);
      if (reg.portGet(index, L.PE_USERS) !== 0) fail('EBUSY', `${portName} is open`);
      const switchIndex = ensureSwitch(reg, switchName);
      try {
        if (reg.sp.u32[reg.switchWord(switchIndex, L.SW_NUM_PORTS)]! >= VALE_MAX_PORTS) fail('ENOMEM', `switch ${switchName} is full (${VALE_MAX_PORTS} ports)`);
        return attachToSwitch(reg, switchIndex, index);
      } catch (e) {
        dropIdleSwitch(reg, switchIndex);
        throw e;
      }
    }
    if (reg.findPort(name) >= 0) fail('EBUSY', `${name} is an ephemeral port, attached to ${switchName} already`);
    return -1;
  });
  if (result >= 0) return result;
  interfaceAttach(portName)({ op: 'attach', switchName, ifName: portName, host: options.host === true });
  return portNumber(name);
}

/** vale-ctl -d: detaches `valeX:NAME` from switch X. */
export function detach(name: string): void {
  const { switchName, portName } = splitValeName(name);
  const reg = registry();
  reg.collectGarbage();
  const done = reg.locked(() => {
    const switchIndex = reg.findSwitch(switchName);
    const index = reg.findPort(portName);
    if (index >= 0 && reg.portGet(index, L.PE_KIND) === L.PORT_KIND_VALE && (reg.portGet(index, L.PE_FLAGS) & L.PORT_FLAG_PERSISTENT) !== 0) {
      if (switchIndex < 0 || reg.portGet(index, L.PE_SWITCH) !== switchIndex + 1) fail('ENXIO', `${portName} is not attached to ${switchName}`);
      if (reg.portGet(index, L.PE_USERS) !== 0) fail('EBUSY', `${portName} is open`);
      detachFromSwitch(reg, index);
      resetRings(reg, index);
      return true;
    }
    const eph = reg.findPort(name);
    if (eph >= 0 && (reg.portGet(eph, L.PE_FLAGS) & L.PORT_FLAG_ATTACHED) === 0) fail('EINVAL', `${name} is an ephemeral port: it goes away when closed`);
    return false;
  });
  if (done) return;
  interfaceAttach(portName)({ op: 'detach', switchName, ifName: portName, host: false });
}

function portNumber(name: string): number {
  return locate(name).port;
}

// ---- pluggable lookup -------------------------------------------------------------------------

/**
 * Replaces the lookup of switch `switchName` by the createLookup() export of ES module
 * `module` (a path, a file URL or a package name), configured with `config`; null restores the
 * learning bridge. The module is imported here first (errors are reported now); every process
 * forwarding on the switch imports it too. The learning table is cleared. While a lookup is
 * plugged in the switch stays when its last port leaves.
 */
export async function setLookup(switchName: string, module: string | null, config = ''): Promise<void> {
  if (!SWITCH_RE.test(switchName)) fail('EINVAL', `invalid switch name '${switchName}'`);
  let spec = '';
  if (module !== null) {
    spec = module.startsWith('.') || module.startsWith('/') ? pathToFileURL(path.resolve(module)).href : module;
    if (spec.length >= L.SW_LOOKUP_MODULE_MAX) fail('EINVAL', `lookup module specifier too long (max ${L.SW_LOOKUP_MODULE_MAX - 1} bytes)`);
    if (config.length >= L.SW_LOOKUP_CONFIG_MAX || /[^\x20-\x7e\n\t]/.test(config)) fail('EINVAL', `lookup config must be printable ASCII, at most ${L.SW_LOOKUP_CONFIG_MAX - 1} bytes`);
    const l = loadedLookup(spec, config, contextFor(switchName));
    await l.promise;
    if (l.error !== null) fail('EINVAL', l.error);
  }
  const reg = registry();
  reg.locked(() => {
    const switchIndex = reg.findSwitch(switchName);
    // a switch lives while a port is open on it or attached to it: say how to have one
    if (switchIndex < 0) fail('ENXIO', `no switch ${switchName} (a switch exists while one of its ports is open or attached: keep one with 'netmap vale-ctl -n P' and 'netmap vale-ctl -a ${switchName}:P')`);
    const base = reg.base + reg.switchEntry(switchIndex);
    const u8 = reg.sp.u8, u32 = reg.sp.u32;
    u8.fill(0, base + L.SW_LOOKUP_MODULE, base + L.SW_LOOKUP_MODULE + L.SW_LOOKUP_MODULE_MAX + L.SW_LOOKUP_CONFIG_MAX);
    writeLatin1(u8, base + L.SW_LOOKUP_MODULE, spec, L.SW_LOOKUP_MODULE_MAX - 1);
    writeLatin1(u8, base + L.SW_LOOKUP_CONFIG, module === null ? '' : config, L.SW_LOOKUP_CONFIG_MAX - 1);
    resetLearningTable(reg, switchIndex);
    const flags = u32[reg.switchWord(switchIndex, L.SW_FLAGS)]!;
    u32[reg.switchWord(switchIndex, L.SW_FLAGS)] = module === null ? flags & ~SW_FLAG_KEEP : flags | SW_FLAG_KEEP;
    Atomics.add(reg.sp.i32, reg.switchWord(switchIndex, L.SW_LOOKUP_GEN), 1);
    if (module === null) dropIdleSwitch(reg, switchIndex);
  });
}

/** The lookup module and config of a switch ('' for the learning bridge). */
export function getLookup(switchName: string): { module: string; config: string } {
  const reg = registry();
  return reg.locked(() => {
    const switchIndex = reg.findSwitch(switchName);
    if (switchIndex < 0) fail('ENXIO', `no switch ${switchName}`);
    const base = reg.base + reg.switchEntry(switchIndex);
    return { module: readString(reg.sp.u8, base + L.SW_LOOKUP_MODULE, L.SW_LOOKUP_MODULE_MAX), config: readString(reg.sp.u8, base + L.SW_LOOKUP_CONFIG, L.SW_LOOKUP_CONFIG_MAX) };
  });
}

/**
 * Imports the lookup module of `switchName` in this process (if it has one), so that forwarding
 * does not drop frames while it loads. Call before sending on a switch with a plugged lookup.
 */
export async function loadLookup(switchName: string): Promise<void> {
  const { module, config } = getLookup(switchName);
  if (module === '') return;
  const l = loadedLookup(module, config, contextFor(switchName));
  await l.promise;
  if (l.error !== null) fail('EINVAL', l.error);
}

/**
 * For a program about to send on port `portName`: when it is a VALE port of a switch with a
 * plugged-in lookup, imports the lookup in this thread first. A sender that loops without
 * returning to the event loop would otherwise never finish the import, and every frame it sends
 * would be dropped while the import is pending. Anything else (no switch yet, not a VALE name)
 * is left to openPort.
 */
export async function prepareLookup(portName: string): Promise<void> {
  const colon = portName.indexOf(':');
  if (!portName.startsWith('vale') || colon < 0) return;
  const switchName = portName.slice(0, colon);
  if (!SWITCH_RE.test(switchName)) return;
  try {
    await loadLookup(switchName);
  } catch (e) {
    if (e instanceof NetmapError && e.code === 'ENXIO') return;
    throw e;
  }
}

function contextFor(switchName: string): LookupContext {
  return lookupContext(switchName);
}
