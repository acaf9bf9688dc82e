/**
 * The ipfw commands around rules: sets, delete (numbers, ranges, sets), flush, zero/resetlog and
 * their messages, tables (thousands of entries), and the Rule values the parser hands to the
 * evaluators (the contract of rule.ts: instruction order, not/or flags, probe-state).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand, runFile, emptyConfig, type CommandResult } from '../../src/firewall/commands.js';
import { parseRule } from '../../src/firewall/parse.js';
import type { FirewallConfig } from '../../src/firewall/rule.js';
import { FakeAccess } from './fake-access.js';
import { makeConfigDummynet, makeDaemonDummynet, checkingDummynet } from '../../src/firewall/dummynet-glue.js';

class Fw {
  config: FirewallConfig = emptyConfig(true);
  readonly access = new FakeAccess();
  run(...argv: string[]): CommandResult {
    const r = runCommand(argv, this.config, this.access);
    this.config = r.config;
    return r;
  }
  ok(...argv: string[]): string {
    const r = this.run(...argv);
    assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }
  numbers(): number[] { return this.config.rules.map((r) => r.number); }
  slot(n: number): number { return this.config.rules.find((r) => r.number === n)!.slot; }
}

test('sets: add into a set, disable/enable, show, move, swap, delete set, -S listing', () => {
  const fw = new Fw();
  fw.ok('-q', 'add', '100 set 1 allow tcp from any to any');
  fw.ok('-q', 'add', '200 set 2 deny udp from any to any');
  fw.ok('-q', 'add', '300 count ip from any to any');
  assert.equal(fw.ok('set', 'show'), 'enable 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30\n');
  const v = fw.config.version;
  fw.ok('set', 'disable', '1', '3', 'enable', '2');
  assert.equal(fw.config.version, v + 1);
  assert.equal(fw.config.disabledSets, (1 << 1) | (1 << 3));
  assert.equal(fw.ok('set', 'show'), 'disable 1 3 enable 0 2 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30\n');
  // a disabled set's rules are not listed, except with -S
  assert.equal(fw.ok('list'), '00200 deny udp from any to any\n00300 count ip from any to any\n65535 allow ip from any to any\n');
  assert.equal(fw.ok('-S', 'list'),
    '# DISABLED 00100 set 1 allow tcp from any to any\n00200 set 2 deny udp from any to any\n' +
    '00300 set 0 count ip from any to any\n65535 set 31 allow ip from any to any\n');
  // set 31 is never disabled
  fw.ok('set', 'disable', '31');
  assert.equal(fw.config.disabledSets & (1 << 31), 0);
  fw.ok('set', 'enable', '1', '3');
  assert.equal(fw.config.disabledSets, 0);
  fw.ok('set', 'move', '2', 'to', '5');
  assert.equal(fw.config.rules.find((r) => r.number === 200)!.set, 5);
  fw.ok('set', 'move', 'rule', '300', 'to', '7');
  assert.equal(fw.config.rules.find((r) => r.number === 300)!.set, 7);
  fw.ok('set', 'swap', '1', '7');
  assert.deepEqual(fw.config.rules.map((r) => r.set), [7, 5, 1, 31]);
  // `set N list` scopes the listing, `set N flush` / `delete set N` remove a set
  assert.equal(fw.ok('set', '5', 'list'), '00200 deny udp from any to any\n');
  fw.ok('delete', 'set', '5');
  assert.deepEqual(fw.numbers(), [100, 300, 65535]);
  fw.ok('-f', 'set', '7', 'flush');
  assert.deepEqual(fw.numbers(), [300, 65535]);
  assert.equal(fw.access.calls.filter((c) => c.startsWith('unstate')).length, 2);
});

test('delete: several numbers, ranges, shared numbers, the default rule stays', () => {
  const fw = new Fw();
  for (const n of [100, 200, 200, 300, 400, 500, 600]) fw.ok('-q', 'add', `${n} count ip from any to any`);
  fw.access.calls.length = 0;
  fw.ok('delete', '200');
  assert.deepEqual(fw.numbers(), [100, 300, 400, 500, 600, 65535]);
  fw.ok('delete', '300-500');
  assert.deepEqual(fw.numbers(), [100, 600, 65535]);
  assert.equal(fw.access.calls.filter((c) => c.startsWith('unstate')).length, 5);
  // one missing number: nothing is deleted
  const r = fw.run('delete', '100', '700');
  assert.equal(r.status, 69);
  assert.equal(r.stderr, 'ipfw: rule 700 not found\n');
  assert.deepEqual(fw.numbers(), [100, 600, 65535]);
  const d = fw.run('delete', '65535');
  assert.equal(d.status, 69);
  assert.equal(d.stderr, 'ipfw: rule 65535 is the default rule: it cannot be deleted\n');
  assert.deepEqual(fw.numbers(), [100, 600, 65535]);
  fw.ok('delete', '100', '600');
  assert.deepEqual(fw.numbers(), [65535]);
});

test('flush: keeps set 31 and the default rule; asks on a terminal; -q is silent', () => {
  const fw = new Fw();
  fw.ok('-q', 'add', '100 allow ip from any to any');
  fw.ok('-q', 'add', '200 set 31 count ip from any to any');
  fw.ok('-q', 'add', '300 deny ip from any to any');
  const asked = runCommand(['flush'], fw.config, fw.access, { tty: true });
  assert.equal(asked.stdout, 'Are you sure? [yn] ');
  assert.equal(asked.config, fw.config);
  assert.equal(fw.ok('flush'), 'Flushed all rules.\n');
  assert.deepEqual(fw.numbers(), [200, 65535]);
  fw.ok('-q', 'add', '400 deny ip from any to any');
  const quiet = runCommand(['-q', 'flush'], fw.config, fw.access, { tty: true });
  assert.equal(quiet.stdout, '');
  assert.deepEqual(quiet.config.rules.map((r) => r.number), [200, 65535]);
});

test('zero and resetlog: messages, per-rule entries, counters cleared through access', () => {
  const fw = new Fw();
  fw.ok('-q', 'add', '100 allow ip from any to any');
  fw.ok('-q', 'add', '200 deny ip from any to any');
  fw.access.set(fw.slot(100), 5, 500);
  fw.access.set(fw.slot(200), 7, 700);
  fw.access.calls.length = 0;
  assert.equal(fw.ok('zero', '100'), 'Entry 100 cleared.\n');
  assert.deepEqual(fw.access.counters(fw.slot(100)), { packets: 0, bytes: 0, lastMatch: 0 });
  assert.equal(fw.access.counters(fw.slot(200)).packets, 7);
  const missing = fw.run('zero', '200', '999');
  assert.equal(missing.status, 69);
  assert.equal(missing.stdout, 'Entry 200 cleared.\nEntry 999 not found\n');
  assert.equal(fw.access.counters(fw.slot(200)).packets, 0);
  fw.access.set(fw.slot(200), 7, 700);
  assert.equal(fw.ok('zero'), 'Accounting cleared.\n');
  assert.equal(fw.access.counters(fw.slot(200)).packets, 0);
  fw.access.calls.length = 0;
  assert.equal(fw.ok('resetlog'), 'Logging counts reset.\n');
  assert.deepEqual(fw.access.calls, ['resetlog 1', 'resetlog 2', 'resetlog 0']);
  assert.equal(fw.ok('resetlog', '100'), 'Entry 100 logging count reset.\n');
  assert.equal(fw.ok('-q', 'zero', '100'), '');
  const version = fw.config.version;
  fw.ok('zero');
  assert.equal(fw.config.version, version, 'zero does not change the ruleset');
});

test('pipe|queue|sched [N] zero and resetlog clear rule counters, as FreeBSD main.c hands them to ipfw_zero()', () => {
  const fw = new Fw();
  fw.ok('-q', 'add', '1 pipe 1 ip from any to any');
  fw.ok('-q', 'add', '100 allow ip from any to any');
  fw.access.set(fw.slot(1), 5, 500);
  fw.access.set(fw.slot(100), 7, 700);
  // `pipe 1 zero` is swapped into `zero 1`: rule 1, not pipe 1
  assert.equal(fw.ok('pipe', '1', 'zero'), 'Entry 1 cleared.\n');
  assert.equal(fw.access.counters(fw.slot(1)).packets, 0);
  assert.equal(fw.access.counters(fw.slot(100)).packets, 7);
  assert.equal(fw.ok('queue', 'zero'), 'Accounting cleared.\n');
  assert.equal(fw.access.counters(fw.slot(100)).packets, 0);
  assert.equal(fw.ok('sched', 'resetlog'), 'Logging counts reset.\n');
  assert.equal(fw.run('pipe', '7', 'zero').stdout, 'Entry 7 not found\n');
});

test('list/show of missing rules and bad ranges', () => {
  const fw = new Fw();
  fw.ok('-q', 'add', '100 allow ip from any to any');
  const r = fw.run('list', '100', '150', '160-170', 'x');
  assert.equal(r.stdout, '00100 allow ip from any to any\n');
  assert.equal(r.stderr, 'ipfw: rule 150 does not exist\nipfw: no rules in range 160-170\nipfw: invalid rule number: x\n');
  assert.equal(r.status, 69);
});

test('tables: create, add/delete with values, list, info, lookup, swap, flush, destroy', () => {
  const fw = new Fw();
  fw.ok('table', 'blocked', 'create', 'type', 'addr');
  assert.equal(fw.ok('table', 'blocked', 'add', '10.1.2.3/8', '5'), 'added: 10.0.0.0/8 5\n');
  assert.equal(fw.ok('table', 'blocked', 'add', '198.18.0.1', '0', '2001:db8::1/32', '0x10'), 'added: 198.18.0.1/32 0\nadded: 2001:db8::/32 16\n');
  assert.equal(fw.ok('table', 'blocked', 'add', '192.0.2.1', '198.18.0.7'), 'added: 192.0.2.1/32 3323068423\n');
  assert.equal(fw.ok('table', 'blocked', 'list'),
    '--- table(blocked), set(0) ---\n10.0.0.0/8 5\n192.0.2.1/32 3323068423\n198.18.0.1/32 0\n2001:db8::/32 16\n');
  const dup = fw.run('table', 'blocked', 'add', '10.0.0.0/8', '7');
  assert.equal(dup.status, 71);
  assert.equal(dup.stdout, 'exists: 10.0.0.0/8 7\n');
  assert.equal(dup.stderr, 'ipfw: Adding record failed: record already exists\n');
  assert.equal(fw.ok('-q', 'table', 'blocked', 'add', '10.0.0.0/8', '7'), 'updated: 10.0.0.0/8 7\n');
  assert.equal(fw.ok('table', 'blocked', 'lookup', '10.200.0.1'), '10.0.0.0/8 7\n');
  // the most specific prefix wins, and for one address the longer prefix lists first
  fw.ok('table', 'blocked', 'add', '10.0.0.0/16', '9');
  assert.equal(fw.ok('table', 'blocked', 'lookup', '10.0.200.1'), '10.0.0.0/16 9\n');
  assert.equal(fw.ok('table', 'blocked', 'lookup', '10.1.0.1'), '10.0.0.0/8 7\n');
  assert.equal(fw.ok('table', 'blocked', 'list').split('\n').slice(1, 3).join('|'), '10.0.0.0/16 9|10.0.0.0/8 7');
  fw.ok('table', 'blocked', 'delete', '10.0.0.0/16');
  assert.equal(fw.ok('table', 'blocked', 'lookup', '198.18.0.1'), '198.18.0.1/32 0\n');
  assert.equal(fw.run('table', 'blocked', 'lookup', '11.0.0.1').stderr, 'ipfw: Entry 11.0.0.1 not found\n');
  assert.equal(fw.ok('table', 'blocked', 'delete', '198.18.0.1'), 'deleted: 198.18.0.1/32 0\n');
  const gone = fw.run('table', 'blocked', 'delete', '198.18.0.1');
  assert.equal(gone.status, 71);
  assert.equal(gone.stderr, 'ipfw: Deleting record failed: record not found\n');
  // a rule refers to it: info counts the reference, destroy is refused
  fw.ok('-q', 'add', '100 deny ip from table(blocked) to any');
  assert.equal(fw.ok('table', 'blocked', 'info'),
    '--- table(blocked), set(0) ---\n kindex: 1, type: addr\n references: 1, valtype: legacy\n' +
    ' algorithm: addr:radix\n items: 3, size: 3\n');
  assert.equal(fw.run('table', 'blocked', 'destroy').stderr, 'ipfw: failed to destroy table blocked: Device busy\n');
  // number and iface tables
  fw.ok('table', 'ports', 'create', 'type', 'number');
  assert.equal(fw.ok('table', 'ports', 'add', '443', '1', '80', '2'), 'added: 443 1\nadded: 80 2\n');
  assert.equal(fw.ok('table', 'ports', 'list'), '--- table(ports), set(0) ---\n80 2\n443 1\n');
  assert.equal(fw.run('table', 'ports', 'add', 'http').stderr, 'ipfw: Invalid number: http\n');
  fw.ok('table', 'ifs', 'create', 'type', 'iface');
  assert.equal(fw.ok('table', 'ifs', 'add', 'veth0'), 'added: veth0 0\n');
  assert.equal(fw.run('table', 'ports', 'swap', 'ifs').stderr, 'ipfw: Unable to swap table: check types\n');
  fw.ok('table', 'other', 'create', 'type', 'number');
  fw.ok('table', 'other', 'add', '22');
  fw.ok('table', 'ports', 'swap', 'other');
  assert.equal(fw.ok('table', 'ports', 'list'), '--- table(ports), set(0) ---\n22 0\n');
  assert.equal(fw.ok('table', 'all', 'list'),
    '--- table(ifs), set(0) ---\nveth0 0\n--- table(other), set(0) ---\n80 2\n443 1\n' +
    '--- table(ports), set(0) ---\n22 0\n--- table(blocked), set(0) ---\n10.0.0.0/8 7\n192.0.2.1/32 3323068423\n2001:db8::/32 16\n');
  fw.ok('table', 'all', 'flush');
  assert.ok(fw.config.tables.every((t) => t.entries.length === 0));
  fw.ok('table', 'ifs', 'destroy');
  assert.equal(fw.config.tables.some((t) => t.name === 'ifs'), false);
  assert.equal(fw.run('table', 'ports', 'create').stderr, 'ipfw: Table creation failed: File exists\n');
});

test('tables: the old numeric syntax auto-creates an address table; rules auto-create what they name', () => {
  const fw = new Fw();
  const r = fw.run('table', '10', 'add', '1.2.3.4');
  assert.equal(r.status, 0);
  assert.equal(r.stderr, 'DEPRECATED: inserting data info non-existent table 10. (auto-created)\n');
  assert.equal(r.stdout, 'added: 1.2.3.4/32 0\n');
  assert.deepEqual(fw.config.tables.map((t) => [t.name, t.type]), [['10', 'addr']]);
  fw.ok('-q', 'add', 'allow ip from any to any lookup dst-port web recv table(ins)');
  assert.deepEqual(fw.config.tables.map((t) => [t.name, t.type]), [['10', 'addr'], ['web', 'number'], ['ins', 'iface']]);
  // a name used with a type it does not have is refused
  const clash = fw.run('add', 'allow ip from table(web) to any');
  assert.equal(clash.status, 69);
});

test('tables with thousands of entries, from a rules file', () => {
  const fw = new Fw();
  const lines = ['table big create type addr'];
  for (let i = 0; i < 5000; i++) lines.push(`table big add 198.${18 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff} ${i}`);
  const t0 = Date.now();
  const r = runFile(lines.join('\n'), fw.config, fw.access);
  const ms = Date.now() - t0;
  assert.equal(r.status, 0, r.stderr);
  const big = r.config.tables.find((t) => t.name === 'big')!;
  assert.equal(big.entries.length, 5000);
  // sorted by address as ipfw lists them
  assert.equal(big.entries[0]!.key, '198.18.0.0/32');
  assert.equal(big.entries[4999]!.key, '198.18.19.135/32');
  assert.equal(big.entries[4999]!.value, 4999);
  const listed = runCommand(['table', 'big', 'list'], r.config, fw.access).stdout.split('\n');
  assert.equal(listed.length, 5002);
  assert.equal(listed[257], '198.18.1.0/32 256');
  assert.ok(ms < 30000, `5000 table lines took ${ms} ms`);
  // one bad entry among thousands leaves the table as it was
  const bad = runFile(lines.slice(0, 3000).join('\n') + '\ntable big add 1.2.3.4/40\n', fw.config, fw.access);
  assert.equal(bad.status, 65);
  assert.equal(bad.stderr, 'Line 3001: ipfw: bad IPv4 mask width: 40\n');
  assert.equal(bad.config, fw.config);
});

test('the Rule handed to the evaluators: order, not/or flags, probe-state first and the state command last', () => {
  const env = { verboseLimit: 0, warnings: [] as string[] };
  const { rule } = parseRule('500 set 3 prob 0.5 skipto 900 log tag 5 { tcp or udp } from not 10.0.0.0/8 1-1023 to { me or 198.18.0.1 } 80 in { recv a or xmit b* } keep-state :s // hi'.split(' '), env);
  assert.equal(rule.number, 500);
  assert.equal(rule.set, 3);
  assert.equal(rule.prob, 0.5);
  assert.deepEqual(rule.action, { kind: 'skipto', arg: 900, tablearg: false });
  assert.equal(rule.log, true);
  assert.deepEqual(rule.tag, { untag: false, value: 5, tablearg: false });
  assert.equal(rule.comment, 'hi');
  const ops = rule.cmds.map((c) => `${c.neg ? '!' : ''}${c.op}${c.or ? '|' : ''}`);
  assert.deepEqual(ops, ['probe-state', 'proto|', 'proto', '!ip-addr', 'ports', 'me|', 'ip-addr', 'ports', 'in', 'iface|', 'iface', 'keep-state']);
  assert.deepEqual(rule.cmds[0], { neg: false, or: false, op: 'probe-state', name: 's' });
  assert.deepEqual(rule.cmds[3], { neg: true, or: false, op: 'ip-addr', dir: 'src', list: [{ addr: 0x0a000000, mask: 0xff000000 }] });
  assert.deepEqual(rule.cmds[7], { neg: false, or: false, op: 'ports', dir: 'dst', ranges: [[80, 80]] });
  assert.deepEqual(rule.cmds[10], { neg: false, or: false, op: 'iface', which: 'xmit', name: 'b*', table: null, addr: null });
  assert.deepEqual(rule.cmds[11], { neg: false, or: false, op: 'keep-state', name: 's', record: false });
  const out = parseRule(['allow', 'ip', 'from', 'any', 'to', 'any', 'out', 'setup'], env).rule;
  assert.deepEqual(out.cmds, [{ neg: true, or: false, op: 'in' }, { neg: false, or: false, op: 'tcpflags', set: 0x02, clear: 0x10 }]);
  const v6 = parseRule(['deny', 'ip6', 'from', '2001:db8::/32', 'to', 'any'], env).rule;
  assert.deepEqual(v6.cmds[1], { neg: false, or: false, op: 'ip6-addr', dir: 'src',
    list: [{ addr: [0x20010db8, 0, 0, 0], mask: [0xffffffff, 0, 0, 0] }] });
  assert.deepEqual(parseRule(['reject', 'ip', 'from', 'any', 'to', 'any'], env).rule.action, { kind: 'reject', arg: 1, tablearg: false });
  assert.deepEqual(parseRule(['check-state'], env).rule.action, { kind: 'check-state', arg: 0, tablearg: false, stateName: 'default' });
  // the rule is plain JSON data
  assert.deepEqual(JSON.parse(JSON.stringify(rule)), rule);
});

test('sysctl: the tunables of config.settings', () => {
  const fw = new Fw();
  assert.equal(fw.ok('sysctl', 'net.inet.ip.fw.autoinc_step'), 'net.inet.ip.fw.autoinc_step: 100\n');
  assert.equal(fw.ok('sysctl', 'net.inet.ip.fw.autoinc_step=10'), 'net.inet.ip.fw.autoinc_step: 100 -> 10\n');
  assert.equal(fw.config.settings.autoincStep, 10);
  assert.equal(fw.ok('add', 'allow ip from any to any'), '00010 allow ip from any to any\n');
  fw.ok('sysctl', 'net.inet.ip.fw.dyn_keepalive=0');
  assert.equal(fw.config.settings.dynKeepalive, false);
  fw.ok('sysctl', 'net.inet.ip.fw.verbose_limit=5');
  assert.equal(fw.ok('add', 'allow log ip from any to any'), '00020 allow log logamount 5 ip from any to any\n');
  const all = fw.ok('sysctl', '-a').split('\n');
  assert.equal(all.length, 14);
  assert.ok(all.includes('net.inet.ip.fw.dyn_udp_lifetime: 10'));
  const bad = fw.run('sysctl', 'net.inet.ip.fw.one_pass=2');
  assert.equal(bad.status, 65);
  assert.equal(fw.run('sysctl', 'kern.bogus').stderr, "ipfw: unknown oid 'kern.bogus'\n");
});

test('enable/disable one_pass and dyn_keepalive; dummynet words are routed to the dummynet module', () => {
  const fw = new Fw();
  fw.ok('disable', 'one_pass');
  assert.equal(fw.config.settings.onePass, false);
  fw.ok('enable', 'one_pass');
  assert.equal(fw.config.settings.onePass, true);
  fw.ok('disable', 'dyn_keepalive');
  assert.equal(fw.config.settings.dynKeepalive, false);
  const other = fw.run('enable', 'firewall');
  assert.equal(other.status, 0);
  assert.equal(other.stderr, 'ipfw: unrecognize enable/disable keyword: firewall\n');
  const seen: string[][] = [];
  const access = Object.assign(new FakeAccess(), {
    dummynet: (argv: string[], config: FirewallConfig, testOnly: boolean) => {
      seen.push(testOnly ? ['(-n)', ...argv] : argv);
      return { status: 0, stdout: 'ok\n', stderr: '', config: { ...config, version: config.version + 1, dummynet: { pipes: 1 } } };
    },
  });
  const r = runCommand(['-q', 'pipe', '1', 'config', 'bw', '10Mbit/s'], fw.config, access);
  assert.equal(r.stdout, 'ok\n');
  assert.deepEqual(r.config.dummynet, { pipes: 1 });
  // dummynet gets the words from `pipe` on: ipfw's options are the firewall's to read
  assert.deepEqual(seen, [['pipe', '1', 'config', 'bw', '10Mbit/s']]);
  runCommand(['-s', 'pkts', 'queue', 'show'], fw.config, access);
  runCommand(['sched 1 config type wf2q+'], fw.config, access);
  runCommand(['-nq', 'pipe', '2', 'config', 'delay', '5'], fw.config, access);
  assert.deepEqual(seen.slice(1), [['queue', 'show'], ['sched', '1', 'config', 'type', 'wf2q+'], ['(-n)', 'pipe', '2', 'config', 'delay', '5']]);
});

test('a rules file is all or nothing for a daemon\'s dummynet too: its lines are tried on a copy first', () => {
  const dd = makeDaemonDummynet();
  const access = Object.assign(new FakeAccess(), { dummynet: dd.command, dummynetCheck: checkingDummynet });
  const c0 = emptyConfig(true);
  const bad = runFile('pipe 1 config bw 10Mbit/s\nqueue 2 config pipe 1 weight 5\nadd 100 frob\n', c0, access);
  assert.equal(bad.status, 65);
  assert.equal(bad.config, c0);
  assert.equal(runCommand(['pipe', 'show'], c0, access).stdout, '', "the daemon's dummynet is untouched");
  const good = runFile('pipe 1 config bw 10Mbit/s\nqueue 2 config pipe 1 weight 5\nadd 100 queue 2 ip from any to any\n', c0, access);
  assert.equal(good.status, 0, good.stderr);
  assert.match(runCommand(['pipe', 'show'], good.config, access).stdout, /^00001: +10\.000 Mbit\/s/m);
  assert.match(runCommand(['queue', 'show'], good.config, access).stdout, /^q00002 /m);
  assert.notEqual(good.config.dummynet, null);
});

test('dummynet commands after ipfw options (-q, -n, -s field) reach the real dummynet; -n changes nothing', () => {
  const access = Object.assign(new FakeAccess(), { dummynet: makeConfigDummynet() });
  let config = emptyConfig(true);
  const q = runCommand(['-q', 'pipe', '1', 'config', 'bw', '10Mbit/s'], config, access);
  assert.equal(q.status, 0, q.stderr);
  assert.notEqual(q.config.dummynet, null);
  config = q.config;
  const shown = runCommand(['-s', 'bw', 'pipe', 'show'], config, access);
  assert.equal(shown.status, 0, shown.stderr);
  assert.match(shown.stdout, /^00001: +10\.000 Mbit\/s/m);
  // -n: checked on a copy; the configuration stays as it was
  const n = runCommand(['-n', 'pipe', '2', 'config', 'delay', '20'], config, access);
  assert.equal(n.status, 0, n.stderr);
  assert.equal(n.testOnly, true);
  assert.deepEqual(n.config, config);
  assert.doesNotMatch(runCommand(['pipe', 'show'], config, access).stdout, /^00002:/m);
  const bad = runCommand(['-n', 'pipe', '2', 'config', 'bw', 'frob'], config, access);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /^ipfw: /);
  assert.deepEqual(bad.config, config);
});
