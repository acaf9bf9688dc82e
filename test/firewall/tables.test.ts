/**
 * Tables: 100k IPv4 entries with prefixes of many lengths and 10k IPv6 prefixes, longest-prefix
 * match against a brute-force reference; number and iface tables; bad keys refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LookupTable, parseIp6, mask4 } from '../../src/firewall/tables.js';
import { formatIp6 } from '../../src/firewall/state.js';
import { rng } from '../helpers/prng.js';
import type { TableEntry } from '../../src/firewall/rule.js';

const fmt4 = (a: number) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;

test('100k IPv4 entries: longest-prefix match equals a brute-force reference', () => {
  const r = rng(11);
  const u32 = () => Math.floor(r() * 4294967296) >>> 0;
  const entries: TableEntry[] = [];
  const ref = new Map<string, number>(); // `${len}/${masked}` → value
  const lens = new Set<number>();
  for (let i = 0; i < 100_000; i++) {
    const len = i < 90_000 ? 32 : [0, 8, 12, 16, 20, 24, 28, 31][i % 8]!;
    if (len === 0 && lens.has(0)) continue;
    const a = (u32() & mask4(len)) >>> 0;
    const value = i + 1;
    entries.push({ key: `${fmt4(a)}/${len}`, value });
    ref.set(`${len}/${a}`, value); // a later duplicate replaces the earlier, as in the table
    lens.add(len);
  }
  const t = new LookupTable({ name: 'big', type: 'addr', entries });
  const sorted = [...lens].sort((x, y) => y - x);
  const expected = (a: number) => {
    for (const len of sorted) { const v = ref.get(`${len}/${(a & mask4(len)) >>> 0}`); if (v !== undefined) return v; }
    return -1;
  };
  let hits = 0;
  for (let i = 0; i < 50_000; i++) {
    // Half the queries are inserted /32s (and neighbours of inserted prefixes), half random.
    const e = entries[Math.floor(r() * entries.length)]!;
    const base = Number(e.key.split('/')[0]!.split('.').reduce((acc, x) => acc * 256 + Number(x), 0));
    const a = i % 2 === 0 ? (base + (i % 4 === 0 ? 0 : Math.floor(r() * 16))) >>> 0 : u32();
    const want = expected(a);
    assert.equal(t.lookup4(a), want, `lookup ${fmt4(a)}`);
    if (want >= 0) hits++;
  }
  assert.ok(hits > 20_000, `the queries hit entries (${hits})`);
  assert.equal(t.lookup4(0x0a000001), expected(0x0a000001));
});

test('10k IPv6 prefixes: longest-prefix match equals a brute-force reference', () => {
  const r = rng(12);
  const w = () => Math.floor(r() * 4294967296) >>> 0;
  const entries: TableEntry[] = [];
  const refs: Array<{ a: number[]; len: number; value: number }> = [];
  const lens = [128, 64, 48, 32, 127, 96, 56];
  for (let i = 0; i < 10_000; i++) {
    const len = lens[i % lens.length]!;
    const a = [0x20010db8, w() & 0xff, w(), w()].map((x, k) => (x & mask4(Math.max(0, Math.min(32, len - 32 * k)))) >>> 0);
    entries.push({ key: `${formatIp6(a)}/${len}`, value: i });
    refs.push({ a, len, value: i });
  }
  const t = new LookupTable({ name: 'v6', type: 'addr', entries });
  const expected = (q: Uint32Array) => {
    let best = -1, bestLen = -1;
    for (const e of refs) {
      let ok = true;
      for (let k = 0; k < 4 && ok; k++) { const m = mask4(Math.max(0, Math.min(32, e.len - 32 * k))); ok = ((q[k]! & m) >>> 0) === e.a[k]; }
      if (ok && (e.len > bestLen || (e.len === bestLen))) { if (e.len > bestLen) { best = e.value; bestLen = e.len; } else best = e.value; }
    }
    return best;
  };
  let hits = 0;
  for (let i = 0; i < 600; i++) {
    const e = refs[Math.floor(r() * refs.length)]!;
    const q = Uint32Array.from(e.a);
    if (i % 3 === 1) q[3] = w();
    if (i % 3 === 2) q[1] = w() & 0xff;
    const want = expected(q);
    assert.equal(t.lookup6(q), want, `lookup ${formatIp6(q)}`);
    if (want >= 0) hits++;
  }
  assert.ok(hits > 300);
  assert.deepEqual(parseIp6('::ffff:1.2.3.4'), [0, 0, 0xffff, 0x01020304]);
  assert.equal(parseIp6('1::2::3'), null);
  assert.equal(formatIp6(parseIp6('2001:db8:0:0:1:0:0:1')!), '2001:db8::1:0:0:1');
});

test('one IPv4 prefix length (one hash, no loop over lengths): 100k host addresses, the top keys, duplicates, values up to 2^32-1', () => {
  const r = rng(12);
  const ref = new Map<number, number>();
  const entries: TableEntry[] = [];
  const add = (a: number, value: number): void => { entries.push({ key: `${fmt4(a)}/32`, value }); ref.set(a, value); };
  for (let i = 0; i < 100_000; i++) add(Math.floor(r() * 4294967296) >>> 0, i);
  add(0xffffffff, 0xffffffff); add(0xfffffffe, 7); add(0, 9);
  add(0xfffffffe, 8); // a later duplicate replaces the earlier
  const t = new LookupTable({ name: 'hosts', type: 'addr', entries });
  for (const [a, v] of ref) assert.equal(t.lookup4(a), v, `lookup ${fmt4(a)}`);
  assert.equal(t.lookup4(0xfffffffe), 8);
  assert.equal(t.lookup4(0xfffffffd), ref.get(0xfffffffd) ?? -1, 'the key marking empty slots is not in the table');
  for (let i = 0; i < 50_000; i++) {
    const a = Math.floor(r() * 4294967296) >>> 0;
    assert.equal(t.lookup4(a), ref.get(a) ?? -1, `lookup ${fmt4(a)}`);
  }
  // a /24 table: the address is masked before the probe
  const net = new LookupTable({ name: 'nets', type: 'addr', entries: [{ key: '198.18.5.0/24', value: 5 }] });
  assert.equal(net.lookup4(0xc6120563), 5);
  assert.equal(net.lookup4(0xc6120663), -1);
  assert.equal(new LookupTable({ name: 'e', type: 'addr', entries: [] }).lookup4(0), -1);
});

test('number and iface tables; bad keys are refused with EINVAL', () => {
  const n = new LookupTable({ name: 'n', type: 'number', entries: [{ key: '80', value: 1 }, { key: '4294967295', value: 2 }] });
  assert.equal(n.lookupNumber(80), 1);
  assert.equal(n.lookupNumber(0xffffffff), 2);
  assert.equal(n.lookupNumber(81), -1);
  const i = new LookupTable({ name: 'i', type: 'iface', entries: [{ key: 'veth0', value: 3 }] });
  assert.equal(i.lookupName('veth0'), 3);
  assert.equal(i.lookupName('veth1'), -1);
  assert.throws(() => new LookupTable({ name: 'x', type: 'addr', entries: [{ key: '10.0.0.300', value: 0 }] }), (e: Error & { code?: string }) => e.code === 'EINVAL');
  assert.throws(() => new LookupTable({ name: 'x', type: 'addr', entries: [{ key: '10.0.0.0/33', value: 0 }] }), (e: Error & { code?: string }) => e.code === 'EINVAL');
  assert.throws(() => new LookupTable({ name: 'x', type: 'number', entries: [{ key: 'eighty', value: 0 }] }), (e: Error & { code?: string }) => e.code === 'EINVAL');
});
