/**
 * CLI round trips: `add` of about 130 rules echoes, and `list` prints, FreeBSD 2014 ipfw's
 * canonical text. The expected strings were derived by hand from ipfw2.c's printer
 * (show_static_rule, show_prerequisites, print_ip, print_newports, print_flags...), not by running
 * this code: aliases collapse (accept → allow, drop → deny, estab → established), masks are
 * applied (10.1.2.3/8 → 10.0.0.0/8), positional destination ports print as `dst-port`, ports and
 * protocols print as numbers/official names, and ipfw's own quirks are kept (flow-id's trailing
 * blank, the address printed again after `:` for a non-contiguous mask).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand, emptyConfig, type CommandResult } from '../../src/firewall/commands.js';
import type { FirewallConfig } from '../../src/firewall/rule.js';
import { FakeAccess } from './fake-access.js';

const CASES: ReadonlyArray<readonly [string, string]> = [
  // actions and their aliases
  ['allow ip from any to any', 'allow ip from any to any'],
  ['accept ip from any to any', 'allow ip from any to any'],
  ['pass all from any to any', 'allow ip from any to any'],
  ['permit ip from any to any', 'allow ip from any to any'],
  ['drop ip from any to any', 'deny ip from any to any'],
  ['deny tcp from any to any', 'deny tcp from any to any'],
  ['reject udp from any to any', 'reject udp from any to any'],
  ['unreach host ip from any to any', 'reject ip from any to any'],
  ['unreach port udp from any to any', 'unreach port udp from any to any'],
  ['unreach 3 udp from any to any', 'unreach port udp from any to any'],
  ['unreach 99 ip from any to any', 'unreach 99 ip from any to any'],
  ['unreach filter-prohib ip from any to any', 'unreach filter-prohib ip from any to any'],
  ['unreach6 admin-prohib ip6 from any to any', 'unreach6 admin-prohib ip6 from any to any'],
  ['reset tcp from any to any', 'reset tcp from any to any'],
  ['reset6 tcp from any to any', 'reset6 tcp from any to any'],
  ['count ip from any to any', 'count ip from any to any'],
  ['skipto 1000 ip from any to any', 'skipto 1000 ip from any to any'],
  ['skipto tablearg ip from any to any lookup dst-ip T', 'skipto tablearg ip from any to any lookup dst-ip T'],
  ['call 500 ip from any to any', 'call 500 ip from any to any'],
  ['return ip from any to any', 'return ip from any to any'],
  ['check-state', 'check-state'],
  ['check-state :web', 'check-state :web'],
  ['setdscp ef ip from any to any', 'setdscp ef ip from any to any'],
  ['setdscp 10 ip from any to any', 'setdscp af11 ip from any to any'],
  ['setdscp 0 ip from any to any', 'setdscp be ip from any to any'],
  ['setdscp 1 ip from any to any', 'setdscp 1 ip from any to any'],
  ['pipe 1 ip from any to any', 'pipe 1 ip from any to any'],
  ['queue 2 tcp from any to any', 'queue 2 tcp from any to any'],
  // action modifiers
  ['allow log ip from any to any', 'allow log ip from any to any'],
  ['allow log logamount 10 ip from any to any', 'allow log logamount 10 ip from any to any'],
  ['allow tag 5 ip from any to any', 'allow tag 5 ip from any to any'],
  ['count untag 7 ip from any to any', 'count untag 7 ip from any to any'],
  ['allow log tag tablearg ip from any to any', 'allow log tag tablearg ip from any to any'],
  ['prob 0.5 allow ip from any to any', 'prob 0.500000 allow ip from any to any'],
  ['prob 0.25 count ip from any to any', 'prob 0.250000 count ip from any to any'],
  ['set 3 allow ip from any to any', 'allow ip from any to any'],
  // protocols
  ['allow ip4 from any to any', 'allow ip4 from any to any'],
  ['allow ipv4 from any to any', 'allow ip4 from any to any'],
  ['allow ipv6 from any to any', 'allow ip6 from any to any'],
  ['allow ip6 from any to any', 'allow ip6 from any to any'],
  ['allow 6 from any to any', 'allow tcp from any to any'],
  ['allow 253 from any to any', 'allow 253 from any to any'],
  ['allow sctp from any to any', 'allow sctp from any to any'],
  ['allow icmp from any to any icmptypes 8,0', 'allow icmp from any to any icmptypes 0,8'],
  ['allow { tcp or udp } from any to any', 'allow { tcp or udp } from any to any'],
  ['allow not tcp from any to any', 'allow not tcp from any to any'],
  // ports
  ['allow tcp from any to any 80', 'allow tcp from any to any dst-port 80'],
  ['allow tcp from any 1024-65535 to any 80,443', 'allow tcp from any 1024-65535 to any dst-port 80,443'],
  ['allow tcp from any to any http', 'allow tcp from any to any dst-port 80'],
  ['allow udp from any domain to any', 'allow udp from any 53 to any'],
  ['allow tcp from any to any ftp\\-data', 'allow tcp from any to any dst-port 20'],
  ['allow tcp from any to any not 22', 'allow tcp from any to any not dst-port 22'],
  ['allow tcp from any 0x50 to any', 'allow tcp from any 80 to any'],
  ['allow tcp from any to any dst-port 80', 'allow tcp from any to any dst-port 80'],
  ['allow tcp from any to any src-port 53', 'allow tcp from any 53 to any'],
  ['deny ip from any to any dst-port 80', 'deny ip from any to any dst-port 80'],
  // IPv4 addresses
  ['allow ip from 10.0.0.1 to 10.0.0.2', 'allow ip from 10.0.0.1 to 10.0.0.2'],
  ['allow ip from 10.1.2.3/8 to any', 'allow ip from 10.0.0.0/8 to any'],
  ['allow ip from 10.0.0.0/0 to any', 'allow ip from any to any'],
  ['allow ip from 10.0.0.1:255.255.255.0 to any', 'allow ip from 10.0.0.0/24 to any'],
  ['allow ip from 10.0.0.1:255.0.255.0 to any', 'allow ip from 10.0.0.0:10.0.0.0 to any'],
  ['allow ip from 1.2.3.4,5.6.7.0/24 to any', 'allow ip from 1.2.3.4,5.6.7.0/24 to any'],
  ['allow ip from 1.2.3.0/24{1,2,3,4,10} to any', 'allow ip from 1.2.3.0/24{1-4,10} to any'],
  ['allow ip from 1.2.3.4/28{1,2,5} to any', 'allow ip from 1.2.3.0/28{1,2,5} to any'],
  ['allow ip from 1.2.3.0{5,6,7} to any', 'allow ip from 1.2.3.0/24{5-7} to any'],
  ['allow ip from not 1.2.3.4 to any', 'allow ip from not 1.2.3.4 to any'],
  ['allow ip from { 1.2.3.4 or 5.6.7.8 } to any', 'allow ip from { 1.2.3.4 or 5.6.7.8 } to any'],
  ['allow ip from any to { 1.2.3.4 or not 5.6.7.8 }', 'allow ip from any to { 1.2.3.4 or not 5.6.7.8 }'],
  ['allow ip from me to any', 'allow ip from me to any'],
  ['allow ip from any to me6', 'allow ip from any to me6'],
  ['allow ip from table(blocked) to any', 'allow ip from table(blocked) to any'],
  ['deny ip from any to table(t,5)', 'deny ip from any to table(t,5)'],
  ['allow ip from localhost to any', 'allow ip from 127.0.0.1 to any'],
  ['allow ip from 10 to any', 'allow ip from 0.0.0.10 to any'],
  // IPv6 addresses
  ['allow ip from 2001:db8::/32 to any', 'allow ip from 2001:db8::/32 to any'],
  ['allow ip from 2001:DB8:0:0:0:0:0:1 to any', 'allow ip from 2001:db8::1 to any'],
  ['allow ip from 2001:db8::1/64 to any', 'allow ip from 2001:db8::/64 to any'],
  ['allow ip from ::ffff:10.0.0.1 to any', 'allow ip from ::ffff:10.0.0.1 to any'],
  ['allow ip from :: to any', 'allow ip from :: to any'],
  ['allow ip from ::1,fe80::/10 to any', 'allow ip from ::1,fe80::/10 to any'],
  ['allow ip from 1:0:0:2:0:0:0:3 to any', 'allow ip from 1:0:0:2::3 to any'],
  ['allow ip6 from me to any', 'allow ip6 from me6 to any'],
  ['allow ip from any to any src-ip6 2001:db8::1', 'allow ip from any to any src-ip6 2001:db8::1'],
  // direction and interfaces
  ['allow ip from any to any in', 'allow ip from any to any in'],
  ['allow ip from any to any out', 'allow ip from any to any out'],
  ['allow ip from any to any not in', 'allow ip from any to any out'],
  ['allow ip from any to any not out', 'allow ip from any to any in'],
  ['allow ip from any to any recv veth0', 'allow ip from any to any recv veth0'],
  ['allow ip from any to any xmit veth*', 'allow ip from any to any xmit veth*'],
  ['allow ip from any to any via any', 'allow ip from any to any'],
  ['allow ip from any to any via 198.18.0.1', 'allow ip from any to any via 198.18.0.1'],
  ['allow ip from any to any recv table(ifs)', 'allow ip from any to any recv table(ifs)'],
  ['allow ip from any to any recv netmap:averyverylongname', 'allow ip from any to any recv netmap:averyver'],
  ['allow ip from any to any { recv a or recv b }', 'allow ip from any to any { recv a or recv b }'],
  // layer 2
  ['allow ip from any to any layer2', 'allow ip from any to any layer2'],
  ['allow ip from any to any bridged', 'allow ip from any to any layer2'],
  ['allow ip from any to any MAC any 00:11:22:33:44:55', 'allow ip from any to any MAC any 00:11:22:33:44:55'],
  ['allow ip from any to any MAC 01:00:5e:7f:00:00/25 any', 'allow ip from any to any MAC 01:00:5e:00:00:00/25 any'],
  ['allow ip from any to any mac 00:11:22:33:44:55&ff:00:ff:00:ff:00 any', 'allow ip from any to any MAC 00:00:22:00:44:00&ff:00:ff:00:ff:00 any'],
  ['allow ip from any to any mac-type arp', 'allow ip from any to any mac-type 0x0806'],
  ['allow ip from any to any mac-type 0x800-0x86dd,vlan', 'allow ip from any to any mac-type 0x0800-0x86dd,0x8100'],
  // TCP
  ['allow tcp from any to any setup', 'allow tcp from any to any setup'],
  ['allow tcp from any to any tcpflags syn,!ack', 'allow tcp from any to any setup'],
  ['allow tcp from any to any tcpflags fin,syn,rst,psh,ack,urg', 'allow tcp from any to any tcpflags syn,fin,ack,psh,rst,urg'],
  ['allow tcp from any to any tcpflags !fin,syn', 'allow tcp from any to any tcpflags syn,!fin'],
  ['allow tcp from any to any established', 'allow tcp from any to any established'],
  ['allow tcp from any to any estab', 'allow tcp from any to any established'],
  ['allow tcp from any to any tcpoptions !mss,window,timestamp', 'allow tcp from any to any tcpoptions !mss,window,ts'],
  ['allow tcp from any to any tcpseq 100 tcpack 3000000000', 'allow tcp from any to any tcpseq 100 tcpack -1294967296'],
  ['allow tcp from any to any tcpwin 512-1024 tcpdatalen 0', 'allow tcp from any to any tcpwin 512-1024 tcpdatalen 0'],
  // IP header
  ['allow ip from any to any iplen 20-40,1500', 'allow ip from any to any iplen 20-40,1500'],
  ['allow ip from any to any ipttl 1', 'allow ip from any to any ipttl 1'],
  ['allow ip from any to any ipid 0x10', 'allow ip from any to any ipid 16'],
  ['allow ip from any to any iptos lowdelay,!throughput', 'allow ip from any to any iptos lowdelay,!throughput'],
  ['allow ip from any to any dscp af43,cs1,63', 'allow ip from any to any dscp cs1,af43,63'],
  ['allow ip from any to any ipversion 4', 'allow ip from any to any ipver 4'],
  ['allow ip from any to any ipprecedence 7', 'allow ip from any to any ipprecedence 7'],
  ['allow ip from any to any ipoptions lsrr,ssrr,!rr', 'allow ip from any to any ipoptions ssrr,lsrr,!rr'],
  ['allow ip from any to any frag', 'allow ip from any to any frag'],
  ['allow ip from any to any not frag', 'allow ip from any to any not frag'],
  ['allow ip from any to any !fragment', 'allow ip from any to any not frag'],
  ['allow ip from any to any icmptypes 0,3,8,11', 'allow ip from any to any icmptypes 0,3,8,11'],
  // IPv6 options (flow-id keeps ipfw's trailing blank and, as ipfw, swallows the head)
  ['allow ip6 from any to any flow-id 1,2', 'allow flow-id 1,2 '],
  ['allow ip6 from any to any ext6hdr frag,esp', 'allow ip6 from any to any extension header: fragmentation,encapsulated security payload'],
  ['allow ipv6-icmp from any to any icmp6types 135,136', 'allow ipv6-icmp from any to any ip6 icmp6types 135,136'],
  ['allow ip from any to any ip4', 'allow ip4 from any to any'],
  ['allow ip from any to any not ip6', 'allow ip from any to any not ip6'],
  // tags, states, lookups
  ['allow ip from any to any tagged 5', 'allow ip from any to any tagged 5'],
  ['allow ip from any to any tagged 1-3,7', 'allow ip from any to any tagged 1-3,7'],
  ['allow tcp from any to any keep-state', 'allow tcp from any to any keep-state'],
  ['allow tcp from any to any keep-state :web', 'allow tcp from any to any keep-state :web'],
  ['allow udp from any to any record-state', 'allow udp from any to any record-state'],
  ['allow tcp from any to any limit src-addr 10', 'allow tcp from any to any limit src-addr 10'],
  ['allow tcp from any to any limit src-addr dst-port 5 :lim', 'allow tcp from any to any limit src-addr,dst-port 5 :lim'],
  ['allow tcp from any to any limit all 3', 'allow tcp from any to any limit all 3'],
  ['allow ip from any to any lookup src-port ports', 'allow ip from any to any lookup src-port ports'],
  ['allow ip from any to any lookup dscp d', 'allow ip from any to any lookup dscp d'],
  // options folded into the head, and kept as options after `ip from any to any`
  ['allow ip from any to any src-ip 1.2.3.4', 'allow ip from any to any src-ip 1.2.3.4'],
  ['allow tcp from any to any src-ip 1.2.3.4', 'allow tcp from 1.2.3.4 to any'],
  ['allow ip from any to any proto udp', 'allow ip from any to any proto udp'],
  ['allow ip from any to any dst-ip 10.0.0.0/8', 'allow ip from any to any dst-ip 10.0.0.0/8'],
  // comments
  ['count // just a comment', 'count ip from any to any // just a comment'],
  ['// only comment', 'count ip from any to any // only comment'],
  ['allow tcp from any to any 22 // ssh in', 'allow tcp from any to any dst-port 22 // ssh in'],
  // whole rules
  ['allow ip from 1.2.3.4 to any in recv veth0 keep-state // c', 'allow ip from 1.2.3.4 to any in recv veth0 keep-state // c'],
  ['allow tcp from 198.18.0.0/15 1-1023 to 198.18.0.0/15 not 1-1023 setup keep-state',
    'allow tcp from 198.18.0.0/15 1-1023 to 198.18.0.0/15 not dst-port 1-1023 setup keep-state'],
  ['deny log logamount 5 tcp from { 198.18.0.1 or 198.18.0.2 } to 198.19.0.0/16 80,8080 in recv veth1 tcpflags syn,!ack',
    'deny log logamount 5 tcp from { 198.18.0.1 or 198.18.0.2 } to 198.19.0.0/16 dst-port 80,8080 in recv veth1 setup'],
  ['skipto 65534 ip from any to any', 'skipto 65534 ip from any to any'],
];

function fresh(): { config: FirewallConfig; access: FakeAccess } {
  return { config: emptyConfig(true), access: new FakeAccess() };
}

function ok(r: CommandResult): CommandResult {
  assert.equal(r.status, 0, `status ${r.status}: ${r.stderr}`);
  return r;
}

test(`add echoes, and list prints, ipfw's canonical form (${CASES.length} rules)`, () => {
  for (const [input, expected] of CASES) {
    const { config, access } = fresh();
    const added = ok(runCommand(['add', input], config, access));
    assert.equal(added.stdout, `00100 ${expected}\n`, `add ${input}`);
    const listed = ok(runCommand(['list'], added.config, access));
    assert.equal(listed.stdout, `00100 ${expected}\n65535 allow ip from any to any\n`, `list after add ${input}`);
  }
});

test('the canonical form reads back to itself (what list prints, add accepts unchanged)', () => {
  // Rules whose ipfw listing is not valid input (flow-id without its head, limit masks joined by
  // commas, the address printed for a non-contiguous mask) are left out, as on FreeBSD.
  const unparsable = /flow-id|limit src-addr,|:10\.0\.0\.0|extension header|ip6 icmp6types/;
  for (const [, expected] of CASES) {
    if (unparsable.test(expected)) continue;
    const { config, access } = fresh();
    const again = ok(runCommand(['add', expected], config, access));
    assert.equal(again.stdout, `00100 ${expected}\n`, `re-add ${expected}`);
  }
});

test('argv as separate words, glued at trailing commas, or as one string give the same rule', () => {
  const { config, access } = fresh();
  const words = ok(runCommand(['-q', 'add', '200', 'allow', 'tcp', 'from', '1.2.3.4,', '5.6.7.8', 'to', 'any', '80'], config, access));
  assert.equal(words.stdout, '');
  const one = ok(runCommand(['add', '200 allow tcp from 1.2.3.4, 5.6.7.8 to any 80'], config, access));
  assert.equal(one.stdout, '00200 allow tcp from 1.2.3.4,5.6.7.8 to any dst-port 80\n');
  const listed = ok(runCommand(['list', '200'], words.config, access));
  assert.equal(listed.stdout, one.stdout);
  const swapped = ok(runCommand(['200', 'add', 'deny', 'ip', 'from', 'any', 'to', 'any'], config, access));
  assert.equal(swapped.stdout, '00200 deny ip from any to any\n');
  const commented = ok(runCommand(['add deny ip from any to any # not part of the rule'], config, access));
  assert.equal(commented.stdout, '00100 deny ip from any to any\n');
});

test('rule numbers: autoincrement from the last rule, shared numbers keep insertion order', () => {
  let { config } = fresh();
  const { access } = fresh();
  const add = (text: string): string => {
    const r = ok(runCommand(['add', text], config, access));
    config = r.config;
    return r.stdout;
  };
  assert.equal(add('allow ip from any to any'), '00100 allow ip from any to any\n');
  assert.equal(add('500 count ip from any to any'), '00500 count ip from any to any\n');
  assert.equal(add('deny tcp from any to any'), '00600 deny tcp from any to any\n');
  assert.equal(add('500 deny udp from any to any'), '00500 deny udp from any to any\n');
  assert.equal(add('65534 count ip from any to any'), '65534 count ip from any to any\n');
  // last + step would pass 65535: the last number is reused
  assert.equal(add('allow icmp from any to any'), '65534 allow icmp from any to any\n');
  const list = ok(runCommand(['list'], config, access)).stdout.split('\n');
  assert.deepEqual(list.map((l) => l.slice(0, 17)), [
    '00100 allow ip fr', '00500 count ip fr', '00500 deny udp fr', '00600 deny tcp fr',
    '65534 count ip fr', '65534 allow icmp ', '65535 allow ip fr', '']);
  // slots are unique, 1.., and each new rule's counters were zeroed when it got its slot
  const slots = config.rules.map((r) => r.slot).sort((a, b) => a - b);
  assert.deepEqual(slots, [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(access.calls.filter((c) => c.startsWith('zero')), ['zero 1', 'zero 2', 'zero 3', 'zero 4', 'zero 5', 'zero 6']);
  // the step is a setting
  const stepped = { ...emptyConfig(false), settings: { ...emptyConfig(false).settings, autoincStep: 10 } };
  const r = ok(runCommand(['add', 'allow ip from any to any'], stepped, access));
  assert.equal(r.stdout, '00010 allow ip from any to any\n');
  assert.equal(ok(runCommand(['list'], r.config, access)).stdout, '00010 allow ip from any to any\n65535 deny ip from any to any\n');
});

test('-c -N -S listing flags', () => {
  const { config, access } = fresh();
  assert.equal(ok(runCommand(['-c', 'add', 'allow ip from any to any in'], config, access)).stdout, '00100 allow in\n');
  assert.equal(ok(runCommand(['-c', 'add', 'allow ip from any to any'], config, access)).stdout, '00100 allow ip from any to any\n');
  assert.equal(ok(runCommand(['-c', 'add', '// note'], config, access)).stdout, '00100 count // note\n');
  assert.equal(ok(runCommand(['-N', 'add', 'allow tcp from 127.0.0.1 to any 80,22'], config, access)).stdout,
    '00100 allow tcp from localhost to any dst-port http,ssh\n');
  assert.equal(ok(runCommand(['-N', 'add', 'allow ip from any to any mac-type 0x0806,0x1234'], config, access)).stdout,
    '00100 allow ip from any to any mac-type arp,0x1234\n');
  assert.equal(ok(runCommand(['-S', 'add', 'set 5 allow ip from any to any'], config, access)).stdout,
    '00100 set 5 allow ip from any to any\n');
});

test('show: counter columns as wide as the widest value among listed rules', () => {
  let { config } = fresh();
  const access = new FakeAccess();
  for (const text of ['100 allow icmp from any to any', '200 deny tcp from any to any 22 in']) {
    config = ok(runCommand(['add', text], config, access)).config;
  }
  const slot = (n: number): number => config.rules.find((r) => r.number === n)!.slot;
  access.set(slot(100), 10, 840);
  access.set(slot(200), 0, 0);
  access.set(0, 123, 45678);
  assert.equal(ok(runCommand(['show'], config, access)).stdout,
    '00100  10   840 allow icmp from any to any\n' +
    '00200   0     0 deny tcp from any to any dst-port 22 in\n' +
    '65535 123 45678 allow ip from any to any\n');
  // show N: the widths come from the rules the kernel returns for the range, which runs up to the
  // first rule past it (here 200 with its 4-digit count), not from all rules
  access.set(slot(200), 1000, 0);
  assert.equal(ok(runCommand(['show', '100'], config, access)).stdout, '00100   10 840 allow icmp from any to any\n');
  access.set(slot(200), 0, 0);
  assert.equal(ok(runCommand(['show', '200'], config, access)).stdout, '00200   0     0 deny tcp from any to any dst-port 22 in\n');
  assert.equal(ok(runCommand(['show', '100-200'], config, access)).stdout,
    '00100  10   840 allow icmp from any to any\n00200   0     0 deny tcp from any to any dst-port 22 in\n');
  // list -a is show
  assert.equal(ok(runCommand(['-a', 'list', '200'], config, access)).stdout, '00200   0     0 deny tcp from any to any dst-port 22 in\n');
  // -T adds the last-match time, -t its ctime (blanks when never matched)
  access.set(slot(100), 10, 840, 1700000000);
  assert.equal(ok(runCommand(['-T', 'show', '100'], config, access)).stdout, '00100 10 840 1700000000 allow icmp from any to any\n');
  const t = ok(runCommand(['-t', 'show', '200'], config, access)).stdout;
  assert.equal(t, '00200   0     0 ' + ' '.repeat(24) + 'deny tcp from any to any dst-port 22 in\n');
  const t2 = ok(runCommand(['-t', 'show', '100'], config, access)).stdout;
  assert.match(t2, /^00100 10 840 [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d 2023 allow icmp from any to any\n$/);
});

test('show -d / -e: dynamic states with the shared counter widths', () => {
  let { config } = fresh();
  const access = new FakeAccess();
  config = ok(runCommand(['add', '200 allow icmp from any to any keep-state'], config, access)).config;
  config = ok(runCommand(['add', '300 allow tcp from any to any limit src-addr 2 :web'], config, access)).config;
  access.set(config.rules[0]!.slot, 5, 420);
  const base = { srcPort: 0, dstPort: 0, name: 'default', expired: false } as const;
  access.statesList = [
    { ...base, ruleNumber: 200, packets: 5, bytes: 420, remaining: 9, kind: 'STATE', proto: 1, src: '10.0.0.1', dst: '10.0.0.2' },
    { ...base, ruleNumber: 200, packets: 1, bytes: 84, remaining: 0, kind: 'STATE', proto: 1, src: '10.0.0.3', dst: '10.0.0.2', expired: true },
    { ruleNumber: 300, packets: 1234, bytes: 99, remaining: 280, kind: 'PARENT', parentCount: 1, proto: 6, src: '10.0.0.1', srcPort: 0,
      dst: '0.0.0.0', dstPort: 0, name: 'web', expired: false },
    { ruleNumber: 300, packets: 2, bytes: 120, remaining: 19, kind: 'LIMIT', proto: 6, src: '2001:db8::1', srcPort: 4000,
      dst: '2001:db8::2', dstPort: 80, name: 'web', expired: false },
  ];
  const out = ok(runCommand(['-d', 'show'], config, access)).stdout;
  assert.equal(out,
    '00200    5 420 allow icmp from any to any keep-state\n' +
    '00300    0   0 allow tcp from any to any limit src-addr 2 :web\n' +
    '65535    0   0 allow ip from any to any\n' +
    '## Dynamic rules (4 528):\n' +
    '00200    5 420 (9s) STATE icmp 10.0.0.1 0 <-> 10.0.0.2 0\n' +
    '00300 1234  99 (280s) PARENT 1 tcp 10.0.0.1 0 <-> 0.0.0.0 0 :web\n' +
    '00300    2 120 (19s) LIMIT tcp 2001:db8::1 4000 <-> 2001:db8::2 80 :web\n');
  const expired = ok(runCommand(['-d', '-e', 'show', '200'], config, access)).stdout;
  assert.equal(expired,
    '00200    5 420 allow icmp from any to any keep-state\n' +
    '## Dynamic rules:\n' +
    '00200    5 420 (9s) STATE icmp 10.0.0.1 0 <-> 10.0.0.2 0\n' +
    '00200    1  84 (0s) STATE icmp 10.0.0.3 0 <-> 10.0.0.2 0\n');
  // list -d: no counters, no lifetimes
  const listed = ok(runCommand(['-d', 'list', '200'], config, access)).stdout;
  assert.equal(listed, '00200 allow icmp from any to any keep-state\n## Dynamic rules:\n00200 STATE icmp 10.0.0.1 0 <-> 10.0.0.2 0\n');
});
