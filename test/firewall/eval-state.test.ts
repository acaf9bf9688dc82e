/**
 * Dynamic states (keep-state, limit, check-state) with a fake clock: creation by a SYN, the
 * reply direction, ipfw's lifetimes (§2.5), expiry, a full table, limit, named states.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { V_PASS, V_DENY } from '../../src/firewall/engine.js';
import { DynTable } from '../../src/firewall/state.js';
import { c, addr4, rule, config, build, verdict, ip4, ip6, TH, makeShared } from './fw-helpers.js';

const A = '198.18.0.1', B = '198.18.1.2';
const tcp = (sport: number, dport: number, flags: number, ack = 0) => ({ kind: 'tcp' as const, sport, dport, flags, ack });

/** check-state; allow tcp from A-net to B-net setup keep-state; allow udp ... keep-state; deny ip. */
function statefulConfig(settings = {}) {
  return config([
    rule(100, 'check-state', 0, [], { stateName: 'default' }),
    rule(200, 'allow', 0, [
      c({ op: 'proto', proto: 6 }), c({ op: 'ip-addr', dir: 'src', list: [addr4('198.18.0.0/24')] }),
      c({ op: 'tcpflags', set: TH.SYN, clear: TH.ACK }),
      c({ op: 'probe-state', name: 'default' }), c({ op: 'keep-state', name: 'default', record: false }),
    ]),
    rule(300, 'allow', 0, [
      c({ op: 'proto', proto: 17 }), c({ op: 'ip-addr', dir: 'src', list: [addr4('198.18.0.0/24')] }),
      c({ op: 'probe-state', name: 'default' }), c({ op: 'keep-state', name: 'default', record: false }),
    ]),
    rule(400, 'deny', 0, []),
  ], { settings });
}

for (const compiled of [false, true]) {
  const mode = compiled ? 'compiled' : 'interpreted';

  test(`${mode}: a SYN creates a state; the reply matches it; an unrelated SYN from B is denied`, () => {
    const cfg = statefulConfig();
    const { ev, shared } = build(cfg, compiled);
    const t0 = 5_000_000;
    assert.equal(verdict(ev, ip4(B, A, tcp(80, 1234, TH.SYN)), { now: t0 }), V_DENY, 'B may not open');
    assert.equal(verdict(ev, ip4(A, B, tcp(1234, 80, TH.SYN)), { now: t0 }), V_PASS);
    assert.equal(cfg.rules[ev.ruleIndex]!.number, 200);
    assert.equal(verdict(ev, ip4(B, A, tcp(80, 1234, TH.SYN | TH.ACK, 1001)), { now: t0 + 10 }), V_PASS, 'the reply rides the state');
    assert.equal(cfg.rules[ev.ruleIndex]!.number, 200, 'the parent rule decides');
    assert.equal(verdict(ev, ip4(B, A, tcp(80, 1235, TH.SYN | TH.ACK)), { now: t0 + 10 }), V_DENY, 'another port: no state');
    const list = shared.dyn.list(t0 + 10);
    assert.equal(list.length, 1);
    assert.equal(list[0]!.ruleNumber, 200);
    assert.equal(list[0]!.kind, 'STATE');
    assert.equal(list[0]!.src, A); assert.equal(list[0]!.srcPort, 1234);
    assert.equal(list[0]!.dst, B); assert.equal(list[0]!.dstPort, 80);
    assert.equal(list[0]!.packets, 1, 'the reply counted on the state (the installing packet is not, as ipfw 2014)');
    assert.equal(list[0]!.bytes, 40);
    assert.equal(list[0]!.remaining, 20, 'SYNs only: dyn_syn_lifetime');
    assert.equal(list[0]!.name, 'default');
    // counters: rule 200 counted the SYN and the reply; check-state itself is never counted.
    assert.equal(shared.counters.read(cfg.rules[1]!.slot).packets, 2);
    assert.equal(shared.counters.read(cfg.rules[0]!.slot).packets, 0);
  });

  test(`${mode}: TCP lifetimes: SYN 20 s, established 300 s, both FINs 1 s; expire() removes`, () => {
    const cfg = statefulConfig();
    const { ev, shared } = build(cfg, compiled);
    const t0 = 10_000_000;
    verdict(ev, ip4(A, B, tcp(1000, 80, TH.SYN)), { now: t0 });
    assert.equal(verdict(ev, ip4(B, A, tcp(80, 1000, TH.SYN | TH.ACK, 1)), { now: t0 + 19_000 }), V_PASS, 'alive at 19 s');
    verdict(ev, ip4(A, B, tcp(1000, 80, TH.ACK, 1)), { now: t0 + 19_100 });
    assert.equal(shared.dyn.list(t0 + 19_100)[0]!.remaining, 300, 'ACKs both ways: dyn_ack_lifetime');
    // An ACK number going backwards (by sequence arithmetic) does not count as an ACK seen.
    verdict(ev, ip4(A, B, tcp(1000, 80, TH.ACK, 0x80000001)), { now: t0 + 200_000 });
    verdict(ev, ip4(B, A, tcp(80, 1000, TH.ACK, 1)), { now: t0 + 200_100 });
    assert.equal(shared.dyn.list(t0 + 200_100)[0]!.remaining, 119, 'only the reply ACK counted: lifetime not extended');
    assert.equal(verdict(ev, ip4(B, A, tcp(80, 1000, TH.ACK, 2)), { now: t0 + 319_000 }), V_PASS, 'alive 299.9 s later');
    assert.equal(shared.dyn.list(t0 + 319_000)[0]!.remaining, 1, 'an ACK one way only does not extend the lifetime (ipfw needs both)');
    verdict(ev, ip4(A, B, tcp(1000, 80, TH.ACK, 2)), { now: t0 + 319_050 });
    assert.equal(shared.dyn.list(t0 + 319_050)[0]!.remaining, 300);
    verdict(ev, ip4(A, B, tcp(1000, 80, TH.FIN | TH.ACK, 2)), { now: t0 + 320_000 });
    assert.equal(shared.dyn.list(t0 + 320_000)[0]!.remaining, 300, 'one FIN: still the ack lifetime');
    verdict(ev, ip4(B, A, tcp(80, 1000, TH.FIN | TH.ACK, 3)), { now: t0 + 320_100 });
    assert.equal(shared.dyn.list(t0 + 320_100)[0]!.remaining, 1, 'both FINs: dyn_fin_lifetime');
    assert.equal(verdict(ev, ip4(B, A, tcp(80, 1000, TH.ACK, 3)), { now: t0 + 321_200 }), V_DENY, 'expired');
    assert.equal(shared.dyn.list(t0 + 321_200)[0]!.expired, true, 'listed as expired until the timer runs');
    assert.equal(shared.dyn.expire(t0 + 321_200), 1);
    assert.equal(shared.dyn.list(t0 + 321_200).length, 0);
    // A SYN-only state dies after 20 s.
    verdict(ev, ip4(A, B, tcp(1001, 80, TH.SYN)), { now: t0 });
    assert.equal(verdict(ev, ip4(B, A, tcp(80, 1001, TH.SYN | TH.ACK)), { now: t0 + 20_001 }), V_DENY);
    // RST: dyn_rst_lifetime.
    verdict(ev, ip4(A, B, tcp(1002, 80, TH.SYN)), { now: t0 });
    verdict(ev, ip4(B, A, tcp(80, 1002, TH.RST)), { now: t0 + 5 });
    const st = shared.dyn.list(t0 + 5).find((s) => s.srcPort === 1002)!;
    assert.equal(st.remaining, 1);
  });

  test(`${mode}: UDP and other lifetimes follow the settings`, () => {
    const cfg = statefulConfig({ dynUdpLifetime: 7 });
    const { ev, shared } = build(cfg, compiled);
    const t0 = 1_000_000;
    assert.equal(verdict(ev, ip4(A, B, { kind: 'udp', sport: 53, dport: 53 }), { now: t0 }), V_PASS);
    assert.equal(shared.dyn.list(t0)[0]!.remaining, 7);
    assert.equal(verdict(ev, ip4(B, A, { kind: 'udp', sport: 53, dport: 53 }), { now: t0 + 6_900 }), V_PASS);
    assert.equal(verdict(ev, ip4(B, A, { kind: 'udp', sport: 53, dport: 53 }), { now: t0 + 6_900 + 7_001 }), V_DENY);
  });

  test(`${mode}: IPv6 states are bidirectional too`, () => {
    const cfg = config([
      rule(100, 'check-state', 0, []),
      rule(200, 'allow', 0, [c({ op: 'proto', proto: 17 }), c({ op: 'ip6-addr', dir: 'src', list: [{ addr: [0x20010db8, 0, 0, 0], mask: [0xffffffff, 0xffffffff, 0, 0] }] }),
        c({ op: 'probe-state', name: 'default' }), c({ op: 'keep-state', name: 'default', record: false })]),
      rule(300, 'deny', 0, []),
    ]);
    const { ev } = build(cfg, compiled);
    assert.equal(verdict(ev, ip6('2001:db8:1::9', '2001:db8::1', { kind: 'udp', sport: 9, dport: 9 })), V_DENY);
    assert.equal(verdict(ev, ip6('2001:db8::1', '2001:db8:1::9', { kind: 'udp', sport: 9, dport: 9 })), V_PASS);
    assert.equal(verdict(ev, ip6('2001:db8:1::9', '2001:db8::1', { kind: 'udp', sport: 9, dport: 9 })), V_PASS);
  });

  test(`${mode}: a full table denies and counts; dyn_max bounds it below the capacity`, () => {
    const cfg = statefulConfig({ dynMax: 3 });
    const shared = makeShared(8);
    const { ev } = build(cfg, compiled, { shared });
    for (let i = 0; i < 3; i++) assert.equal(verdict(ev, ip4(A, B, tcp(2000 + i, 80, TH.SYN))), V_PASS);
    assert.equal(verdict(ev, ip4(A, B, tcp(2003, 80, TH.SYN))), V_DENY, 'dyn_max reached');
    assert.equal(cfg.rules[ev.ruleIndex]!.number, 200, 'denied by the keep-state rule');
    assert.equal(shared.dyn.statistics().full, 1);
    assert.equal(shared.dyn.statistics().count, 3);
    const big = statefulConfig({ dynMax: 100 });
    const small = makeShared(4);
    const t = build(big, compiled, { shared: small });
    for (let i = 0; i < 4; i++) assert.equal(verdict(t.ev, ip4(A, B, tcp(3000 + i, 80, TH.SYN))), V_PASS);
    assert.equal(verdict(t.ev, ip4(A, B, tcp(3004, 80, TH.SYN))), V_DENY, 'capacity reached: never grown');
    assert.equal(small.dyn.statistics().full, 1);
    small.dyn.flush();
    assert.equal(verdict(t.ev, ip4(A, B, tcp(3004, 80, TH.SYN))), V_PASS, 'room again after a flush');
  });

  test(`${mode}: limit src-addr 2: the third flow from one source is denied, another source is not`, () => {
    const cfg = config([
      rule(100, 'allow', 0, [c({ op: 'proto', proto: 6 }), c({ op: 'probe-state', name: 'default' }),
        c({ op: 'limit', name: 'default', mask: { srcAddr: true, srcPort: false, dstAddr: false, dstPort: false }, limit: 2, record: false })]),
      rule(200, 'deny', 0, []),
    ]);
    const { ev, shared } = build(cfg, compiled);
    const now = 1_000_000;
    assert.equal(verdict(ev, ip4(A, B, tcp(1, 80, TH.SYN)), { now }), V_PASS);
    assert.equal(verdict(ev, ip4(A, B, tcp(2, 80, TH.SYN)), { now }), V_PASS);
    assert.equal(verdict(ev, ip4(A, B, tcp(3, 80, TH.SYN)), { now }), V_DENY);
    assert.equal(verdict(ev, ip4(A, B, tcp(1, 80, TH.ACK)), { now }), V_PASS, 'an existing flow still passes');
    assert.equal(verdict(ev, ip4('198.18.0.9', B, tcp(3, 80, TH.SYN)), { now }), V_PASS);
    const list = shared.dyn.list(now);
    assert.equal(list.filter((s) => s.kind === 'PARENT').length, 2);
    assert.equal(list.find((s) => s.kind === 'PARENT' && s.src === A)!.count, 2);
    assert.equal(shared.dyn.statistics().limitDrops, 1);
    // Children expire (SYN lifetime), then the parent, then A may open again.
    assert.equal(shared.dyn.expire(now + 21_000), 5);
    assert.equal(verdict(ev, ip4(A, B, tcp(3, 80, TH.SYN)), { now: now + 21_000 }), V_PASS);
  });

  test(`${mode}: named states: check-state :web sees only :web states; removeRule drops a rule's states`, () => {
    const cfg = config([
      rule(100, 'check-state', 0, [], { stateName: 'web' }),
      rule(200, 'allow', 0, [c({ op: 'ports', dir: 'dst', ranges: [[80, 80]] }), c({ op: 'probe-state', name: 'web' }), c({ op: 'keep-state', name: 'web', record: false })]),
      rule(300, 'allow', 0, [c({ op: 'ports', dir: 'dst', ranges: [[22, 22]] }), c({ op: 'probe-state', name: 'ssh' }), c({ op: 'keep-state', name: 'ssh', record: false })]),
      rule(400, 'deny', 0, []),
    ]);
    const { ev, shared } = build(cfg, compiled);
    verdict(ev, ip4(A, B, tcp(5, 80, TH.SYN)));
    verdict(ev, ip4(A, B, tcp(6, 22, TH.SYN)));
    assert.equal(verdict(ev, ip4(B, A, tcp(80, 5, TH.SYN | TH.ACK))), V_PASS);
    assert.equal(verdict(ev, ip4(B, A, tcp(22, 6, TH.SYN | TH.ACK))), V_DENY, 'the :ssh state is not seen by check-state :web');
    assert.deepEqual(shared.dyn.list(1_000_000).map((s) => s.name).sort(), ['ssh', 'web']);
    assert.equal(shared.dyn.removeRule(cfg.rules[1]!.slot), 1);
    assert.equal(verdict(ev, ip4(B, A, tcp(80, 5, TH.ACK))), V_DENY);
  });
}

test('the dynamic table is usable at any 8-aligned offset and rejects a foreign region', () => {
  const bytes = DynTable.bytesNeeded(16);
  const sab = new SharedArrayBuffer(bytes + 64);
  const d = new DynTable(sab, 64, bytes, 16);
  assert.equal(d.capacity, 16);
  assert.throws(() => new DynTable(sab, 64, bytes, 8 /* different capacity over the same region */), /holds something else|needs/);
  assert.throws(() => new DynTable(sab, 4, bytes, 16), /8-byte boundary/);
});

test('a state-table lock held by a dead thread is taken over', () => {
  const cfg = config([
    rule(100, 'check-state', 0, []),
    rule(200, 'allow', 0, [c({ op: 'proto', proto: 17 }), c({ op: 'probe-state', name: 'default' }), c({ op: 'keep-state', name: 'default', record: false })]),
    rule(300, 'deny', 0, []),
  ]);
  const bytes = DynTable.bytesNeeded(16);
  const sab = new SharedArrayBuffer(8 + bytes);
  const dyn = new DynTable(sab, 8, bytes, 16);
  const shared = makeShared(16);
  const { ev } = build(cfg, true, { shared: { ...shared, dyn } });
  // The global lock is the table's second header word, the 64 bucket locks follow the 64-byte
  // header, one per 64-byte line; a thread id no process has is "dead".
  const header = new Int32Array(sab, 8, 2);
  const bucketLocks = new Int32Array(sab, 8 + 64, 64 * 16);
  Atomics.store(header, 1, 0x3ffffff0);
  for (let k = 0; k < 64; k++) Atomics.store(bucketLocks, k * 16, 0x3ffffff0 - k);
  const t0 = Date.now();
  assert.equal(verdict(ev, ip4(A, B, { kind: 'udp', sport: 1, dport: 2 })), V_PASS, 'install: a bucket lock and the global lock taken over');
  assert.equal(verdict(ev, ip4(B, A, { kind: 'udp', sport: 2, dport: 1 })), V_PASS, 'the reply finds the state');
  assert.ok(Date.now() - t0 < 2000, 'taken over promptly');
  assert.equal(Atomics.load(header, 1), 0, 'released after use');
  assert.equal(dyn.list(1_000_000).length, 1, 'list takes every lock (the dead ones over)');
  for (let k = 0; k < 64; k++) assert.equal(Atomics.load(bucketLocks, k * 16), 0);
});
