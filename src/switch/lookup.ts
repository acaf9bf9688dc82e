/**
 * Switch lookup functions: netmap's learning bridge (the default) and the pluggable kind.
 *
 * A pluggable lookup is an ES module exporting
 *     export function createLookup(config: string, ctx: LookupContext): LookupFn
 * The switch records the module's specifier (an absolute file URL or a package name) and a
 * configuration string in shared memory (setLookup in control.ts); forwarding runs in every
 * sender's process, so each process imports the module itself the first time it forwards on that
 * switch (or when the application awaits loadLookup()). Until the module is loaded in a process,
 * frames that process sends on that switch are dropped and counted as drops.
 *
 * A LookupFn is called once per packet with the frame (after the virtio-net header, if any):
 *     (u8, offset, len, srcPort) => destination
 * u8 is the shared byte view, offset/len the first fragment; srcPort the sender's port number on
 * the switch. It returns a port number (0..MAX_SWITCH_PORTS-1), BROADCAST (flood to every
 * other port) or DROP. Returning the source port or an empty port number drops the frame.
 * It must not allocate or block: it runs in the sender's txsync.
 *
 * A module may export instead (or as well: the batch form is then used)
 *     export function createBatchLookup(config: string, ctx: LookupContext): BatchLookupFn
 * A BatchLookupFn is called once per forwarding batch (up to 1024 packets) with a LookupBatch
 * whose `dst` already holds the switch's own learning-bridge answer for every packet (learnt on
 * the switch's table as for the default lookup; DROP for a frame shorter than 14 bytes); it
 * leaves or overwrites each answer with a port number, BROADCAST or DROP. A filter (the firewall)
 * keeps the bridge's answers it passes and turns the others into DROP; a router overwrites all.
 * One call per batch instead of one per frame: per-batch work (version checks, clocks) is done
 * once, and the per-frame work runs in the module's own monomorphic loop.
 */
import * as L from '../memory/layout.js';
import { registry } from '../memory/registry.js';

export const BROADCAST = 254; // NM_BDG_BROADCAST
export const DROP = 255; // NM_BDG_NOPORT

export type LookupFn = (u8: Uint8Array, offset: number, len: number, srcPort: number) => number;

/** The packets of one forwarding batch, for a BatchLookupFn (one object per sender handle, reused). */
export class LookupBatch {
  /** The shared byte view of the address space (every port's buffers). */
  readonly u8: Uint8Array;
  /** Packets in this batch: entries [0, count) below are valid. */
  count = 0;
  /** The sender's port number on the switch. */
  srcPort = -1;
  /** Per packet: byte offset in u8 of the Ethernet header (after any virtio-net header) of its first fragment. */
  readonly off = new Float64Array(LOOKUP_BATCH);
  /** Per packet: bytes of its first fragment from `off`. */
  readonly len = new Int32Array(LOOKUP_BATCH);
  /** Per packet: in, the learning bridge's answer; out, the lookup's (port number, BROADCAST or DROP). */
  readonly dst = new Int32Array(LOOKUP_BATCH);
  constructor(u8: Uint8Array) { this.u8 = u8; }
}
/** Most packets a LookupBatch holds (the switch's batch). */
export const LOOKUP_BATCH = 1024;

export type BatchLookupFn = (batch: LookupBatch) => void;

export interface LookupContext {
  /** The switch name, e.g. 'vale0'. */
  switchName: string;
  /** Port number on this switch of port `name` ('vale0:a' or a persistent port name), -1 if none. */
  portNumber(name: string): number;
  /** Name of the port with number `port` on this switch ('vale0:a', or a persistent port's name), null if none. */
  portName(port: number): string | null;
  /** The switch's port generation: it moves whenever a port is attached or detached (one atomic load). */
  generation(): number;
  /**
   * netmap's learning bridge on this switch's own table, for lookups that filter rather than
   * route: learns the source MAC for `srcPort` and returns the destination port or BROADCAST.
   * The frame must be at least 14 bytes.
   */
  learningBridge: LookupFn;
}

export interface LookupModule {
  createLookup?(config: string, ctx: LookupContext): LookupFn;
  createBatchLookup?(config: string, ctx: LookupContext): BatchLookupFn;
}

/**
 * Bob Jenkins' mix over a MAC address, as netmap's nm_bridge_rthash (FreeBSD if_bridge):
 * a = b = 0x9e3779b9, c = 0; bytes 0..3 into a (byte 0 lowest), 4..5 into b; result c & 1023.
 * `lo` is bytes 0..3 read little-endian, `hi` bytes 4..5 read little-endian.
 */
export function macHash32(lo: number, hi: number): number {
  let a = (0x9e3779b9 + lo) | 0;
  let b = (0x9e3779b9 + hi) | 0;
  let c = 0;
  a = (a - b - c) ^ (c >>> 13);
  b = (b - c - a) ^ (a << 8);
  c = (c - a - b) ^ (b >>> 13);
  a = (a - b - c) ^ (c >>> 12);
  b = (b - c - a) ^ (a << 16);
  c = (c - a - b) ^ (b >>> 5);
  a = (a - b - c) ^ (c >>> 3);
  b = (b - c - a) ^ (a << 10);
  c = (c - a - b) ^ (b >>> 15);
  return c & (L.SW_HASH_ENTRIES - 1);
}

/** macHash32 of the 6 bytes at `at`. */
export function macHash(u8: Uint8Array, at: number): number {
  return macHash32((u8[at]! | (u8[at + 1]! << 8) | (u8[at + 2]! << 16) | (u8[at + 3]! << 24)) >>> 0, u8[at + 4]! | (u8[at + 5]! << 8));
}

/**
 * netmap_vale_learning on the table at byte offset `hashAt` of the registry views (as forward.ts
 * inlines it, without its caches): learns the source of the frame at `off` for `srcPort`, and
 * returns the port the destination was learnt on, or BROADCAST.
 */
export function learnAndLookup(i32: Int32Array, hashAt: number, u8: Uint8Array, off: number, srcPort: number): number {
  const hashW = hashAt >>> 2;
  const sLo = (u8[off + 6]! | (u8[off + 7]! << 8) | (u8[off + 8]! << 16) | (u8[off + 9]! << 24));
  const sHi = u8[off + 10]! | (u8[off + 11]! << 8);
  if ((u8[off + 6]! & 1) === 0) {
    const h = hashW + 2 * macHash32(sLo >>> 0, sHi);
    if (i32[h + 1] !== sLo || i32[h] !== ((srcPort + 1) | (sHi << 16))) {
      i32[h + 1] = sLo;
      i32[h] = (srcPort + 1) | (sHi << 16);
    }
  }
  if ((u8[off]! & 1) !== 0) return BROADCAST;
  const dLo = (u8[off] ! | (u8[off + 1]! << 8) | (u8[off + 2]! << 16) | (u8[off + 3]! << 24));
  const dHi = u8[off + 4]! | (u8[off + 5]! << 8);
  const h = hashW + 2 * macHash32(dLo >>> 0, dHi);
  const e0 = i32[h]!;
  return (e0 >>> 16) === dHi && i32[h + 1] === dLo && (e0 & 0xffff) !== 0 ? (e0 & 0xffff) - 1 : BROADCAST;
}

/*
 * The learning table in the switch entry (SW_HASH): 1024 entries of two words,
 *   word 0 = (port + 1) | hi << 16   (hi: MAC bytes 4..5 little-endian; port + 1 = 0: empty)
 *   word 1 = lo                      (MAC bytes 0..3 little-endian)
 * and per port the last source learnt (SW_LAST_SRC): word 0 = hi, word 1 = lo, all-ones at first.
 * netmap_vale_learning itself is inlined in the forwarding loop (forward.ts), reading the MACs
 * with aligned loads: every buffer starts on a 64-byte boundary.
 */
// ---- loaded pluggable lookups of this process ------------------------------------------------

/** A loaded lookup: `fn` (per frame) or `batch` once loaded (`batch` when the module has both). */
interface Loaded { key: string; fn: LookupFn | null; batch: BatchLookupFn | null; error: string | null; promise: Promise<void> }
const loaded = new Map<string, Loaded>();

/**
 * The lookup for (module, config) in this process: `fn` or `batch` once the module is loaded,
 * both null while it loads (an import is started on first call), or with `error` set if it failed.
 */
export function loadedLookup(module: string, config: string, ctx: LookupContext): Loaded {
  const key = `${module}\u0000${config}`;
  let l = loaded.get(key);
  if (l !== undefined) return l;
  const entry: Loaded = { key, fn: null, batch: null, error: null, promise: Promise.resolve() };
  entry.promise = import(module).then(
    (m: LookupModule) => {
      const batch = typeof m.createBatchLookup === 'function';
      const create = batch ? m.createBatchLookup : m.createLookup;
      const what = batch ? 'createBatchLookup()' : 'createLookup()';
      if (typeof create !== 'function') { entry.error = `module ${module} exports neither createLookup() nor createBatchLookup()`; return; }
      try {
        const f: unknown = create(config, ctx);
        if (typeof f !== 'function') entry.error = `${what} of ${module} did not return a function`;
        else if (batch) entry.batch = f as BatchLookupFn;
        else entry.fn = f as LookupFn;
      } catch (e) {
        entry.error = `${what} of ${module} failed: ${(e as Error).message}`;
      }
    },
    (e: unknown) => { entry.error = `cannot import lookup module ${module}: ${(e as Error).message}`; },
  );
  loaded.set(key, entry);
  l = entry;
  return l;
}

/** The LookupContext of switch `switchName` in this process. */
export function lookupContext(switchName: string): LookupContext {
  const reg = registry();
  let cachedIndex = -1;
  let checks = 0;
  // A switch with a plugged-in lookup stays (it is not destroyed with its last port), so its
  // index is stable while the lookup is in use: the name is re-checked only once per 4096 calls
  // (a string read per frame would cost more than the lookup itself).
  const switchIndex = (): number => {
    if (cachedIndex < 0 || ((++checks & 4095) === 0 && switchNameAt(reg.sp.u8, reg.base + reg.switchEntry(cachedIndex) + L.SW_NAME) !== switchName)) {
      cachedIndex = reg.locked(() => reg.findSwitch(switchName));
    }
    return cachedIndex;
  };
  return {
    switchName,
    portNumber(name: string): number {
      return reg.locked(() => {
        let idx = reg.findPort(name);
        if (idx < 0) idx = reg.findPort(`${switchName}:${name}`);
        if (idx < 0) return -1;
        const s = reg.findSwitch(switchName);
        if (s < 0 || reg.portGet(idx, L.PE_SWITCH) !== s + 1) return -1;
        return reg.portGet(idx, L.PE_SWITCH_PORT);
      });
    },
    portName(port: number): string | null {
      const s = switchIndex();
      if (s < 0 || port < 0 || port >= L.MAX_SWITCH_PORTS) return null;
      const plus = reg.sp.u32[reg.switchWord(s, L.SW_PORTS + 4 * port)]!;
      return plus === 0 ? null : reg.portName(plus - 1);
    },
    generation(): number {
      const s = switchIndex();
      return s < 0 ? -1 : Atomics.load(reg.sp.i32, reg.switchWord(s, L.SW_GENERATION));
    },
    learningBridge(u8: Uint8Array, off: number, _len: number, srcPort: number): number {
      const s = switchIndex();
      if (s < 0) return DROP;
      return learnAndLookup(reg.sp.i32, reg.base + reg.switchEntry(s) + L.SW_HASH, u8, off, srcPort);
    },
  };
}

function switchNameAt(u8: Uint8Array, at: number): string {
  let s = '';
  for (let i = 0; i < 16; i++) {
    const c = u8[at + i]!;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}
