/**
 * Lookup tables (ipfw's named tables) built from TableConfig, immutable once built: a new ruleset
 * version builds new ones. Three kinds:
 * - addr: IPv4 and IPv6 prefixes with a value; a lookup returns the value of the longest
 *   matching prefix. One open-addressing hash per prefix length present (typed arrays, linear
 *   probing, load ≤ 1/2), probed from the longest length down: a table of 100k /32 entries costs
 *   one hash probe per lookup.
 * - number: 32-bit unsigned keys (`lookup dst-port T`...), one hash.
 * - iface: interface names (`via table(T)`); looked up by name, which the evaluator caches per
 *   interface id so the data path never compares strings.
 * Values are unsigned 32-bit numbers (0 when an entry has none). A lookup returns the value, or
 * -1 when nothing matches.
 */
import { fail } from '../errors.js';
import type { TableConfig, TableType } from './rule.js';

/** Parses dotted-quad IPv4 to an unsigned number, or -1. */
export function parseIp4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let v = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return -1;
    const n = Number(part);
    if (n > 255) return -1;
    v = v * 256 + n;
  }
  return v;
}

/** Parses an IPv6 address into 4 unsigned words (most significant first), or null. */
export function parseIp6(text: string): [number, number, number, number] | null {
  let body = text;
  const lastColon = text.lastIndexOf(':');
  if (lastColon < 0) return null;
  if (text.includes('.', lastColon)) { // embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups
    const v4 = parseIp4(text.slice(lastColon + 1));
    if (v4 < 0) return null;
    body = text.slice(0, lastColon + 1) + (v4 >>> 16).toString(16) + ':' + (v4 & 0xffff).toString(16);
  }
  const halves = body.split('::');
  if (halves.length > 2) return null;
  const groups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const a = groups(halves[0]!);
  const b = halves.length === 2 ? groups(halves[1]!) : [];
  if (a === null || b === null) return null;
  let all: number[];
  if (halves.length === 2) {
    const zeros = 8 - a.length - b.length;
    if (zeros < 1) return null;
    all = [...a, ...new Array<number>(zeros).fill(0), ...b];
  } else {
    all = a;
  }
  if (all.length !== 8) return null;
  return [0, 1, 2, 3].map((i) => ((all[2 * i]! << 16) | all[2 * i + 1]!) >>> 0) as [number, number, number, number];
}

/** The 32-bit mask of the top `len` bits. */
export function mask4(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

function hash32(key: number, salt: number): number {
  let h = Math.imul(key ^ salt, 0x9e3779b1);
  h ^= h >>> 15;
  return Math.imul(h, 0x85ebca6b);
}

function capacityFor(count: number): number {
  let cap = 8;
  while (cap < count * 2) cap <<= 1;
  return cap;
}

/**
 * Open-addressing hash of 32-bit keys to values, built once. A slot is 2 words [key, value] in
 * one Uint32Array, so a probe touches one cache line and a 100k-entry table is 2 MB (half what
 * a used flag per slot took: fewer cache misses when lookups spread over the table). An empty
 * slot holds `empty`, a key chosen at build time that is not in the table (a lookup of that key
 * itself answers -1 at once). Linear probing, load ≤ 1/2.
 */
class Hash32 {
  readonly slots: Uint32Array;
  readonly shift: number;
  readonly maskIdx: number;
  readonly salt: number;
  readonly empty: number;
  readonly count: number;
  constructor(entries: Array<[number, number]>, salt: number) {
    const cap = capacityFor(entries.length);
    this.slots = new Uint32Array(cap * 2);
    this.shift = 32 - Math.log2(cap);
    this.maskIdx = cap - 1;
    this.salt = salt;
    const keys = new Set(entries.map(([k]) => k >>> 0));
    let empty = 0xffffffff;
    while (keys.has(empty)) empty--;
    this.empty = empty;
    this.count = keys.size;
    const slots = this.slots;
    for (let i = 0; i < cap; i++) slots[2 * i] = empty;
    for (const [key, value] of entries) {
      let i = hash32(key, salt) >>> this.shift;
      for (;;) {
        const b = i << 1;
        if (slots[b] === empty || slots[b] === key) { slots[b] = key; slots[b + 1] = value; break; }
        i = (i + 1) & this.maskIdx;
      }
    }
  }
  get(key: number): number {
    const slots = this.slots, empty = this.empty;
    if (key === empty) return -1;
    let i = hash32(key, this.salt) >>> this.shift;
    for (;;) {
      const b = i << 1;
      const k = slots[b]!;
      if (k === key) return slots[b + 1]!;
      if (k === empty) return -1;
      i = (i + 1) & this.maskIdx;
    }
  }
}

/** Open-addressing hash of 128-bit keys (IPv6 prefixes of one length). */
class Hash128 {
  readonly keys: Uint32Array;
  readonly vals: Float64Array;
  readonly used: Uint8Array;
  readonly bits: number;
  readonly maskIdx: number;
  constructor(expected: number) {
    const cap = capacityFor(expected);
    this.keys = new Uint32Array(cap * 4);
    this.vals = new Float64Array(cap);
    this.used = new Uint8Array(cap);
    this.bits = Math.log2(cap);
    this.maskIdx = cap - 1;
  }
  private slot(a: number, b: number, c: number, d: number): number {
    return hash32(a ^ hash32(b ^ hash32(c ^ hash32(d, 7), 5), 3), 1) >>> (32 - this.bits);
  }
  set(w: ArrayLike<number>, value: number): void {
    let i = this.slot(w[0]!, w[1]!, w[2]!, w[3]!);
    for (;;) {
      const k = i * 4;
      if (this.used[i] === 0) {
        this.used[i] = 1; this.keys[k] = w[0]!; this.keys[k + 1] = w[1]!; this.keys[k + 2] = w[2]!; this.keys[k + 3] = w[3]!;
        this.vals[i] = value; return;
      }
      if (this.keys[k] === w[0] && this.keys[k + 1] === w[1] && this.keys[k + 2] === w[2] && this.keys[k + 3] === w[3]) { this.vals[i] = value; return; }
      i = (i + 1) & this.maskIdx;
    }
  }
  get(a: number, b: number, c: number, d: number): number {
    const keys = this.keys;
    let i = this.slot(a, b, c, d);
    for (;;) {
      if (this.used[i] === 0) return -1;
      const k = i * 4;
      if (keys[k] === a && keys[k + 1] === b && keys[k + 2] === c && keys[k + 3] === d) return this.vals[i]!;
      i = (i + 1) & this.maskIdx;
    }
  }
}

export class LookupTable {
  readonly name: string;
  readonly type: TableType;
  /** IPv4 prefix lengths present, longest first, with their hashes and masks. */
  private readonly v4Lens: Int32Array;
  private readonly v4Masks: Uint32Array;
  private readonly v4Hashes: Hash32[];
  private readonly v6Lens: Int32Array;
  private readonly v6Hashes: Hash128[];
  /** The 4-word mask of each IPv6 length, in v6Lens order. */
  private readonly v6Masks: Uint32Array;
  private readonly numbers: Hash32;
  /** The one hash an IPv4 lookup probes (see the constructor), null: probe every length. */
  private readonly one4: Hash32 | null;
  private readonly one4Mask: number;
  private readonly names: Map<string, number>;
  readonly size: number;

  constructor(config: TableConfig) {
    this.name = config.name;
    this.type = config.type;
    const v4: Map<number, Array<[number, number]>> = new Map();
    const v6: Map<number, Array<[number[], number]>> = new Map();
    const nums: Array<[number, number]> = [];
    this.names = new Map();
    for (const { key, value } of config.entries) {
      const val = value >>> 0;
      if (config.type === 'number') {
        if (!/^\d+$/.test(key) || Number(key) > 0xffffffff) fail('EINVAL', `table ${config.name}: bad number key "${key}"`);
        nums.push([Number(key), val]);
      } else if (config.type === 'iface') {
        this.names.set(key, val);
      } else {
        const slash = key.indexOf('/');
        const addr = slash < 0 ? key : key.slice(0, slash);
        const lenText = slash < 0 ? null : key.slice(slash + 1);
        if (addr.includes(':')) {
          const w = parseIp6(addr);
          const len = lenText === null ? 128 : Number(lenText);
          if (w === null || !Number.isInteger(len) || len < 0 || len > 128) fail('EINVAL', `table ${config.name}: bad IPv6 key "${key}"`);
          const m = mask6(len);
          const list = v6.get(len) ?? [];
          list.push([w.map((x, i) => (x & m[i]!) >>> 0), val]);
          v6.set(len, list);
        } else {
          const a = parseIp4(addr);
          const len = lenText === null ? 32 : Number(lenText);
          if (a < 0 || !Number.isInteger(len) || len < 0 || len > 32) fail('EINVAL', `table ${config.name}: bad IPv4 key "${key}"`);
          const list = v4.get(len) ?? [];
          list.push([(a & mask4(len)) >>> 0, val]);
          v4.set(len, list);
        }
      }
    }
    const lens4 = [...v4.keys()].sort((a, b) => b - a);
    this.v4Lens = Int32Array.from(lens4);
    this.v4Masks = Uint32Array.from(lens4.map(mask4));
    this.v4Hashes = lens4.map((len) => new Hash32(v4.get(len)!, len));
    const lens6 = [...v6.keys()].sort((a, b) => b - a);
    this.v6Lens = Int32Array.from(lens6);
    this.v6Masks = Uint32Array.from(lens6.flatMap((len) => mask6(len)));
    this.v6Hashes = lens6.map((len) => {
      const list = v6.get(len)!;
      const h = new Hash128(list.length);
      for (const [k, v] of list) h.set(k, v);
      return h;
    });
    this.numbers = new Hash32(nums, 0x5bd1e995);
    this.size = config.entries.length;
    // a number table, or an addr table of one IPv4 prefix length (the commonest: host
    // addresses), is one hash: looked up without the loop over lengths
    if (config.type === 'number') { this.one4 = this.numbers; this.one4Mask = 0xffffffff; }
    else if (lens4.length === 1) { this.one4 = this.v4Hashes[0]!; this.one4Mask = this.v4Masks[0]!; }
    else { this.one4 = null; this.one4Mask = 0; }
  }

  /** Longest-prefix match of an IPv4 address (addr tables) or exact key (number tables); value or -1. */
  lookup4(addr: number): number {
    const one = this.one4;
    if (one !== null) return one.get((addr & this.one4Mask) >>> 0);
    const lens = this.v4Lens, masks = this.v4Masks, hashes = this.v4Hashes;
    for (let i = 0; i < lens.length; i++) {
      const v = hashes[i]!.get((addr & masks[i]!) >>> 0);
      if (v >= 0) return v;
    }
    return -1;
  }

  /** Longest-prefix match of an IPv6 address given as 4 words; value or -1. */
  lookup6(w: Uint32Array): number {
    const lens = this.v6Lens, hashes = this.v6Hashes, m = this.v6Masks;
    for (let i = 0, k = 0; i < lens.length; i++, k += 4) {
      const v = hashes[i]!.get((w[0]! & m[k]!) >>> 0, (w[1]! & m[k + 1]!) >>> 0, (w[2]! & m[k + 2]!) >>> 0, (w[3]! & m[k + 3]!) >>> 0);
      if (v >= 0) return v;
    }
    return -1;
  }

  /** Exact number key (number tables; addr tables look the number up as an IPv4 address, as old ipfw did). */
  lookupNumber(key: number): number {
    return this.lookup4(key >>> 0);
  }

  /** Interface name (iface tables); value or -1. */
  lookupName(name: string): number {
    const v = this.names.get(name);
    return v === undefined ? -1 : v;
  }
}

/** The 4-word mask of the top `len` bits of an IPv6 address. */
export function mask6(len: number): [number, number, number, number] {
  const out: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(32, len - 32 * i));
    out[i] = mask4(bits);
  }
  return out;
}

/** All tables of a configuration, by name. */
export function buildTables(configs: TableConfig[]): Map<string, LookupTable> {
  const out = new Map<string, LookupTable>();
  for (const c of configs) out.set(c.name, new LookupTable(c));
  return out;
}
