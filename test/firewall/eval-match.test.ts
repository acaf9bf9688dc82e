/**
 * Matching semantics per option on hand-built frames, for both the interpreter and the compiled
 * evaluator. Expected verdicts are written from ipfw(8) / ip_fw2.c's ipfw_chk (reference §2.2–2.4).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { V_PASS, V_DENY, V_REJECT, V_RESET, V_PIPE } from '../../src/firewall/engine.js';
import { PacketInfo } from '../../src/firewall/packet.js';
import { type Cmd } from '../../src/firewall/rule.js';
import { c, addr4, rule, config, build, verdict, ip4, ip6, eth, TH, Names, ipv4Checksum } from './fw-helpers.js';

const A = '198.18.0.1', B = '198.18.1.2';
const A6 = '2001:db8::1', B6 = '2001:db8:1::2';
const tcp = (sport: number, dport: number, flags = TH.SYN, extra: object = {}) => ({ kind: 'tcp' as const, sport, dport, flags, ...extra });
const udp = (sport: number, dport: number) => ({ kind: 'udp' as const, sport, dport });
const arp = eth(0x0806, new Array<number>(28).fill(0));
const vlanIp = eth(0x8100, [0, 5, 0x08, 0x00, ...Array.from(ip4(A, B, tcp(1, 80)).subarray(14))]);

/** A ruleset of one `deny` rule numbered 100 with `cmds`, default allow: DENY means "matched". */
function matches(compiled: boolean, cmds: Cmd[], frame: Uint8Array, o: Parameters<typeof verdict>[2] = {}, ifaces?: Names): boolean {
  const { ev } = build(config([rule(100, 'deny', 0, cmds)]), compiled, { ifaces });
  const v = verdict(ev, frame, o);
  return v === V_DENY && ev.ruleIndex === 0;
}

for (const compiled of [false, true]) {
  const mode = compiled ? 'compiled' : 'interpreted';

  test(`${mode}: ip from any to any matches every frame, IP or not (layer 2, as netmap-ipfw)`, () => {
    for (const f of [ip4(A, B, tcp(1, 2)), ip6(A6, B6, udp(1, 2)), arp, vlanIp, new Uint8Array(10)]) {
      assert.equal(matches(compiled, [], f), true);
    }
  });

  test(`${mode}: addresses and masks match IPv4 only; VLAN-tagged and ARP frames are not IP`, () => {
    const src = [c({ op: 'ip-addr', dir: 'src', list: [addr4('198.18.0.0/24')] })];
    assert.equal(matches(compiled, src, ip4(A, B, tcp(1, 2))), true);
    assert.equal(matches(compiled, src, ip4(B, A, tcp(1, 2))), false);
    assert.equal(matches(compiled, src, vlanIp), false);
    assert.equal(matches(compiled, src, arp), false);
    assert.equal(matches(compiled, src, ip6(A6, B6, udp(1, 2))), false);
    const notSrc = [c({ op: 'ip-addr', dir: 'src', list: [addr4('198.18.0.0/24')] }, { neg: true })];
    assert.equal(matches(compiled, notSrc, arp), true, 'not <addr> matches a non-IP frame');
    const dstList = [c({ op: 'ip-addr', dir: 'dst', list: [addr4('10.0.0.1'), addr4('198.18.1.0/24')] })];
    assert.equal(matches(compiled, dstList, ip4(A, B, tcp(1, 2))), true);
    const v6 = [c({ op: 'ip6-addr', dir: 'src', list: [{ addr: [0x20010db8, 0, 0, 0], mask: [0xffffffff, 0xffff0000, 0, 0] }] })];
    assert.equal(matches(compiled, v6, ip6(A6, B6, udp(1, 2))), true);
    assert.equal(matches(compiled, v6, ip6('2001:db9::1', B6, udp(1, 2))), false);
    const set = [c({ op: 'ip-set', dir: 'dst', base: 0xc6120100, bits: 256, members: [2, 7] })];
    assert.equal(matches(compiled, set, ip4(A, B, tcp(1, 2))), true);
    assert.equal(matches(compiled, set, ip4(A, '198.18.1.3', tcp(1, 2))), false);
    assert.equal(matches(compiled, [c({ op: 'me', dir: 'dst', v6: false })], ip4(A, B, tcp(1, 2))), false);
  });

  test(`${mode}: protocols, ports, ranges; ports never match ICMP or later fragments`, () => {
    const tcpProto = [c({ op: 'proto', proto: 6 })];
    assert.equal(matches(compiled, tcpProto, ip4(A, B, tcp(1, 2))), true);
    assert.equal(matches(compiled, tcpProto, ip4(A, B, udp(1, 2))), false);
    assert.equal(matches(compiled, tcpProto, ip6(A6, B6, tcp(1, 2))), true);
    assert.equal(matches(compiled, tcpProto, arp), false);
    const http = [c({ op: 'ports', dir: 'dst', ranges: [[80, 80], [8000, 8100]] })];
    assert.equal(matches(compiled, http, ip4(A, B, tcp(1, 80))), true);
    assert.equal(matches(compiled, http, ip4(A, B, udp(1, 8080))), true);
    assert.equal(matches(compiled, http, ip4(A, B, tcp(1, 8101))), false);
    assert.equal(matches(compiled, http, ip4(A, B, { kind: 'icmp', type: 8 })), false);
    assert.equal(matches(compiled, http, ip4(A, B, tcp(1, 80), { fragOffset: 10 })), false, 'a later fragment has no ports');
    assert.equal(matches(compiled, http, ip6(A6, B6, tcp(1, 80), { ext: [{ type: 0 }, { type: 60 }] })), true, 'ports after IPv6 extension headers');
    assert.equal(matches(compiled, [c({ op: 'ip4' })], ip4(A, B, tcp(1, 2))), true);
    assert.equal(matches(compiled, [c({ op: 'ip6' })], ip4(A, B, tcp(1, 2))), false);
    assert.equal(matches(compiled, [c({ op: 'ipversion', version: 4 })], ip4(A, B, tcp(1, 2))), true);
    assert.equal(matches(compiled, [c({ op: 'ipversion', version: 6 })], ip6(A6, B6, tcp(1, 2))), false, 'ipfw tests ipversion on IPv4 only');
  });

  test(`${mode}: fragments: frag matches offset != 0 only; the first fragment has its ports`, () => {
    const frag = [c({ op: 'frag' })];
    assert.equal(matches(compiled, frag, ip4(A, B, tcp(1, 80), { fragOffset: 185 })), true);
    assert.equal(matches(compiled, frag, ip4(A, B, tcp(1, 80), { mf: true })), false);
    assert.equal(matches(compiled, [c({ op: 'ports', dir: 'dst', ranges: [[80, 80]] })], ip4(A, B, tcp(1, 80), { mf: true })), true);
    assert.equal(matches(compiled, frag, ip6(A6, B6, udp(1, 2), { ext: [{ type: 44, fragOffset: 0x100, mf: true }] })), true);
    assert.equal(matches(compiled, frag, ip6(A6, B6, udp(1, 2), { ext: [{ type: 44, fragOffset: 0, mf: true }] })), false);
    assert.equal(matches(compiled, [c({ op: 'ext6hdr', set: 0x01, clear: 0 })], ip6(A6, B6, udp(1, 2), { ext: [{ type: 44, mf: true }] })), true);
    assert.equal(matches(compiled, [c({ op: 'ext6hdr', set: 0x02, clear: 0 })], ip6(A6, B6, udp(1, 2), { ext: [{ type: 44, mf: true }] })), false);
    assert.equal(matches(compiled, [c({ op: 'ext6hdr', set: 0x04, clear: 0 })], ip6(A6, B6, udp(1, 2), { ext: [{ type: 43 }] })), true);
  });

  test(`${mode}: TCP flags, setup, established, options, seq/ack/win, data length`, () => {
    const setup = [c({ op: 'tcpflags', set: TH.SYN, clear: TH.ACK })];
    assert.equal(matches(compiled, setup, ip4(A, B, tcp(1, 2, TH.SYN))), true);
    assert.equal(matches(compiled, setup, ip4(A, B, tcp(1, 2, TH.SYN | TH.ACK))), false);
    assert.equal(matches(compiled, setup, ip4(A, B, udp(1, 2))), false);
    const est = [c({ op: 'established' })];
    assert.equal(matches(compiled, est, ip4(A, B, tcp(1, 2, TH.ACK))), true);
    assert.equal(matches(compiled, est, ip4(A, B, tcp(1, 2, 0))), true, 'no flags at all counts as established (ipfw code)');
    assert.equal(matches(compiled, est, ip4(A, B, tcp(1, 2, TH.SYN))), false);
    assert.equal(matches(compiled, est, ip4(A, B, tcp(1, 2, TH.SYN | TH.RST))), true);
    const mss = [c({ op: 'tcpoptions', set: 0x01, clear: 0x08 })];
    assert.equal(matches(compiled, mss, ip4(A, B, tcp(1, 2, TH.SYN, { tcpOptions: [2, 4, 5, 0xb4] }))), true);
    assert.equal(matches(compiled, mss, ip4(A, B, tcp(1, 2, TH.SYN, { tcpOptions: [2, 4, 5, 0xb4, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0] }))), false);
    assert.equal(matches(compiled, mss, ip4(A, B, tcp(1, 2))), false);
    assert.equal(matches(compiled, [c({ op: 'tcpseq', value: 0xdeadbeef })], ip4(A, B, tcp(1, 2, TH.ACK, { seq: 0xdeadbeef }))), true);
    assert.equal(matches(compiled, [c({ op: 'tcpack', value: 7 })], ip4(A, B, tcp(1, 2, TH.ACK, { ack: 8 }))), false);
    assert.equal(matches(compiled, [c({ op: 'tcpwin', ranges: [[1000, 2000]] })], ip4(A, B, tcp(1, 2, TH.ACK, { win: 1500 }))), true);
    assert.equal(matches(compiled, [c({ op: 'tcpdatalen', ranges: [[10, 10]] })], ip4(A, B, tcp(1, 2, TH.ACK, { payload: 10 }))), true);
    assert.equal(matches(compiled, [c({ op: 'tcpdatalen', ranges: [[10, 10]] })], ip6(A6, B6, tcp(1, 2, TH.ACK, { payload: 10 }))), true);
    assert.equal(matches(compiled, [c({ op: 'tcpdatalen', ranges: [[0, 0]] })], ip4(A, B, tcp(1, 2, TH.ACK, { payload: 10 }))), false);
  });

  test(`${mode}: ICMP and ICMPv6 types`, () => {
    assert.equal(matches(compiled, [c({ op: 'icmptypes', types: [0, 8] })], ip4(A, B, { kind: 'icmp', type: 8 })), true);
    assert.equal(matches(compiled, [c({ op: 'icmptypes', types: [0, 8] })], ip4(A, B, { kind: 'icmp', type: 3 })), false);
    assert.equal(matches(compiled, [c({ op: 'icmp6types', types: [128] })], ip6(A6, B6, { kind: 'icmp6', type: 128 })), true);
    assert.equal(matches(compiled, [c({ op: 'icmp6types', types: [128] })], ip4(A, B, { kind: 'icmp', type: 128 })), false);
  });

  test(`${mode}: IP header fields: iplen, ipttl, ipid, iptos, dscp, ipprecedence, ipoptions, flow-id`, () => {
    const f = ip4(A, B, udp(1, 2), { ttl: 3, id: 77, tos: 0xb8 /* EF, precedence 5 */ });
    assert.equal(matches(compiled, [c({ op: 'iplen', ranges: [[28, 28]] })], f), true);
    assert.equal(matches(compiled, [c({ op: 'ipttl', ranges: [[1, 3]] })], f), true);
    assert.equal(matches(compiled, [c({ op: 'ipid', ranges: [[78, 90]] })], f), false);
    assert.equal(matches(compiled, [c({ op: 'iptos', set: 0x10 | 0x08, clear: 0 })], f), true);
    assert.equal(matches(compiled, [c({ op: 'iptos', set: 0x10, clear: 0x08 })], f), false);
    assert.equal(matches(compiled, [c({ op: 'dscp', codes: [46] })], f), true);
    assert.equal(matches(compiled, [c({ op: 'dscp', codes: [46] })], ip6(A6, B6, udp(1, 2), { tclass: 46 << 2 })), true);
    assert.equal(matches(compiled, [c({ op: 'dscp', codes: [10] })], f), false);
    assert.equal(matches(compiled, [c({ op: 'ipprecedence', value: 0xa0 })], f), true);
    const rr = ip4(A, B, udp(1, 2), { options: [7, 7, 4, 0, 0, 0, 0] });
    assert.equal(matches(compiled, [c({ op: 'ipoptions', set: 0x04, clear: 0 })], rr), true);
    assert.equal(matches(compiled, [c({ op: 'ipoptions', set: 0x04, clear: 0 })], f), false);
    assert.equal(matches(compiled, [c({ op: 'ipoptions', set: 0, clear: 0x04 })], rr), false);
    assert.equal(matches(compiled, [c({ op: 'flow-id', labels: [0x12345] })], ip6(A6, B6, udp(1, 2), { flow: 0x12345 })), true);
    assert.equal(matches(compiled, [c({ op: 'iplen', ranges: [[0, 65535]] })], ip6(A6, B6, udp(1, 2))), false, 'iplen is IPv4 only in ipfw');
  });

  test(`${mode}: layer 2: layer2 always, mac-type (VLAN is 0x8100), MAC with masks`, () => {
    assert.equal(matches(compiled, [c({ op: 'layer2' })], arp), true);
    assert.equal(matches(compiled, [c({ op: 'mac-type', ranges: [[0x8100, 0x8100]] })], vlanIp), true);
    assert.equal(matches(compiled, [c({ op: 'mac-type', ranges: [[0x0800, 0x0800]] })], vlanIp), false);
    assert.equal(matches(compiled, [c({ op: 'mac-type', ranges: [[0x0806, 0x0806]] })], arp), true);
    const mac = (dst: string, dstMask: string) => [c({ op: 'mac', dst, dstMask, src: '00:00:00:00:00:00', srcMask: '00:00:00:00:00:00' })];
    assert.equal(matches(compiled, mac('02:00:00:00:00:02', 'ff:ff:ff:ff:ff:ff'), arp), true);
    assert.equal(matches(compiled, mac('02:00:00:00:00:03', 'ff:ff:ff:ff:ff:ff'), arp), false);
    assert.equal(matches(compiled, mac('02:00:00:00:00:00', 'ff:ff:ff:ff:ff:00'), arp), true);
  });

  test(`${mode}: direction and interfaces: in/out, recv/xmit/via by name, glob, table; renames seen`, () => {
    const f = ip4(A, B, udp(1, 2));
    assert.equal(matches(compiled, [c({ op: 'in' })], f), true);
    assert.equal(matches(compiled, [c({ op: 'in' }, { neg: true })], f, { dirIn: false, xmitIf: 1 }), true);
    const recv = (name: string | null, which: 'recv' | 'xmit' | 'via' = 'recv') => [c({ op: 'iface', which, name, table: null, addr: null })];
    assert.equal(matches(compiled, recv('veth0'), f), true);
    assert.equal(matches(compiled, recv('veth1'), f), false);
    assert.equal(matches(compiled, recv('veth*'), f, { recvIf: 1 }), true);
    assert.equal(matches(compiled, recv('veth0', 'xmit'), f), false, 'xmit never matches a kipfw packet');
    assert.equal(matches(compiled, recv('veth1', 'xmit'), f, { dirIn: false, xmitIf: 1 }), true);
    assert.equal(matches(compiled, recv('veth1', 'via'), f, { dirIn: false, xmitIf: 1 }), true);
    assert.equal(matches(compiled, recv('veth0', 'via'), f), true);
    assert.equal(matches(compiled, recv(null, 'xmit'), f), false);
    assert.equal(matches(compiled, recv(null, 'recv'), f), true);
    // A rename bumps the generation: cached results are dropped.
    const names = new Names(['veth0', 'veth1']);
    const { ev } = build(config([rule(100, 'deny', 0, recv('veth0'))]), compiled, { ifaces: names });
    assert.equal(verdict(ev, f), V_DENY);
    names.rename(0, 'eth9');
    assert.equal(verdict(ev, f), V_PASS);
    // An iface table gives tablearg.
    const cfg = config([rule(100, 'pipe', 0, [c({ op: 'iface', which: 'recv', name: null, table: 'ports', addr: null })], { tablearg: true })],
      { tables: [{ name: 'ports', type: 'iface', entries: [{ key: 'veth1', value: 42 }] }] });
    const t = build(cfg, compiled);
    assert.equal(verdict(t.ev, f, { recvIf: 1 }), V_PIPE);
    assert.equal(t.ev.arg, 42);
    assert.equal(verdict(t.ev, f, { recvIf: 0 }), V_PASS);
  });

  test(`${mode}: or-blocks and not`, () => {
    const blk = [
      c({ op: 'proto', proto: 6 }),
      c({ op: 'ports', dir: 'dst', ranges: [[22, 22]] }, { or: true }),
      c({ op: 'ports', dir: 'dst', ranges: [[80, 80]] }, { or: true }),
      c({ op: 'ip-addr', dir: 'src', list: [addr4('10.0.0.0/8')] }),
    ];
    assert.equal(matches(compiled, blk, ip4(A, B, tcp(1, 22))), true);
    assert.equal(matches(compiled, blk, ip4(A, B, tcp(1, 80))), true);
    assert.equal(matches(compiled, blk, ip4(A, B, tcp(1, 443))), false);
    assert.equal(matches(compiled, blk, ip4('10.1.1.1', B, tcp(1, 443))), true);
    assert.equal(matches(compiled, blk, ip4('10.1.1.1', B, udp(1, 443))), false);
    const notIn = [c({ op: 'proto', proto: 17 }, { neg: true }), c({ op: 'ports', dir: 'dst', ranges: [[22, 22]] }, { neg: true, or: true }), c({ op: 'ip4' })];
    assert.equal(matches(compiled, notIn, ip4(A, B, udp(1, 22))), false, 'UDP to 22: both members of `{ not udp or not dst-port 22 }` fail, then ip4 is not reached');
  });

  test(`${mode}: pullup failures deny before any rule; bad IHL keeps addresses, drops L4`, () => {
    const allow = config([rule(100, 'allow', 0, [])], { defaultAccept: false });
    const { ev } = build(allow, compiled);
    const full = ip4(A, B, tcp(1, 80));
    assert.equal(verdict(ev, full), V_PASS);
    assert.equal(verdict(ev, full.subarray(0, 14 + 20 + 19)), V_DENY, 'TCP header cut short');
    assert.equal(ev.ruleIndex, -1);
    assert.equal(verdict(ev, ip4(A, B, udp(1, 2)).subarray(0, 14 + 20 + 7)), V_DENY);
    assert.equal(verdict(ev, ip4(A, B, { kind: 'icmp', type: 8 }).subarray(0, 14 + 20 + 3)), V_DENY);
    assert.equal(verdict(ev, ip6(A6, B6, tcp(1, 2)).subarray(0, 14 + 40 + 10)), V_DENY);
    assert.equal(verdict(ev, full.subarray(0, 14 + 19)), V_PASS, 'shorter than an IPv4 header: not IP');
    const badIhl = ip4(A, B, tcp(1, 80), { ihl: 4 });
    assert.equal(matches(compiled, [c({ op: 'ip-addr', dir: 'src', list: [addr4(A)] })], badIhl), true);
    assert.equal(matches(compiled, [c({ op: 'ports', dir: 'dst', ranges: [[80, 80]] })], badIhl), false);
    const longIhl = ip4(A, B, tcp(1, 80), { ihl: 15 });
    assert.equal(matches(compiled, [c({ op: 'proto', proto: 6 })], longIhl), true);
    assert.equal(matches(compiled, [c({ op: 'tcpflags', set: 2, clear: 0 })], longIhl), false);
  });

  test(`${mode}: actions: reject/unreach/reset codes and when ipfw sends them`, () => {
    const one = (kind: 'reject' | 'unreach' | 'reset' | 'unreach6' | 'reset6', arg: number, f: Uint8Array) => {
      const { ev } = build(config([rule(100, kind, arg, [])]), compiled);
      const v = verdict(ev, f);
      return [v, ev.arg];
    };
    assert.deepEqual(one('reject', 1, ip4(A, B, udp(1, 2))), [V_REJECT, 1]);
    assert.deepEqual(one('unreach', 3, ip4(A, B, udp(1, 2))), [V_REJECT, 3]);
    assert.deepEqual(one('reject', 1, ip4(A, B, { kind: 'icmp', type: 0 })), [V_DENY, 0], 'no error about an ICMP reply');
    assert.deepEqual(one('reject', 1, ip4(A, B, { kind: 'icmp', type: 8 })), [V_REJECT, 1], 'an echo request may get one');
    assert.deepEqual(one('reject', 1, ip4(A, '224.0.0.5', udp(1, 2))), [V_DENY, 0], 'not to multicast');
    assert.deepEqual(one('reject', 1, ip4(A, B, udp(1, 2), { dstMac: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] })), [V_DENY, 0], 'not to broadcast');
    assert.deepEqual(one('reject', 1, ip4(A, B, udp(1, 2), { fragOffset: 8 })), [V_DENY, 0]);
    assert.deepEqual(one('reject', 1, ip6(A6, B6, udp(1, 2))), [V_REJECT, 3], 'host unreachable → ICMPv6 address unreachable');
    assert.deepEqual(one('unreach', 3, ip6(A6, B6, udp(1, 2))), [V_REJECT, 4], 'port → ICMPv6 port unreachable');
    assert.deepEqual(one('unreach6', 4, ip6(A6, B6, udp(1, 2))), [V_REJECT, 4]);
    assert.deepEqual(one('unreach6', 4, ip4(A, B, udp(1, 2))), [V_DENY, 0]);
    assert.deepEqual(one('reset', 0, ip4(A, B, tcp(1, 2))), [V_RESET, 0]);
    assert.deepEqual(one('reset', 0, ip4(A, B, tcp(1, 2, TH.RST))), [V_DENY, 0], 'no RST for a RST');
    assert.deepEqual(one('reset', 0, ip4(A, B, udp(1, 2))), [V_DENY, 0]);
    assert.deepEqual(one('reset', 0, ip6(A6, B6, tcp(1, 2))), [V_RESET, 0]);
    assert.deepEqual(one('reset6', 0, ip4(A, B, tcp(1, 2))), [V_DENY, 0]);
    assert.deepEqual(one('reject', 1, arp), [V_DENY, 0]);
  });

  test(`${mode}: count, skipto (never backwards), call/return, disabled sets, counters`, () => {
    const cfg = config([
      rule(100, 'count', 0, []),
      rule(200, 'skipto', 400, [c({ op: 'proto', proto: 6 })]),
      rule(300, 'deny', 0, []),
      rule(400, 'call', 1000, [c({ op: 'proto', proto: 6 })]),
      rule(500, 'skipto', 100, [c({ op: 'proto', proto: 6 })]), // backwards: goes to 600
      rule(600, 'deny', 0, [], { set: 3 }),
      rule(700, 'pipe', 7, []),
      rule(1000, 'count', 0, []),
      rule(1100, 'return', 0, []),
      rule(1200, 'deny', 0, []),
    ], { disabledSets: 1 << 3 });
    const { ev, shared } = build(cfg, compiled);
    const f = ip4(A, B, tcp(1, 2));
    for (let i = 0; i < 5; i++) assert.equal(verdict(ev, f), V_PIPE);
    assert.equal(ev.arg, 7);
    assert.equal(cfg.rules[ev.ruleIndex]!.number, 700);
    const counts = cfg.rules.map((r) => [r.number, shared.counters.read(r.slot).packets]);
    assert.deepEqual(counts, [[100, 5], [200, 5], [300, 0], [400, 5], [500, 5], [600, 0], [700, 5], [1000, 5], [1100, 5], [1200, 0], [65535, 0]]);
    assert.equal(shared.counters.read(cfg.rules[0]!.slot).bytes, 5 * 40);
    assert.equal(verdict(ev, ip4(A, B, udp(1, 2))), V_DENY);
    assert.equal(cfg.rules[ev.ruleIndex]!.number, 300);
    // return with an empty stack goes on with the next rule, uncounted.
    const r2 = config([rule(100, 'return', 0, []), rule(200, 'deny', 0, [])]);
    const t = build(r2, compiled);
    assert.equal(verdict(t.ev, f), V_DENY);
    assert.equal(t.shared.counters.read(r2.rules[0]!.slot).packets, 0);
  });

  test(`${mode}: tags, prob, tablearg, tables with longest-prefix match and values`, () => {
    const cfg = config([
      rule(100, 'count', 0, [c({ op: 'proto', proto: 17 })], { tag: { untag: false, value: 5, tablearg: false } }),
      rule(200, 'deny', 0, [c({ op: 'tagged', ranges: [[4, 6]] })]),
      rule(300, 'skipto', 0, [c({ op: 'table', dir: 'dst', table: 'T', value: null })], { tablearg: true }),
      rule(400, 'deny', 0, []),
      rule(500, 'pipe', 0, [c({ op: 'lookup', key: 'dst-port', table: 'P' })], { tablearg: true }),
      rule(600, 'allow', 0, [c({ op: 'table', dir: 'src', table: 'T', value: 650 })]),
      rule(700, 'reset', 0, []),
    ], {
      tables: [
        { name: 'T', type: 'addr', entries: [{ key: '198.18.0.0/16', value: 500 }, { key: '198.18.1.0/24', value: 600 }, { key: '198.18.1.2/32', value: 650 }, { key: '2001:db8::/32', value: 600 }] },
        { name: 'P', type: 'number', entries: [{ key: '80', value: 9 }] },
      ],
    });
    const { ev } = build(cfg, compiled);
    assert.equal(verdict(ev, ip4(A, B, udp(1, 80))), V_DENY);
    assert.equal(cfg.rules[ev.ruleIndex]!.number, 200, 'tag 5 from rule 100 seen by tagged 4-6');
    assert.equal(verdict(ev, ip4(A, '198.18.2.9', tcp(1, 80))), V_PIPE, '/16 value 500: skipto 500, dst-port 80 → pipe 9');
    assert.equal(ev.arg, 9);
    assert.equal(verdict(ev, ip4(A, '198.18.1.77', tcp(1, 81))), V_RESET, '/24 value 600: skipto 600; src is /16 (500), not 650');
    assert.equal(verdict(ev, ip4(A, B, tcp(1, 81))), V_RESET, '/32 value 650: skipto 650 lands on 700');
    assert.equal(cfg.rules[ev.ruleIndex]!.number, 700);
    assert.equal(verdict(ev, ip4(B, '198.18.1.77', tcp(1, 81))), V_PASS, 'dst /24: skipto 600; src /32 value 650 matches table(T,650)');
    assert.equal(cfg.rules[ev.ruleIndex]!.number, 600);
    assert.equal(verdict(ev, ip4(A, '10.0.0.1', tcp(1, 81))), V_DENY, 'no table entry: rule 400');
    assert.equal(verdict(ev, ip6(A6, '2001:db8::99', tcp(1, 81))), V_RESET, 'IPv6 prefix: value 600');
    // prob: about half of 2000 packets.
    const pcfg = config([rule(100, 'deny', 0, [], { prob: 0.5 })]);
    const pr = build(pcfg, compiled, { seed: 99 });
    let denied = 0;
    for (let i = 0; i < 2000; i++) if (verdict(pr.ev, ip4(A, B, udp(1, 2))) === V_DENY) denied++;
    assert.ok(denied > 850 && denied < 1150, `prob 0.5 denied ${denied} of 2000`);
  });

  test(`${mode}: tablearg survives skipto and call (ipfw re-enters its inner loop), not a fall-through`, () => {
    const cfg = config([
      rule(100, 'skipto', 300, [c({ op: 'table', dir: 'dst', table: 'T', value: null })]),
      rule(200, 'deny', 0, []),
      rule(300, 'pipe', 0, [c({ op: 'proto', proto: 17 })], { tablearg: true }),
      rule(400, 'queue', 0, [], { tablearg: true }),
    ], { tables: [{ name: 'T', type: 'addr', entries: [{ key: '198.18.1.0/24', value: 77 }] }] });
    for (const chunkRules of [undefined, 1, 2]) {
      const { ev } = build(cfg, compiled, { chunkRules });
      assert.equal(verdict(ev, ip4(A, B, udp(1, 2))), V_PIPE);
      assert.equal(ev.arg, 77, 'the value found by rule 100 reaches rule 300 through the skipto');
      assert.equal(verdict(ev, ip4(A, B, tcp(1, 2))), 5);
      assert.equal(ev.arg, 0, 'falling from 300 to 400 resets tablearg');
    }
  });

  test(`${mode}: lookup keys: src-ip, dscp, rulenum, src-port; uid never matches; VALE output path`, () => {
    const cfg = config([
      rule(100, 'pipe', 0, [c({ op: 'lookup', key: 'src-port', table: 'N' })], { tablearg: true }),
      rule(200, 'queue', 0, [c({ op: 'lookup', key: 'dscp', table: 'N' })], { tablearg: true }),
      rule(300, 'pipe', 0, [c({ op: 'lookup', key: 'rulenum', table: 'N' })], { tablearg: true }),
      rule(400, 'deny', 0, [c({ op: 'lookup', key: 'uid', table: 'N' })]),
      rule(500, 'reset', 0, [c({ op: 'lookup', key: 'src-ip', table: 'T' }), c({ op: 'iface', which: 'xmit', name: 'valeA:p0', table: null, addr: null })]),
    ], { tables: [
      { name: 'N', type: 'number', entries: [{ key: '5353', value: 1 }, { key: '46', value: 2 }, { key: '300', value: 3 }] },
      { name: 'T', type: 'addr', entries: [{ key: '198.18.0.0/16', value: 0 }] },
    ] });
    const { ev } = build(cfg, compiled);
    assert.equal(verdict(ev, ip4(A, B, udp(5353, 9))), V_PIPE); assert.equal(ev.arg, 1);
    assert.equal(verdict(ev, ip4(A, B, udp(1, 9), { tos: 46 << 2 })), 5); assert.equal(ev.arg, 2);
    assert.equal(verdict(ev, ip4(A, B, udp(1, 9))), V_PIPE); assert.equal(ev.arg, 3, 'rulenum 300 is in N');
    const vale = { dirIn: false, recvIf: 0, xmitIf: 2 };
    assert.equal(verdict(ev, ip4(A, B, tcp(1, 9)), vale), V_PIPE, 'rule 300 still first');
    const cfg2 = config([cfg.rules[3]!, cfg.rules[4]!].map((r) => ({ ...r, slot: -1 })), { tables: cfg.tables });
    const t = build(cfg2, compiled);
    assert.equal(verdict(t.ev, ip4(A, B, tcp(1, 9)), vale), V_RESET, 'xmit valeA:p0 on the output path');
    assert.equal(verdict(t.ev, ip4(A, B, tcp(1, 9))), V_PASS, 'kipfw path: no output interface');
  });

  test(`${mode}: truncated IPv6 extension headers and an unknown upper layer`, () => {
    const { ev } = build(config([rule(100, 'allow', 0, [])], { defaultAccept: false }), compiled);
    const withHbh = ip6(A6, B6, udp(1, 2), { ext: [{ type: 0 }] });
    assert.equal(verdict(ev, withHbh), V_PASS);
    assert.equal(verdict(ev, withHbh.subarray(0, 14 + 40 + 1)), V_DENY, 'hop-by-hop header cut: pullup failed');
    const gre = ip6(A6, B6, { kind: 'raw', proto: 47, payload: 0 });
    assert.equal(verdict(ev, gre), V_DENY, 'an empty unknown upper layer fails its 2-byte pullup, as ipfw');
    assert.equal(verdict(ev, ip6(A6, B6, { kind: 'raw', proto: 47, payload: 4 })), V_PASS);
    assert.equal(verdict(ev, ip6(A6, B6, { kind: 'raw', proto: 59, payload: 0 })), V_PASS, 'no next header');
  });

  test(`${mode}: setdscp rewrites DSCP, keeps ECN, fixes the IPv4 checksum, and goes on`, () => {
    const cfg = config([rule(100, 'setdscp', 46, []), rule(200, 'deny', 0, [c({ op: 'dscp', codes: [46] })])]);
    const { ev, shared } = build(cfg, compiled);
    const f = ip4(A, B, udp(1, 2), { tos: 0x03 });
    assert.equal(verdict(ev, f), V_DENY);
    assert.equal(cfg.rules[ev.ruleIndex]!.number, 200);
    assert.equal(f[15], (46 << 2) | 3);
    assert.equal(ipv4Checksum(f), 0, 'header checksum still verifies');
    const g = ip6(A6, B6, udp(1, 2), { tclass: 0x01 });
    verdict(ev, g);
    const p = new PacketInfo(); p.decode(g, 0, g.length);
    assert.equal(p.tos, (46 << 2) | 1);
    assert.equal(verdict(ev, arp), V_PASS);
    assert.equal(shared.counters.read(cfg.rules[0]!.slot).packets, 2, 'non-IP frames are not counted by setdscp');
  });

  test(`${mode}: resume after a pipe rule continues with the next rule`, () => {
    const cfg = config([rule(100, 'pipe', 1, []), rule(200, 'queue', 2, []), rule(300, 'deny', 0, [])]);
    const { ev } = build(cfg, compiled);
    const f = ip4(A, B, udp(1, 2));
    assert.equal(verdict(ev, f), V_PIPE);
    const after = ev.ruleIndex;
    assert.equal(ev.resume(f, 0, f.length, true, 0, -1, 1_000_000, after), 5);
    assert.equal(ev.arg, 2);
    assert.equal(ev.resume(f, 0, f.length, true, 0, -1, 1_000_000, ev.ruleIndex), V_DENY);
  });
}
