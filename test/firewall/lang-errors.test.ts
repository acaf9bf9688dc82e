/**
 * Malformed commands: ipfw's message (stderr `ipfw: ...`), ipfw's exit status (sysexits), and
 * nothing changed — the same config object comes back and no counter or state was touched.
 * A rules file failing at line N reports `Line N: ...` and applies none of its lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand, runFile, emptyConfig } from '../../src/firewall/commands.js';
import type { FirewallConfig } from '../../src/firewall/rule.js';
import { FakeAccess } from './fake-access.js';

const USAGE = 64, DATAERR = 65, NOHOST = 68, UNAVAILABLE = 69, OSERR = 71;

/** [argv as one string, status, stderr's last line without `ipfw: `] */
const BAD: ReadonlyArray<readonly [string, number, string]> = [
  ['add', USAGE, 'missing action'],
  ['add foo ip from any to any', DATAERR, 'invalid action foo'],
  ['add allow', USAGE, 'missing protocol'],
  ['add allow tcp', USAGE, "missing ``from''"],
  ['add allow tcp from', USAGE, 'missing source address'],
  ['add allow tcp from any', USAGE, "missing ``to''"],
  ['add allow tcp from any to', USAGE, 'missing dst address'],
  ['add allow bogusproto from any to any', USAGE, 'unrecognised option [-1] bogusproto'],
  ['add allow { tcp or bogus } from any to any', DATAERR, "invalid protocol ``bogus''"],
  ['add allow tcp from 1.2.3.4/33 to any', DATAERR, "bad width ``33''"],
  ['add allow tcp from 1.2.3.4:255.255.255.256 to any', DATAERR, "bad netmask ``255.255.255.256''"],
  ['add allow tcp from no-such-host.invalid to any', NOHOST, "hostname ``no-such-host.invalid'' unknown"],
  ['add allow ip from 2001:db8::/129 to any', DATAERR, 'bad width "129\'\''],
  ['add allow ip6 from 1.2.3.4 to any', DATAERR, 'bad address "1.2.3.4"'],
  ['add allow tcp from any to any dst-port foo', DATAERR, 'invalid destination port foo'],
  ['add allow tcp from any to any src-port 1-', DATAERR, 'invalid source port 1-'],
  ['add allow ip from any to any bogus', USAGE, 'unrecognised option [-1] bogus'],
  ['add skipto ip from any to any', DATAERR, 'illegal argument for skipto'],
  ['add skipto 0 ip from any to any', DATAERR, 'illegal argument for skipto'],
  ['add skipto 65535 ip from any to any', DATAERR, 'illegal argument for skipto'],
  ['add skipto', USAGE, 'missing argument for skipto'],
  ['add pipe x ip from any to any', DATAERR, 'illegal argument for pipe'],
  ['add unreach bogus ip from any to any', DATAERR, "unknown ICMP unreachable code ``bogus''"],
  ['add unreach', USAGE, 'missing reject code'],
  ['add unreach toString ip from any to any', DATAERR, "unknown ICMP unreachable code ``toString''"],
  ['add unreach6 constructor ip from any to any', DATAERR, "unknown ICMPv6 unreachable code ``constructor''"],
  ['add allow ip from any to any tcpflags __proto__', DATAERR, 'invalid flag __proto__'],
  ['add allow ip from any to any constructor', USAGE, 'unrecognised option [-1] constructor'],
  ['add allow ip from any to any limit toString 1', USAGE, 'limit: missing limit mask'],
  ['add allow ip6 from any to any ext6hdr hasOwnProperty', DATAERR, 'invalid option for ipv6 exten header'],
  ['sysctl toString=1', UNAVAILABLE, "unknown oid 'toString'"],
  ['add unreach6 bogus ip6 from any to any', DATAERR, "unknown ICMPv6 unreachable code ``bogus''"],
  ['add setdscp af99 ip from any to any', DATAERR, 'Unknown DSCP code'],
  ['add allow tag 0 ip from any to any', DATAERR, 'tag: argument is out of range (1..65534): 0'],
  ['add allow tag x ip from any to any', DATAERR, 'tag: invalid argument: x'],
  ['add allow tag 1 untag 2 ip from any to any', USAGE, 'tag and untag cannot be specified more than once'],
  ['add allow log logamount 3 log ip from any to any', DATAERR, 'log cannot be specified more than once'],
  ['add prob 2 allow ip from any to any', DATAERR, 'illegal match prob. 2'],
  ['add prob 0 allow ip from any to any', DATAERR, 'illegal match prob. 0'],
  ['add set 32 allow ip from any to any', DATAERR, 'illegal set 32'],
  ['add 65535 allow ip from any to any', UNAVAILABLE, 'rule 65535 is the default rule: it cannot be added (getsockopt(IP_FW_XADD): Invalid argument)'],
  ['add allow tcp from any to any keep-state limit src-addr 1', USAGE, 'only one of keep-state and limit is allowed'],
  ['add allow ip from any to any { in or keep-state }', USAGE, 'keep-state cannot be part of an or block'],
  ['add allow ip from any to any limit 10', USAGE, 'limit: missing limit mask'],
  ['add allow ip from any to any limit src-addr', USAGE, 'limit: missing argument'],
  ['add allow ip from any to any { in or out', USAGE, 'missing ")"'],
  ['add allow ip from any to any in }', USAGE, '+missing ")"'],
  ['add allow ip from any to any { in { out }', USAGE, '+nested "(" not allowed'],
  ['add allow ip from any to any or in', DATAERR, 'invalid OR block'],
  ['add allow ip from any to any in or out', USAGE, 'invalid "or" block'],
  ['add allow ip from { 1.2.3.4 or 5.6.7.8 to any', USAGE, 'missing ")"'],
  ['add allow ip from any to any not not in', USAGE, 'double "not" not allowed'],
  ['add allow ip from any to any icmptypes 40', DATAERR, 'ICMP type out of range'],
  ['add allow ip from any to any icmptypes 1x', DATAERR, 'invalid ICMP type'],
  ['add allow ip from any to any icmp6types 202', DATAERR, 'ICMP6 type out of range'],
  ['add allow ip from any to any dscp foo', DATAERR, 'Unknown DSCP code'],
  ['add allow ip from any to any dscp 64', DATAERR, 'Invalid DSCP value'],
  ['add allow tcp from any to any tcpflags syn,bogus', DATAERR, 'invalid flag bogus'],
  ['add allow tcp from any to any tcpoptions', USAGE, 'missing argument for tcpoptions'],
  ['add allow ip from any to any MAC 00:11 any', DATAERR, 'Incorrect MAC address'],
  ['add allow ip from any to any MAC 00:11:22:33:44:55/49 any', DATAERR, 'Incorrect mask length'],
  ['add allow ip from any to any MAC any', DATAERR, 'MAC dst src'],
  ['add allow ip from any to any mac-type any', DATAERR, 'invalid mac type any'],
  ['add allow ip from any to any mac-type bogus', DATAERR, 'invalid mac type bogus'],
  ['add allow ip from 1.2.3.0/20{1} to any', DATAERR, 'invalid set with mask 20'],
  ['add allow ip from 1.2.3.0/24{300} to any', DATAERR, 'addr 300 out of range [0-255]'],
  ['add allow ip from 1.2.3.0/24{9-5} to any', DATAERR, 'invalid range 9-5'],
  ['add allow ip from 1.2.3.4,1.2.3.0/24{1} to any', DATAERR, 'address set cannot be in a list'],
  ['add allow ip from table(b@d) to any', DATAERR, 'Invalid table name: b@d'],
  ['add allow ip from table(x to any', DATAERR, "forgotten parenthesis: 'table(x'"],
  ['add allow ip from any to any flow-id 5', USAGE, 'flow-id filter is active only for ipv6 protocol'],
  ['add allow ip6 from any to any flow-id 1048576', DATAERR, 'flow number out of range 1048576'],
  ['add allow ip6 from any to any ext6hdr bogus', DATAERR, 'invalid option for ipv6 exten header'],
  ['add allow ip from not 0.0.0.0/0 to any', DATAERR, 'not any never matches'],
  ['add allow ip from any to any recv 1.2.3.4.5', DATAERR, "bad ip address ``1.2.3.4.5''"],
  ['add allow ip from any to any recv', USAGE, 'recv, xmit, via require interface name or address'],
  ['add allow ip from any to any lookup foo T', USAGE, 'format: cannot lookup on foo'],
  ['add allow ip from any to any lookup dst-ip', USAGE, 'format: lookup argument tablenum'],
  ['add allow ip from any to any tagged 0', DATAERR, 'tagged: argument is out of range (1..65534): 0'],
  ['add allow ip from any to any // ' + 'x'.repeat(90), DATAERR, 'comment too long (max 80 chars)'],
  ['add fwd 1.2.3.4 ip from any to any', DATAERR, 'action fwd is not supported by netmap-ts'],
  ['add divert 8668 ip from any to any', DATAERR, 'action divert is not supported by netmap-ts'],
  ['add allow ip from any to any uid 0', USAGE, 'option uid is not supported by netmap-ts'],
  ['add allow ip from any to any antispoof', USAGE, 'option antispoof is not supported by netmap-ts'],
  ['add allow tcp from any to any ' + Array.from({ length: 31 }, (_, k) => k + 1).join(','), UNAVAILABLE, 'getsockopt(IP_FW_XADD): Invalid argument'],
  ['add allow tcp from any to any ' + Array.from({ length: 63 }, (_, k) => k + 1).join(','), DATAERR, 'too many ports/ranges'],
  ['add allow ip from ' + Array.from({ length: 16 }, (_, k) => `10.0.0.${k}`).join(',') + ' to any', UNAVAILABLE, 'getsockopt(IP_FW_XADD): Invalid argument'],
  ['add allow ip from ' + Array.from({ length: 32 }, (_, k) => `10.0.0.${k}`).join(',') + ' to any', DATAERR, 'address list too long'],
  ['add allow ip from ' + Array.from({ length: 8 }, (_, k) => `2001:db8::${k}`).join(',') + ' to any', DATAERR, 'address list too long'],
  ['bogus', USAGE, "bad command `bogus'"],
  ['-x list', USAGE, 'illegal option -- x'],
  ['delete', USAGE, 'missing rule specification'],
  ['delete 1234', UNAVAILABLE, 'rule 1234 not found'],
  ['delete 1000-2000', UNAVAILABLE, 'no rules rules in 1000-2000 range'],
  ['set 3 delete set 4', DATAERR, 'invalid syntax'],
  ['zero abc', USAGE, "invalid rule number ``abc''"],
  ['zero 70000', DATAERR, 'invalid rule number 70000'],
  ['set', USAGE, 'set needs command'],
  ['set move 1 2', USAGE, 'syntax: set move [rule] X to Y'],
  ['set move 40 to 2', DATAERR, 'invalid source number 40'],
  ['set swap 1', USAGE, 'set swap needs 2 set numbers'],
  ['set disable 32', DATAERR, 'invalid set number 32'],
  ['set enable 1 disable 1', DATAERR, 'cannot enable and disable the same set'],
  ['set bogus', USAGE, 'invalid set command bogus'],
  ['table', USAGE, 'table needs name'],
  ['table x', USAGE, 'table needs command'],
  ['table b@d list', USAGE, 'table name b@d is invalid'],
  ['table t frob', USAGE, 'ambiguous table command frob'],
  ['table t d', USAGE, 'ambiguous table command d'],
  ['table all add 1.2.3.4', USAGE, 'table name required'],
  ['table t list', OSERR, 'failed to request table info: No such process'],
  ['table t destroy', OSERR, 'failed to destroy table t: No such process'],
  ['table t delete 1.2.3.4', DATAERR, 'Table t does not exist'],
  ['table t add foo', USAGE, "Table t does not exist, cannot guess key 'foo' type"],
  ['table t create type flow', USAGE, 'table type flow is not supported by netmap-ts'],
  ['table t create type bogus', USAGE, 'Unknown tabletype: bogus. Supported: addr, iface, number, flow'],
  ['table t add 1.2.3.4/33', DATAERR, 'bad IPv4 mask width: 33'],
  ['table t add 1.2.3.4 notavalue', OSERR, 'Unable to parse value notavalue'],
  ['nat 1 config if eth0', UNAVAILABLE, 'nat is not supported by netmap-ts'],
  ['pipe 1 config bw 1Mbit/s', UNAVAILABLE, 'dummynet is not available in this firewall'],
];

function populated(): { config: FirewallConfig; access: FakeAccess } {
  const access = new FakeAccess();
  let config = emptyConfig(true);
  for (const line of ['100 allow tcp from any to any 80', '200 deny ip from 10.0.0.0/8 to any', '300 count ip from any to any']) {
    const r = runCommand(['add', line], config, access);
    assert.equal(r.status, 0, r.stderr);
    config = r.config;
  }
  access.calls.length = 0;
  return { config, access };
}

test(`malformed commands: ipfw's message and status, nothing changed (${BAD.length} cases)`, () => {
  for (const [line, status, message] of BAD) {
    const { config, access } = populated();
    const before = JSON.stringify(config);
    const r = runCommand([line], config, access);
    assert.equal(r.status, status, `${line}: status ${r.status}, stderr ${r.stderr}`);
    const last = r.stderr.trimEnd().split('\n').pop();
    assert.equal(last, `ipfw: ${message}`, line);
    assert.equal(r.config, config, `${line}: a failed command returns the same config`);
    assert.equal(JSON.stringify(config), before, `${line}: the config object was not mutated`);
    assert.deepEqual(access.calls, [], `${line}: no counter/state side effects`);
  }
});

/**
 * Numbers ipfw stores truncated to their field (add 70000 became rule 4464, port 65537 port 1,
 * ipttl 300 ttl 44, a table value 2^32 value 0): refused with the field's range, EX_DATAERR (a
 * NetmapError EINVAL), nothing changed. Each of these was accepted before.
 */
const OUT_OF_RANGE: ReadonlyArray<readonly [string, number, string]> = [
  ['add 70000 allow ip from any to any', DATAERR, 'rule number 70000 is out of range (1..65534, 0 numbers the rule; 65535 is the default rule)'],
  ['add 100x allow ip from any to any', DATAERR, 'rule number: invalid number 100x'],
  ['add set 3x allow ip from any to any', DATAERR, 'illegal set 3x'],
  ['add prob 0.5x allow ip from any to any', DATAERR, 'illegal match prob. 0.5x'],
  ['add allow log logamount 4294967296 ip from any to any', DATAERR, 'logamount 4294967296 is out of range (0..4294967295)'],
  ['add allow log logamount abc ip from any to any', DATAERR, 'logamount: invalid number abc'],
  ['add skipto 65537 ip from any to any', DATAERR, 'illegal argument for skipto: 65537 is out of range (1..65534; ipfw keeps 16 bits)'],
  ['add pipe 70000 ip from any to any', DATAERR, 'illegal argument for pipe: 70000 is out of range (1..65534; ipfw keeps 16 bits)'],
  ['add queue 5x ip from any to any', DATAERR, 'illegal argument for queue: 5x is not a number'],
  ['add setdscp 64 ip from any to any', DATAERR, 'setdscp: DSCP value 64 is out of range (0..63)'],
  ['add allow 256 from any to any', DATAERR, 'protocol number 256 is out of range (1..255)'],
  ['add allow tcp from any to any 65537', DATAERR, 'port 65537 is out of range (0..65535)'],
  ['add allow tcp from any 1-70000 to any', DATAERR, 'port 70000 is out of range (0..65535)'],
  ['add allow tcp from any to any dst-port 80,65536', DATAERR, 'port 65536 is out of range (0..65535)'],
  ['add allow ip from any to any ipttl 300', DATAERR, 'ipttl 300 is out of range (0..255)'],
  ['add allow ip from any to any ipttl 1,300', DATAERR, 'ipttl 300 is out of range (0..255)'],
  ['add allow ip from any to any iplen 70000', DATAERR, 'iplen 70000 is out of range (0..65535)'],
  ['add allow ip from any to any ipid 65536', DATAERR, 'ipid 65536 is out of range (0..65535)'],
  ['add allow tcp from any to any tcpwin 65536', DATAERR, 'tcpwin 65536 is out of range (0..65535)'],
  ['add allow tcp from any to any tcpdatalen 1-65536', DATAERR, 'tcpdatalen 65536 is out of range (0..65535)'],
  ['add allow ip from any to any ipver 20', DATAERR, 'ipver 20 is out of range (0..15)'],
  ['add allow ip from any to any ipprecedence 8', DATAERR, 'ipprecedence 8 is out of range (0..7)'],
  ['add allow ip from any to any dscp 5x', DATAERR, 'Invalid DSCP value'],
  ['add allow icmp from any to any icmptypes 256', DATAERR, 'ICMP type 256 is out of range (0..31)'],
  ['add allow ipv6-icmp from any to any icmp6types 300', DATAERR, 'ICMP6 type 300 is out of range (0..201)'],
  ['add allow tcp from any to any tcpseq 4294967296', DATAERR, 'tcpseq 4294967296 is out of range (-2147483648..4294967295)'],
  ['add allow tcp from any to any tcpack -2147483649', DATAERR, 'tcpack -2147483649 is out of range (-2147483648..4294967295)'],
  ['add allow ip from table(t,4294967296) to any', DATAERR, 'table value 4294967296 is out of range (0..4294967295)'],
  ['add allow ip from 1.2.3.4/abc to any', DATAERR, "bad width ``abc''"],
  ['add allow ip from 2001:db8::/x to any', DATAERR, 'bad width "x\'\''],
  ['add allow ip from any to any tagged 1-70000', DATAERR, 'tag 70000 is out of range (0..65534)'],
  ['add allow ip from any to any layer2 mac-type 0x10000', DATAERR, 'mac-type 65536 is out of range (0..65535)'],
  ['delete 70000', DATAERR, 'rule number 70000 is out of range (1..65534)'],
  ['delete 100-70000', DATAERR, 'rule number 70000 is out of range (1..65534)'],
  ['delete 100x', DATAERR, 'invalid rule number 100x'],
  ['delete set 40', DATAERR, 'set number 40 is out of range (0..30)'],
  ['delete 65535', UNAVAILABLE, 'rule 65535 is the default rule: it cannot be deleted'],
];

test(`out-of-range and partly numeric values ipfw would truncate are refused (${OUT_OF_RANGE.length} cases), nothing changed`, () => {
  for (const [line, status, message] of OUT_OF_RANGE) {
    const { config, access } = populated();
    const before = JSON.stringify(config);
    const r = runCommand([line], config, access);
    assert.equal(r.status, status, `${line}: status ${r.status}, stderr ${r.stderr}`);
    assert.equal(r.stderr.trimEnd().split('\n').pop(), `ipfw: ${message}`, line);
    assert.equal(r.config, config, line);
    assert.equal(JSON.stringify(config), before, line);
  }
  // tables: 32-bit keys and values, digits-only mask widths
  let { config } = populated();
  const access = new FakeAccess();
  for (const cmd of ['table n create type number', 'table a create type addr']) {
    const r = runCommand([cmd], config, access);
    assert.equal(r.status, 0, r.stderr);
    config = r.config;
  }
  for (const [line, message] of [
    ['table n add 4294967296', 'table key 4294967296 is out of range (0..4294967295)'],
    ['table a add 1.2.3.4 4294967296', 'table value 4294967296 is out of range (0..4294967295)'],
    ['table a add 1.2.3.0/abc', 'bad IPv4 mask width: abc'],
  ] as const) {
    const r = runCommand([line], config, access);
    assert.deepEqual([r.status, r.stderr.trimEnd().split('\n').pop()], [DATAERR, `ipfw: ${message}`], line);
    assert.equal(r.config, config, line);
  }
  // the edges are still accepted
  for (const line of ['add 65534 allow tcp from any 0-65535 to any 65535 ipttl 255 iplen 65535 tcpseq 4294967295',
    'add skipto 65534 ip from any to any', 'add setdscp 63 ip from any to any', 'add allow 255 from any to any',
    'add allow ip from table(t,4294967295) to any', 'add allow log logamount 4294967295 ip from any to any',
    'add allow icmp from any to any icmptypes 31', 'add allow ip from any to any ipver 15 ipprecedence 7 tagged 1-65534']) {
    const r = runCommand([line], config, access);
    assert.equal(r.status, 0, `${line}: ${r.stderr}`);
  }
});

test('the same errors arrive when the rule comes as separate words', () => {
  const { config, access } = populated();
  const r = runCommand(['add', 'allow', 'tcp', 'from', 'any', 'to', 'any', 'dst-port', 'nonsense'], config, access);
  assert.equal(r.status, DATAERR);
  assert.equal(r.stderr, 'ipfw: invalid destination port nonsense\n');
  assert.equal(r.config, config);
});

test('prefix keywords are accepted with ipfw\'s DEPRECATED warning', () => {
  const { config, access } = populated();
  const r = runCommand(['add', 'allow ip from a to any'], config, access);
  assert.equal(r.status, 0);
  assert.equal(r.stderr, "ipfw: DEPRECATED: 'a' matched 'any' as a sub-string\n");
  assert.equal(r.stdout, '00400 allow ip from any to any\n');
});

test('rules file: all or nothing, the failing line named', () => {
  const { config, access } = populated();
  const file = [
    '# a firewall',
    'ipfw -q add 1000 allow tcp from any to any 22',
    '',
    "add 1100 deny ip from any to any // 'quoted words'",
    'delete 100',
    'add 1200 allow tcp from any to any dst-port nonsense',
    'add 1300 allow ip from any to any',
  ].join('\n');
  const r = runFile(file, config, access);
  assert.equal(r.status, DATAERR);
  assert.equal(r.stderr, 'Line 6: ipfw: invalid destination port nonsense\n');
  assert.equal(r.config, config);
  assert.deepEqual(access.calls, [], 'the removed states of rule 100 and the zeroed slots were not applied');

  const good = runFile(file.split('\n').filter((l) => !l.includes('nonsense')).join('\n'), config, access);
  assert.equal(good.status, 0, good.stderr);
  assert.equal(good.stdout, "01100 deny ip from any to any // quoted words\n01300 allow ip from any to any\n");
  const listed = runCommand(['list'], good.config, access).stdout;
  assert.equal(listed,
    '00200 deny ip from 10.0.0.0/8 to any\n00300 count ip from any to any\n' +
    '01000 allow tcp from any to any dst-port 22\n01100 deny ip from any to any // quoted words\n' +
    '01300 allow ip from any to any\n65535 allow ip from any to any\n');
  // deferred effects ran once the whole file succeeded: new slots zeroed, rule 100's states removed
  assert.deepEqual(access.calls, ['zero 4', 'zero 5', 'unstate 1', 'zero 1']);
  const unterminated = runFile("add 10 allow ip from any to any // 'oops", config, access);
  assert.equal(unterminated.status, USAGE);
  assert.equal(unterminated.stderr, 'Line 1: ipfw: unterminated quote\n');
});

test('-n checks the syntax only', () => {
  const { config, access } = populated();
  const r = runCommand(['-n', 'add', '500 allow ip from any to any in'], config, access);
  assert.equal(r.status, 0);
  assert.equal(r.stdout, '00500 allow ip from any to any in\n');
  assert.equal(r.config, config);
  const bad = runCommand(['-n', 'add', 'allow ip from any to any bogus'], config, access);
  assert.equal(bad.status, USAGE);
});
