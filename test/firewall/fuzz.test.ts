/**
 * Fuzz: random rulesets (every command kind, not, or-blocks, skipto/call/return, states, tables,
 * tags, prob, disabled sets) × random frames (valid frames mutated, truncated, garbage).
 * The compiled and the interpreted evaluator, each on its own shared state with the same seed,
 * must give the same verdict, arg and deciding rule for every packet, the same bytes after
 * (setdscp), the same counters and states at the end; nothing may throw. Seeded, bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng } from '../helpers/prng.js';
import type { Cmd, CmdBody, Rule, Action, TableConfig, Range } from '../../src/firewall/rule.js';
import { c, rule, config, build, ip4, ip6, eth, makeShared, Names } from './fw-helpers.js';
import { prepare } from '../../src/firewall/runtime.js';

const SEED = Number(process.env.FW_FUZZ_SEED ?? 20261202);
const RULESETS = Number(process.env.FW_FUZZ_RULESETS ?? 1200);
const FRAMES = 150;
let basicRulesets = 0;
let lengthRulesets = 0;
let batchChecks = 0;

const ADDRS4 = ['198.18.0.1', '198.18.0.2', '198.18.1.1', '198.19.255.254', '10.0.0.1'];
const ADDRS6 = ['2001:db8::1', '2001:db8::2', '2001:db8:1::1', 'fe80::1'];
const PORTS = [22, 53, 80, 443, 1234, 65535];

function fuzzCase(seed: number): void {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;
  const chance = (p: number) => r() < p;
  const ranges = (vals: number[], max: number): Range[] => {
    const out: Range[] = [];
    for (let i = 0, n = 1 + int(3); i < n; i++) {
      const lo = chance(0.6) ? pick(vals) : int(max + 1);
      out.push([lo, chance(0.5) ? lo : Math.min(max, lo + int(200))]);
    }
    return out;
  };
  const addr4 = () => {
    const [a = 0, b = 0, cc = 0, d = 0] = pick(ADDRS4).split('.').map(Number);
    const len = pick([32, 24, 16, 8, 0, 31]);
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    return { addr: (((a << 24) | (b << 16) | (cc << 8) | d) >>> 0), mask };
  };
  const names = ['default', 'a', 'b'];
  const body = (): CmdBody => {
    switch (int(34)) {
      case 0: return { op: 'proto', proto: pick([6, 17, 1, 58, 50]) };
      case 1: return { op: 'ip4' };
      case 2: return { op: 'ip6' };
      case 3: return { op: 'ipversion', version: pick([4, 6]) };
      case 4: return { op: 'ip-addr', dir: pick(['src', 'dst'] as const), list: [addr4(), ...(chance(0.3) ? [addr4()] : [])] };
      case 5: return { op: 'ip-set', dir: pick(['src', 'dst'] as const), base: 0xc6120000, bits: 256, members: [1, 2, int(256)] };
      case 6: return { op: 'ip6-addr', dir: pick(['src', 'dst'] as const), list: [{ addr: [0x20010db8, 0, 0, int(3)], mask: pick([[0xffffffff, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffff0000, 0, 0]]) as [number, number, number, number] }] };
      case 7: return { op: 'me', dir: 'src', v6: false };
      case 8: return { op: 'table', dir: pick(['src', 'dst'] as const), table: pick(['T', 'missing']), value: chance(0.3) ? pick([1, 2, 3]) : null };
      case 9: return { op: 'ports', dir: pick(['src', 'dst'] as const), ranges: ranges(PORTS, 65535) };
      case 10: return { op: 'in' };
      case 11: return { op: 'iface', which: pick(['recv', 'xmit', 'via'] as const), name: chance(0.7) ? pick(['veth0', 'veth*', 'nope']) : null, table: chance(0.2) ? 'I' : null, addr: null };
      case 12: return { op: 'layer2' };
      case 13: return { op: 'mac', dst: '02:00:00:00:00:02', dstMask: pick(['ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00']), src: '02:00:00:00:00:01', srcMask: pick(['ff:ff:ff:ff:ff:ff', 'ff:00:00:00:00:00']) };
      case 14: return { op: 'mac-type', ranges: [[pick([0x0800, 0x86dd, 0x0806, 0x8100]), pick([0x0800, 0x86dd, 0x8100])]] };
      case 15: return { op: 'iplen', ranges: ranges([20, 28, 40, 60], 1500) };
      case 16: return { op: 'ipttl', ranges: ranges([1, 64, 255], 255) };
      case 17: return { op: 'ipid', ranges: ranges([0x1234, 0], 65535) };
      case 18: return { op: 'iptos', set: int(32) & 0x1e, clear: int(32) & 0x11 };
      case 19: return { op: 'dscp', codes: [int(64), pick([0, 46, 10, 33, 32])] };
      case 20: return { op: 'ipprecedence', value: int(8) << 5 };
      case 21: return { op: 'ipoptions', set: int(16), clear: int(16) };
      case 22: return { op: 'frag' };
      case 23: return { op: 'flow-id', labels: [0, 0x12345] };
      case 24: return { op: 'ext6hdr', set: int(256) & 0x0f, clear: int(256) & 0xf0 };
      case 25: return { op: 'tcpflags', set: int(64), clear: int(64) };
      case 26: return { op: 'established' };
      case 27: return { op: 'tcpoptions', set: int(32), clear: int(32) };
      case 28: return chance(0.5) ? { op: 'tcpseq', value: pick([1000, 0xdeadbeef]) } : { op: 'tcpack', value: pick([0, 1]) };
      case 29: return { op: 'tcpwin', ranges: ranges([65535, 0, 1000], 65535) };
      case 30: return { op: 'tcpdatalen', ranges: ranges([0, 10, 100], 2000) };
      case 31: return chance(0.5) ? { op: 'icmptypes', types: [pick([0, 8, 3]), int(40)] } : { op: 'icmp6types', types: [128, int(256)] };
      case 32: return { op: 'tagged', ranges: ranges([1, 2, 3], 10) };
      default: return { op: 'lookup', key: pick(['src-ip', 'dst-ip', 'src-port', 'dst-port', 'dscp', 'rulenum', 'uid'] as const), table: pick(['T', 'P']) };
    }
  };
  // A quarter of the rulesets use only the commands and actions for which the compiled
  // evaluator decodes the bare minimum (decodeBasic), so that path is cross-checked too.
  const basicOnly = chance(0.25);
  // And some of the others only commands and actions that read no packet field (decodeLength).
  const lengthOnly = !basicOnly && chance(0.2);
  const lengthBody = (): CmdBody => {
    switch (int(4)) {
      case 0: return { op: 'in' };
      case 1: return { op: 'iface', which: pick(['recv', 'xmit', 'via'] as const), name: pick(['veth0', 'veth*', 'valeA:*']), table: null, addr: null };
      case 2: return { op: 'tagged', ranges: ranges([1, 2, 3], 10) };
      default: return { op: 'layer2' };
    }
  };
  const basicBody = (): CmdBody => {
    switch (int(16)) {
      case 9: return { op: 'ip-addr', dir: pick(['src', 'dst'] as const), list: [addr4()] };
      case 10: return { op: 'ports', dir: pick(['src', 'dst'] as const), ranges: ranges(PORTS, 65535) };
      case 11: return { op: 'tcpflags', set: int(64), clear: int(64) };
      case 12: return { op: 'established' };
      case 13: return { op: 'icmptypes', types: [pick([0, 8, 3])] };
      case 14: return { op: 'table', dir: pick(['src', 'dst'] as const), table: 'T', value: chance(0.3) ? pick([1, 3, 300]) : null };
      case 15: return { op: 'ip-set', dir: pick(['src', 'dst'] as const), base: 0xc6120000, bits: 256, members: [1, 2, int(256)] };
      case 0: return { op: 'proto', proto: pick([6, 17, 1, 58]) };
      case 1: return { op: 'ip4' };
      case 2: return { op: 'ip6' };
      case 3: return { op: 'in' };
      case 4: return { op: 'frag' };
      case 5: return { op: 'tagged', ranges: ranges([1, 2, 3], 10) };
      case 6: return { op: 'mac-type', ranges: [[pick([0x0800, 0x86dd, 0x0806]), pick([0x0800, 0x86dd, 0x8100])]] };
      case 7: return { op: 'iface', which: pick(['recv', 'xmit', 'via'] as const), name: pick(['veth0', 'veth*']), table: null, addr: null };
      default: return { op: 'layer2' };
    }
  };
  const kinds: Action['kind'][] = lengthOnly ? ['allow', 'deny', 'count', 'skipto', 'call', 'return', 'pipe', 'queue'] : basicOnly
    ? ['allow', 'deny', 'count', 'skipto', 'call', 'return', 'setdscp', 'pipe', 'queue', 'reject', 'unreach', 'reset', 'unreach6', 'reset6', 'check-state']
    : ['allow', 'deny', 'reject', 'unreach', 'unreach6', 'reset', 'reset6', 'count', 'count', 'skipto', 'skipto', 'call', 'return', 'check-state', 'setdscp', 'pipe', 'queue'];
  const numbers = Array.from({ length: 1 + int(25) }, () => 1 + int(2000)).sort((a, b) => a - b);
  const rules: Rule[] = numbers.map((number) => {
    const kind = pick(kinds);
    const tablearg = !basicOnly && !lengthOnly && ['skipto', 'call', 'pipe', 'queue', 'setdscp'].includes(kind) && chance(0.2);
    const arg = kind === 'skipto' || kind === 'call' ? 1 + int(2200) : kind === 'unreach' ? int(16) : kind === 'unreach6' ? pick([0, 1, 3, 4]) : kind === 'reject' ? 1 : int(64);
    const cmds: Cmd[] = [];
    if (!lengthOnly && chance(0.4)) cmds.push(c({ op: 'proto', proto: pick([6, 17]) }, { neg: chance(0.1), or: chance(0.1) })); // protocol runs
    for (let i = 0, n = int(5); i < n; i++) cmds.push(c(lengthOnly ? lengthBody() : basicOnly ? basicBody() : body(), { neg: chance(0.2), or: chance(0.25) }));
    if (!lengthOnly && kind !== 'check-state' && chance(0.3)) {
      const name = pick(names);
      if (cmds.length) cmds[cmds.length - 1]!.or = false;
      cmds.push(c({ op: 'probe-state', name }));
      cmds.push(chance(0.7) ? c({ op: 'keep-state', name, record: false })
        : c({ op: 'limit', name, mask: { srcAddr: chance(0.7), srcPort: chance(0.3), dstAddr: chance(0.3), dstPort: chance(0.5) }, limit: 1 + int(3), record: false }));
    }
    return rule(number, kind, arg, cmds, {
      set: chance(0.1) ? 1 + int(4) : 0, log: chance(0.1), prob: chance(0.1) ? 0.5 : 1, tablearg,
      tag: chance(0.15) ? { untag: chance(0.3), value: 1 + int(4), tablearg: !basicOnly && !lengthOnly && chance(0.1) } : null,
      stateName: kind === 'check-state' ? pick([...names, 'any']) : undefined,
    });
  });
  const tables: TableConfig[] = [
    { name: 'T', type: 'addr', entries: [{ key: '198.18.0.0/15', value: 1 }, { key: '198.18.0.2/32', value: 300 }, { key: '10.0.0.0/8', value: 3 }, { key: '2001:db8::/32', value: 2 }, { key: '0.0.0.0/0', value: 1500 }] },
    { name: 'P', type: 'number', entries: [{ key: '80', value: 800 }, { key: '22', value: 2 }, { key: '46', value: 4 }] },
    { name: 'I', type: 'iface', entries: [{ key: 'veth1', value: 700 }] },
  ];
  const cfg = config(rules, { tables, disabledSets: chance(0.5) ? 0b110 : 0, settings: { dynMax: chance(0.5) ? 6 : 100 } });
  const capacity = chance(0.5) ? 8 : 128;
  const ifaces = new Names(['veth0', 'veth1', 'valeA:p0']);
  const interp = build(cfg, false, { shared: makeShared(capacity, 2), ifaces, seed: seed ^ 0x55 });
  const compiled = build(cfg, true, { shared: makeShared(capacity, 2), ifaces, seed: seed ^ 0x55, chunkRules: chance(0.5) ? 1 + int(6) : undefined });
  assert.equal(compiled.ev.compiled, true);
  if (basicOnly) basicRulesets++;
  if (lengthOnly) {
    lengthRulesets++;
    assert.equal(prepare(cfg, makeShared(8, 1).dyn).lengthDecode, true, `seed ${seed}: a ruleset reading no field decodes the length only`);
  }

  const template = (): Uint8Array => {
    const a = pick(ADDRS4), b = pick(ADDRS4), a6 = pick(ADDRS6), b6 = pick(ADDRS6);
    const sp = pick(PORTS), dp = pick(PORTS);
    switch (int(10)) {
      case 0: return ip4(a, b, { kind: 'tcp', sport: sp, dport: dp, flags: int(64), ack: int(2), seq: pick([1000, 0xdeadbeef]), payload: int(12), tcpOptions: chance(0.5) ? [2, 4, 5, 0xb4, 4, 2] : [] }, { ttl: pick([1, 64]), tos: int(256), options: chance(0.2) ? [7, 7, 4, 0, 0, 0, 0] : [] });
      case 1: return ip4(a, b, { kind: 'udp', sport: sp, dport: dp, payload: int(20) }, { fragOffset: chance(0.2) ? 1 + int(100) : 0, mf: chance(0.2) });
      case 2: return ip4(a, b, { kind: 'icmp', type: pick([0, 3, 8, 11]) });
      case 3: return ip6(a6, b6, { kind: 'tcp', sport: sp, dport: dp, flags: int(64), payload: int(10) }, { tclass: int(256), flow: pick([0, 0x12345]) });
      case 4: return ip6(a6, b6, { kind: 'udp', sport: sp, dport: dp }, { ext: chance(0.5) ? [{ type: pick([0, 43, 60, 44]), fragOffset: chance(0.3) ? 8 : 0, mf: chance(0.5) }] : [] });
      case 5: return ip6(a6, b6, { kind: 'icmp6', type: pick([128, 129, 1, 135]) });
      case 6: return eth(0x0806, new Array<number>(28).fill(1));
      case 7: return eth(0x8100, [0, 5, 0x08, 0x00, ...ip4(a, b, { kind: 'udp', sport: sp, dport: dp }).subarray(14)]);
      case 8: return ip4(a, b, { kind: 'raw', proto: pick([47, 50, 132]), payload: int(30) });
      default: return Uint8Array.from({ length: int(90) }, () => int(256));
    }
  };

  /** The reply of an IPv4 frame with a 20-byte header: addresses and ports swapped. */
  const reversed = (g: Uint8Array): Uint8Array => {
    const f = Uint8Array.from(g);
    if (f.length < 38 || f[12] !== 0x08 || f[13] !== 0x00 || f[14] !== 0x45) return f;
    for (let i = 0; i < 4; i++) { const t = f[26 + i]!; f[26 + i] = f[30 + i]!; f[30 + i] = t; }
    for (let i = 0; i < 2; i++) { const t = f[34 + i]!; f[34 + i] = f[36 + i]!; f[36 + i] = t; }
    return f;
  };
  const recent: Uint8Array[] = [];
  let now = 1_000_000;
  for (let k = 0; k < FRAMES; k++) {
    // A third of the frames repeat or answer a recent one, so states get hit.
    let f = recent.length > 0 && chance(0.35) ? (chance(0.6) ? reversed(pick(recent)) : Uint8Array.from(pick(recent))) : template();
    recent.push(Uint8Array.from(f));
    if (recent.length > 8) recent.shift();
    for (let m = 0, n = chance(0.4) ? 1 + int(3) : 0; m < n; m++) f[int(f.length) || 0] = int(256);
    if (chance(0.2)) f = f.subarray(0, int(f.length + 1));
    // Sometimes a reply to the previous flow, so states get hit.
    const dirIn = chance(0.8), recvIf = pick([-1, 0, 1, 2, 7]), xmitIf = pick([-1, -1, 0, 1]);
    now += chance(0.05) ? 20_000 + int(300_000) : int(3000); // now and then past a lifetime
    const fi = Uint8Array.from(f), fc = Uint8Array.from(f);
    const off = int(3);
    const bi = new Uint8Array(fi.length + off); bi.set(fi, off);
    const bc = new Uint8Array(fc.length + off); bc.set(fc, off);
    const vi = interp.ev.check(bi, off, fi.length, dirIn, recvIf, xmitIf, now);
    const what = `seed ${seed} frame ${k}`;
    // forwarded packets (VALE's lookup) go through filterBatch half the time: a batch of one,
    // 254 standing for a flood (no xmit interface), 255 for a drop
    const viaBatch = !dirIn && chance(0.5);
    if (viaBatch) {
      const dst = Int32Array.of(xmitIf < 0 ? 254 : xmitIf);
      compiled.ev.filterBatch(bc, Float64Array.of(off), Int32Array.of(fc.length), dst, 1, recvIf, now, 254, 255);
      assert.equal(dst[0] !== 255, vi === 0, `${what}: filterBatch passes what check() passes`);
      assert.equal(dst[0], vi === 0 ? (xmitIf < 0 ? 254 : xmitIf) : 255, `${what}: filterBatch leaves a passed destination`);
      batchChecks++;
    } else {
      assert.equal(compiled.ev.check(bc, off, fc.length, dirIn, recvIf, xmitIf, now), vi, `${what}: verdict`);
    }
    assert.equal(compiled.ev.ruleIndex, interp.ev.ruleIndex, `${what}: deciding rule`);
    if (vi === 2 || vi === 4 || vi === 5) assert.equal(compiled.ev.arg, interp.ev.arg, `${what}: arg`);
    assert.deepEqual(bc, bi, `${what}: packet bytes after setdscp`);
    if (chance(0.05)) { interp.shared.dyn.expire(now); compiled.shared.dyn.expire(now); }
    if (vi === 4 && !viaBatch && chance(0.5)) { // one_pass = 0: back from the pipe
      const ri = interp.ev.resume(bi, off, fi.length, dirIn, recvIf, xmitIf, now, interp.ev.ruleIndex);
      const rc = compiled.ev.resume(bc, off, fc.length, dirIn, recvIf, xmitIf, now, compiled.ev.ruleIndex);
      assert.equal(rc, ri, `${what}: resumed verdict`);
      assert.equal(compiled.ev.ruleIndex, interp.ev.ruleIndex, `${what}: resumed rule`);
    }
  }
  for (const rl of cfg.rules) {
    assert.deepEqual(compiled.shared.counters.read(rl.slot), interp.shared.counters.read(rl.slot), `seed ${seed}: counters of rule ${rl.number}`);
    assert.equal(compiled.shared.counters.loggedCount(rl.slot), interp.shared.counters.loggedCount(rl.slot), `seed ${seed}: log count of rule ${rl.number}`);
  }
  const strip = (l: ReturnType<typeof interp.shared.dyn.list>) => l.map((s) => JSON.stringify(s)).sort();
  assert.deepEqual(strip(compiled.shared.dyn.list(now)), strip(interp.shared.dyn.list(now)), `seed ${seed}: states`);
  assert.deepEqual(compiled.shared.dyn.statistics(), interp.shared.dyn.statistics(), `seed ${seed}: state statistics`);
}

test(`fuzz: ${RULESETS} random rulesets × ${FRAMES} random frames, compiled ≡ interpreted, nothing throws`, () => {
  const t0 = Date.now();
  for (let i = 0; i < RULESETS; i++) {
    fuzzCase(SEED + i);
    if (Date.now() - t0 > 40_000) { console.log(`fuzz: time bound reached after ${i + 1} rulesets`); break; }
  }
  assert.ok(basicRulesets > 0, 'some rulesets took the minimal-decode path');
  assert.ok(lengthRulesets > 0, 'some rulesets took the length-only decode path');
  assert.ok(batchChecks > 0, 'some packets went through filterBatch');
});
