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
 */
import * as L from '../memory/layout.js';

export const BROADCAST = 254; // NM_BDG_BROADCAST
export const DROP = 255; // NM_BDG_NOPORT

export type LookupFn = (u8: Uint8Array, offset: number, len: number, srcPort: number) => number;

export interface LookupContext {
  /** The switch name, e.g. 'vale0'. */
  switchName: string;
  /** Port number on this switch of port `name` ('vale0:a' or a persistent port name), -1 if none. */
  portNumber(name: string): number;
}

export interface LookupModule {
  createLookup(config: string, ctx: LookupContext): LookupFn;
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

/*
 * The learning table in the switch entry (SW_HASH): 1024 entries of two words,
 *   word 0 = (port + 1) | hi << 16   (hi: MAC bytes 4..5 little-endian; port + 1 = 0: empty)
 *   word 1 = lo                      (MAC bytes 0..3 little-endian)
 * and per port the last source learnt (SW_LAST_SRC): word 0 = hi, word 1 = lo, all-ones at first.
 * netmap_vale_learning itself is inlined in the forwarding loop (forward.ts), reading the MACs
 * with aligned loads: every buffer starts on a 64-byte boundary.
 */
// ---- loaded pluggable lookups of this process ------------------------------------------------

interface Loaded { key: string; fn: LookupFn | null; error: string | null; promise: Promise<void> }
const loaded = new Map<string, Loaded>();

/**
 * The lookup for (module, config) in this process: the function once the module is loaded,
 * null while it loads (an import is started on first call), or null with `error` set if it failed.
 */
export function loadedLookup(module: string, config: string, ctx: LookupContext): Loaded {
  const key = `${module}\u0000${config}`;
  let l = loaded.get(key);
  if (l !== undefined) return l;
  const entry: Loaded = { key, fn: null, error: null, promise: Promise.resolve() };
  entry.promise = import(module).then(
    (m: Partial<LookupModule>) => {
      if (typeof m.createLookup !== 'function') { entry.error = `module ${module} does not export createLookup()`; return; }
      try {
        entry.fn = m.createLookup(config, ctx);
        if (typeof entry.fn !== 'function') { entry.fn = null; entry.error = `createLookup() of ${module} did not return a function`; }
      } catch (e) {
        entry.error = `createLookup() of ${module} failed: ${(e as Error).message}`;
      }
    },
    (e: unknown) => { entry.error = `cannot import lookup module ${module}: ${(e as Error).message}`; },
  );
  loaded.set(key, entry);
  l = entry;
  return l;
}
