/**
 * kipfw between two network namespaces: l (198.18.0.1, 2001:2::1) — m0 [kipfw in m] m1 — r
 * (198.18.0.2, 2001:2::2). The senders' own stacks are the judges: ping, TCP connects, what
 * tcpdump sees. IPv6 uses 2001:2::/48 (RFC 5180's benchmarking prefix, the IPv6 sibling of
 * 198.18.0.0/15), inside the namespaces only.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-kipfw-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { skipReason, withLab, sleep, Lab } = await import('../helpers/netns.js');

const skip = skipReason(['tc', 'ping', 'tun', 'tcpdump']);
if (skip !== null) console.log(`# skipping kipfw namespace tests: ${skip}`);
const opts = { skip: skip ?? false, timeout: 120_000 };
type LabT = InstanceType<typeof Lab>;

const { CLI, startKipfw: startDaemon, ipfw, must } = await import('./kipfw-lab.js');
/** Starts kipfw in m on the two inner veth ends; its process. */
const startKipfw = async (lab: LabT, m: string, name: string, extra: string[] = []): Promise<ChildProcess> => (await startDaemon(lab, m, name, extra)).child;

interface Topo { l: string; m: string; r: string }

function topo(lab: LabT): Topo {
  const t = lab.line(false);
  // the lab turns IPv6 off in its namespaces; these two ends get it back (their traffic stays in the lab)
  lab.must(t.l, 'sysctl', ['-q', '-w', 'net.ipv6.conf.l0.disable_ipv6=0']);
  lab.must(t.r, 'sysctl', ['-q', '-w', 'net.ipv6.conf.r0.disable_ipv6=0']);
  lab.must(t.l, 'ip', ['-6', 'addr', 'add', '2001:2::1/64', 'dev', 'l0', 'nodad']);
  lab.must(t.r, 'ip', ['-6', 'addr', 'add', '2001:2::2/64', 'dev', 'r0', 'nodad']);
  return t;
}




function ping(lab: LabT, ns: string, addr: string, count = 1): { ok: boolean; out: string } {
  const r = lab.run(ns, addr.includes(':') ? 'ping' : 'ping', [addr.includes(':') ? '-6' : '-4', '-c', String(count), '-i', '0.2', '-W', '1', addr]);
  return { ok: r.status === 0, out: r.stdout + r.stderr };
}

/** A TCP connect from `ns` to addr:port with node; 'connected', 'ECONNREFUSED', 'timeout' or another error code. */
function connect(lab: LabT, ns: string, addr: string, port: number, timeoutMs = 1500): string {
  const script = `const s = require('net').connect({ host: ${JSON.stringify(addr)}, port: ${port} });
    const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, ${timeoutMs});
    s.on('connect', () => { console.log('connected'); clearTimeout(t); s.destroy(); });
    s.on('error', (e) => { console.log(e.code); clearTimeout(t); });`;
  return lab.run(ns, process.execPath, ['-e', script], timeoutMs + 5000).stdout.trim();
}

/** A TCP server in `ns` answering connections until killed. */
function server(lab: LabT, ns: string, addr: string, port: number): ChildProcess {
  const script = `require('net').createServer((c) => { c.on('error', () => {}); c.write('hi'); }).listen(${port}, ${JSON.stringify(addr)});`;
  return lab.spawn(ns, process.execPath, ['-e', script]);
}

test('kipfw: pass and block IPv4 and IPv6, counters in show, rules deleted', opts, () => withLab(async (lab) => {
  const { l, m } = topo(lab);
  await startKipfw(lab, m, 'pb');
  assert.ok(ping(lab, l, '198.18.0.2').ok, 'default rule allows');
  assert.ok(ping(lab, l, '2001:2::2').ok, 'default rule allows IPv6');
  assert.equal(must('pb', 'add', '100', 'deny', 'icmp', 'from', 'any', 'to', 'any').trim(), '00100 deny icmp from any to any');
  assert.equal(ping(lab, l, '198.18.0.2').ok, false, 'icmp denied');
  assert.ok(ping(lab, l, '2001:2::2').ok, 'icmp is IPv4 only: ICMPv6 passes');
  must('pb', 'add', '200', 'deny', 'ipv6-icmp', 'from', '2001:2::1', 'to', '2001:2::2');
  assert.equal(ping(lab, l, '2001:2::2').ok, false, 'icmp6 from l to r denied');
  const show = must('pb', 'show');
  const line100 = show.split('\n').find((s) => s.startsWith('00100'))!;
  const fields = line100.trim().split(/\s+/);
  assert.ok(Number(fields[1]) >= 1, `rule 100 counted the echo request: ${line100}`);
  assert.equal(Number(fields[2]), 84 * Number(fields[1]), 'bytes are IP datagram bytes (84 per echo)');
  must('pb', 'delete', '100', '200');
  assert.ok(ping(lab, l, '198.18.0.2').ok, 'deleted: allowed again');
  assert.ok(ping(lab, l, '2001:2::2').ok);
  assert.match(must('pb', 'list'), /^65535 allow ip from any to any\n$/);
}));

test('kipfw: reject, unreach and reset reach the senders\' stacks', opts, () => withLab(async (lab) => {
  const { l, m, r } = topo(lab);
  await startKipfw(lab, m, 'rj');
  server(lab, r, '198.18.0.2', 7001);
  server(lab, r, '2001:2::2', 7002);
  await sleep(300);
  assert.equal(connect(lab, l, '198.18.0.2', 7001), 'connected');
  must('rj', 'add', '100', 'reset', 'tcp', 'from', 'any', 'to', 'any', '7001');
  assert.equal(connect(lab, l, '198.18.0.2', 7001), 'ECONNREFUSED', 'a TCP RST refuses the connection');
  must('rj', 'add', '110', 'reset6', 'tcp', 'from', 'any', 'to', 'any', '7002');
  assert.equal(connect(lab, l, '2001:2::2', 7002), 'ECONNREFUSED', 'IPv6 RST too');
  must('rj', 'add', '120', 'unreach', 'port', 'icmp', 'from', 'any', 'to', 'any', 'icmptypes', '8');
  const p = ping(lab, l, '198.18.0.2');
  assert.equal(p.ok, false);
  assert.match(p.out, /Destination Port Unreachable/, p.out);
  must('rj', 'add', '130', 'unreach6', 'admin-prohib', 'ipv6-icmp', 'from', 'any', 'to', 'any', 'icmp6types', '128');
  const p6 = ping(lab, l, '2001:2::2');
  assert.equal(p6.ok, false);
  assert.match(p6.out, /Administratively prohibited|administratively prohibited/i, p6.out);
  assert.ok(Number(must('rj', 'show', '100').trim().split(/\s+/)[1]) >= 1, 'the reset rule counted the SYN');
  must('rj', 'zero');
  const counted = must('rj', 'show', '100').trim().split(/\s+/);
  assert.equal(counted[1], '0', 'zero clears');
}));

test('kipfw: keep-state lets l connect to r, not r to l; the state expires', opts, () => withLab(async (lab) => {
  const { l, m, r } = topo(lab);
  await startKipfw(lab, m, 'st');
  server(lab, r, '198.18.0.2', 7101);
  server(lab, l, '198.18.0.1', 7102);
  await sleep(300);
  // no check-state: the rule's own implicit probe-state (first in the rule) lets the replies through
  const rules = [
    ['add', '200', 'allow', 'tcp', 'from', '198.18.0.1', 'to', 'any', 'setup', 'keep-state'],
    ['add', '300', 'deny', 'tcp', 'from', 'any', 'to', 'any'],
  ];
  for (const a of rules) must('st', ...a);
  // a client in l that holds its connection for 3 s, then closes it
  const hold = `const s = require('net').connect({ host: '198.18.0.2', port: 7101 });
    s.on('connect', () => { console.log('connected'); setTimeout(() => s.destroy(), 3000); });
    s.on('error', (e) => console.log(e.code));`;
  const client = lab.spawn(l, process.execPath, ['-e', hold]);
  let said = '';
  client.stdout?.on('data', (d: Buffer) => { said += d.toString(); });
  for (let i = 0; i < 40 && !said.includes('connected'); i++) await sleep(50);
  assert.match(said, /connected/, 'l -> r passes and creates a state');
  assert.equal(connect(lab, r, '198.18.0.1', 7102, 1000), 'timeout', 'r -> l SYN is blocked');
  const dyn = must('st', '-d', 'show');
  assert.match(dyn, /## Dynamic rules/, dyn);
  assert.match(dyn, /00200 .*STATE tcp 198\.18\.0\.1 \d+ <-> 198\.18\.0\.2 7101/, dyn);
  // after the close the state lives dyn_fin_lifetime / dyn_rst_lifetime (1 s); the daemon expires it
  await new Promise((res) => client.once('exit', res));
  await sleep(3000);
  const later = must('st', '-d', 'show');
  assert.doesNotMatch(later, /STATE tcp 198\.18\.0\.1 \d+ <-> 198\.18\.0\.2 7101/, 'the state expired');
}));

test('kipfw: setdscp rewrites the DSCP that r receives; dscp matches it', opts, () => withLab(async (lab) => {
  const { l, m, r } = topo(lab);
  await startKipfw(lab, m, 'ds');
  must('ds', 'add', '100', 'setdscp', 'af11', 'icmp', 'from', 'any', 'to', 'any', 'icmptypes', '8');
  must('ds', 'add', '110', 'count', 'icmp', 'from', 'any', 'to', 'any', 'dscp', 'af11');
  const dump = lab.spawn(r, 'tcpdump', ['-n', '-v', '-c', '1', '-i', 'r0', 'icmp[icmptype] == icmp-echo']);
  let out = '';
  dump.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  await sleep(800);
  assert.ok(ping(lab, l, '198.18.0.2').ok, 'the rewritten packet is valid (checksum fixed)');
  for (let i = 0; i < 40 && !/tos 0x28/.test(out); i++) await sleep(50);
  assert.match(out, /tos 0x28/, `AF11 = DSCP 10 = tos 0x28: ${out}`);
  const c = must('ds', 'show', '110').trim().split(/\s+/);
  assert.ok(Number(c[1]) >= 1, 'dscp af11 matched after setdscp');
}));

test('kipfw: a table of 5000 addresses, rules file all-or-nothing, lookup', opts, () => withLab(async (lab) => {
  const { l, m } = topo(lab);
  await startKipfw(lab, m, 'tb');
  const lines = ['table blk create type addr'];
  for (let i = 0; i < 5000; i++) lines.push(`table blk add 198.19.${i >> 8}.${i & 255}/32 ${i}`);
  lines.push('table blk add 198.18.0.1/32 7');
  lines.push('add 100 deny ip from table(blk) to any');
  const file = path.join(process.env.NETMAP_TS_DIR!, 'rules.txt');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  const bad = path.join(process.env.NETMAP_TS_DIR!, 'bad.txt');
  fs.writeFileSync(bad, 'add 100 allow ip from any to any\nadd 200 allwo ip from any to any\n');
  const b = ipfw('tb', bad);
  assert.notEqual(b.status, 0, 'a bad line fails the file');
  assert.match(b.err, /Line 2/);
  assert.match(must('tb', 'list'), /^65535 allow ip from any to any\n$/, 'nothing of a failed file applied');
  must('tb', '-q', file);
  assert.equal(ping(lab, l, '198.18.0.2').ok, false, 'l is in the table');
  const info = must('tb', 'table', 'blk', 'info');
  assert.match(info, /5001/);
  must('tb', 'table', 'blk', 'delete', '198.18.0.1/32');
  assert.ok(ping(lab, l, '198.18.0.2').ok, 'deleted from the table');
  must('tb', 'add', '50', 'deny', 'icmp', 'from', 'any', 'to', 'any', 'lookup', 'src-ip', 'blk');
  must('tb', 'table', 'blk', 'add', '198.18.0.1/32', '3');
  assert.equal(ping(lab, l, '198.18.0.2').ok, false, 'lookup src-ip');
}));

test('kipfw: a second daemon on the same ports gets EBUSY; after SIGKILL the ports open again', opts, () => withLab(async (lab) => {
  const { l, m } = topo(lab);
  const first = await startKipfw(lab, m, 'k1');
  const second = lab.run(m, process.execPath, [CLI, 'kipfw', '-s', 'k2', '--duration', '1', 'netmap:m0', 'netmap:m1'], 20_000);
  assert.notEqual(second.status, 0);
  assert.match(second.stderr, /EBUSY/, second.stderr);
  const same = lab.run(m, process.execPath, [CLI, 'kipfw', '-s', 'k1', '--duration', '1', 'pipeX{1', 'pipeX}1'], 20_000);
  assert.match(same.stderr, /already running|EBUSY/, 'a second daemon of the same name');
  const bad = ipfw('k1', 'add', '100', 'allow', 'tcp', 'from', 'any', 'to', 'any', 'bogus');
  assert.ok(bad.status === 64 || bad.status === 65, `EX_USAGE or EX_DATAERR, not ${bad.status}: ${bad.err}`);
  assert.match(bad.err, /^ipfw: .*bogus/m);
  assert.match(must('k1', 'list'), /^65535 allow ip from any to any\n$/, 'a bad rule changes nothing');
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  await startKipfw(lab, m, 'k1');
  assert.ok(ping(lab, l, '198.18.0.2', 2).ok, 'a new daemon forwards after the old one was killed');
}));

test('kipfw: dummynet pipes delay ping by their configured delay; pipe show counts', opts, () => withLab(async (lab) => {
  const { l, m } = topo(lab);
  await startKipfw(lab, m, 'dn');
  const base = ping(lab, l, '198.18.0.2', 10);
  assert.ok(base.ok, base.out);
  // minimum RTTs of 10 pings: the machine's load moves averages by milliseconds, not the shortest round trip
  const rtt = (out: string): number => Number(/= ([\d.]+)\/[\d.]+\//.exec(out)?.[1] ?? NaN);
  const r0 = rtt(base.out);
  must('dn', 'pipe', '1', 'config', 'delay', '20ms');
  must('dn', 'pipe', '2', 'config', 'delay', '20ms');
  must('dn', 'add', '100', 'pipe', '1', 'icmp', 'from', '198.18.0.1', 'to', 'any');
  must('dn', 'add', '200', 'pipe', '2', 'icmp', 'from', '198.18.0.2', 'to', 'any');
  const slow = ping(lab, l, '198.18.0.2', 10);
  assert.ok(slow.ok, slow.out);
  const r1 = rtt(slow.out);
  assert.ok(Math.abs(r1 - r0 - 40) <= 1, `RTT ${r1} ms = base ${r0} ms + 40 ms ± 1`);
  const show = must('dn', 'pipe', '1', 'show');
  assert.match(show, /^00001: +unlimited +20 ms burst 0$/m, show);
  const row = show.trim().split('\n').at(-1)!.trim().split(/\s+/);
  assert.equal(row[4], '10', `10 echo requests through pipe 1: ${show}`);
  // FreeBSD: `pipe zero` clears the rule counters (ipfw_zero), not dummynet's
  assert.equal(must('dn', 'pipe', 'zero'), 'Accounting cleared.\n');
  assert.match(must('dn', 'show', '100'), /^00100 +0 +0 pipe 1 /m);
  assert.equal(must('dn', 'pipe', '1', 'show').trim().split('\n').at(-1)!.trim().split(/\s+/)[4], '10', 'Tot_pkt kept');
}));

test('kipfw --rt: the data path runs SCHED_FIFO and still shapes; refused out of range', opts, () => withLab(async (lab) => {
  const { l, m } = topo(lab);
  const d = await startKipfw(lab, m, 'rt', ['--rt', '20']);
  // `ip netns exec` execs kipfw in place: the child's pid is kipfw's main (data-path) thread
  const policy = spawnSync('chrt', ['-p', String(d.pid)], { encoding: 'utf8' }).stdout;
  assert.match(policy, /SCHED_FIFO/, policy);
  assert.match(policy, /priority: 20/, policy);
  // re-executed in place with V8's GC in the one thread
  assert.match(fs.readFileSync(`/proc/${d.pid}/cmdline`, 'utf8'), /--single-threaded-gc/);
  must('rt', 'pipe', '1', 'config', 'delay', '10ms');
  must('rt', 'add', '100', 'pipe', '1', 'icmp', 'from', '198.18.0.1', 'to', 'any');
  const out = ping(lab, l, '198.18.0.2', 5);
  assert.ok(out.ok, out.out);
  const min = Number(/= ([\d.]+)\//.exec(out.out)?.[1] ?? NaN);
  assert.ok(min >= 10 && min < 12, `RTT through a 10 ms pipe: ${min} ms`);
  for (const [args, msg] of [[['--rt', '100'], /--rt/]] as const) {
    const r = spawnSync(process.execPath, [CLI, 'kipfw', '-s', 'rtbad', ...args, 'netmap:m0', 'netmap:m1'], { encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(r.status, 0, `kipfw ${args.join(' ')} is refused`);
    assert.match(r.stderr, msg, r.stderr);
  }
}));

test('kipfw: layer2 rules (MAC, mac-type) and lookup dst-port on a number table', opts, () => withLab(async (lab) => {
  const { l, m, r } = topo(lab);
  await startKipfw(lab, m, 'l2');
  const lmac = JSON.parse(lab.must(l, 'ip', ['-j', 'link', 'show', 'l0']).stdout)[0].address as string;
  must('l2', 'add', '100', 'deny', 'ip', 'from', 'any', 'to', 'any', 'MAC', 'any', lmac, 'layer2');
  assert.equal(ping(lab, l, '198.18.0.2').ok, false, 'frames from l0\'s MAC are dropped');
  must('l2', 'delete', '100');
  assert.ok(ping(lab, l, '198.18.0.2').ok);
  // ARP is no IP: with ARP denied, a fresh neighbour cache cannot resolve
  must('l2', 'add', '100', 'deny', 'ip', 'from', 'any', 'to', 'any', 'mac-type', 'arp');
  lab.must(l, 'ip', ['neigh', 'flush', 'dev', 'l0']);
  assert.equal(ping(lab, l, '198.18.0.2').ok, false, 'ARP blocked');
  must('l2', 'delete', '100');
  server(lab, r, '198.18.0.2', 7301);
  server(lab, r, '198.18.0.2', 7302);
  await sleep(300);
  must('l2', 'table', 'ports', 'create', 'type', 'number');
  must('l2', 'table', 'ports', 'add', '7301');
  must('l2', 'add', '200', 'deny', 'tcp', 'from', 'any', 'to', 'any', 'lookup', 'dst-port', 'ports');
  assert.equal(connect(lab, l, '198.18.0.2', 7301, 1000), 'timeout', 'port 7301 is in the table');
  assert.equal(connect(lab, l, '198.18.0.2', 7302), 'connected', 'port 7302 is not');
}));

test('kipfw: malformed control requests get an error and the daemon keeps serving', opts, () => withLab(async (lab) => {
  const { l, m } = topo(lab);
  await startKipfw(lab, m, 'mal');
  const net = await import('node:net');
  const sock = path.join(process.env.NETMAP_TS_DIR!, 'ipfw-mal.sock');
  const exchange = (payload: string): Promise<string> => new Promise((resolve) => {
    const c = net.connect(sock);
    let got = '';
    c.on('data', (d) => { got += d.toString(); if (got.includes('\n')) c.end(); });
    c.on('close', () => resolve(got));
    c.on('error', () => resolve(got));
    c.write(payload);
    setTimeout(() => c.destroy(), 3000);
  });
  assert.match(await exchange('not json\n'), /"status":64/);
  assert.match(await exchange('{"argv": [1, 2]}\n'), /"status":64/);
  assert.match(await exchange('{"file": 7}\n'), /"status":64/);
  assert.match(await exchange('{"argv": ["add", "100", "deny", "ip", "from", "300.1.2.3", "to", "any"]}\n'), /"status":68,.*hostname/); // EX_NOHOST, as FreeBSD
  await exchange('{"argv": ["add"'); // cut off mid-request
  assert.equal(must('mal', 'add', '100', 'deny', 'icmp', 'from', 'any', 'to', 'any').trim(), '00100 deny icmp from any to any');
  assert.equal(ping(lab, l, '198.18.0.2').ok, false, 'still filtering');
}));

test('kipfw between an interface and its own host stack (netmap:m0 netmap:m0^)', opts, () => withLab(async (lab) => {
  const { l, m } = topo(lab);
  lab.addr(m, 'm0', '198.18.0.3/24');
  const child = lab.spawn(m, process.execPath, [CLI, 'kipfw', '-s', 'hs', 'netmap:m0', 'netmap:m0^']);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const sock = path.join(process.env.NETMAP_TS_DIR!, 'ipfw-hs.sock');
  for (let i = 0; i < 200 && !fs.existsSync(sock) && child.exitCode === null; i++) await sleep(50);
  assert.ok(fs.existsSync(sock), err);
  await sleep(300);
  assert.ok(ping(lab, l, '198.18.0.3', 2).ok, 'the host stack answers through the firewall');
  must('hs', 'add', '100', 'deny', 'icmp', 'from', 'any', 'to', '198.18.0.3', 'recv', 'm0');
  assert.equal(ping(lab, l, '198.18.0.3').ok, false, 'denied on its way from the wire to the stack');
  const c = must('hs', 'show', '100').trim().split(/\s+/);
  assert.ok(Number(c[1]) >= 1, 'recv m0 matched the wire side');
}));
