/**
 * `pipe|queue|sched N config` parsing and clamping as FreeBSD's sbin/ipfw/dummynet.c and the
 * kernel's ipdn_bound_var (ref §3.2), error messages and exit statuses, JSON round trip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dummynet } from '../../src/firewall/dummynet/index.js';
import { parseBandwidth, expandNumber, strtoul } from '../../src/firewall/dummynet/config.js';

function run(d: Dummynet, cmd: string) { return d.command(cmd.split(' ')); }
/** The configuration JSON of one flowset / scheduler. */
function fsOf(d: Dummynet, nr: number) {
  return (d.configJSON() as { flowsets: Array<{ nr: number; qsize: number; qBytes: boolean; plr: number; weight: number }> }).flowsets.find((f) => f.nr === nr)!;
}
function schedOf(d: Dummynet, nr: number) {
  return (d.configJSON() as { scheds: Array<{ nr: number; type: string; link: { bw: number; delayMs: number; burstBytes: number } }> }).scheds.find((s) => s.nr === nr)!;
}

test('bw units: K=1000, M=1e6, G=1e9; Byte/bytes x8, Bit/s and bare mean bits', () => {
  const cases: Array<[string, number]> = [
    ['300Kbit/s', 300_000], ['1MByte/s', 8_000_000], ['10Mb', 10_000_000], ['30Byte/s', 240], ['10Mbit/s', 10_000_000],
    ['1Gbit/s', 1_000_000_000], ['2KByte/s', 16_000], ['100', 100], ['5bytes', 40], ['64kbit/s', 64_000], ['0x10', 16], ['7B', 56],
  ];
  for (const [arg, want] of cases) assert.equal(parseBandwidth(arg), want, arg);
  // a fraction or an unknown multiplier was read as the digits before it (1.5Mbit/s: 1 bit/s)
  for (const arg of ['1.5Mbit/s', '10Xbit/s', '10M5', '3 ']) {
    assert.throws(() => parseBandwidth(arg), (e: unknown) => (e as { message?: string }).message === `bw ${arg}: a whole number of bit/s with K, M or G and a unit (1500Kbit/s, 2MByte/s)`, arg);
  }
});

test('bw and delay land in the link of pipe N and of its FIFO twin N+65536', () => {
  const d = new Dummynet();
  assert.equal(run(d, 'pipe 1 config bw 30Byte/s delay 20ms').status, 0);
  for (const nr of [1, 65537]) {
    assert.equal(schedOf(d, nr).link.bw, 240);
    assert.equal(schedOf(d, nr).link.delayMs, 20);
  }
  assert.equal(schedOf(d, 1).type, 'WF2Q+');
  assert.equal(schedOf(d, 65537).type, 'FIFO');
  assert.match(run(d, 'pipe show').stdout, /^00001: 240\.000 bit\/s    20 ms burst 0\n/);
});

test('queue sizes: slots 1..100 (default 50), bytes 1500..1MiB (default 16384); below min -> default, above max -> max, with a notice', () => {
  const cases: Array<[string, number, boolean, string]> = [
    ['queue 1000B', 16384, true, 'Bump queue byte size to 16384 (was 1000)\n'],
    ['queue 500', 100, false, 'Clamp queue slot size to 100 (was 500)\n'],
    ['queue 0', 50, false, 'Bump queue slot size to 50 (was 0)\n'],
    ['queue 10KB', 10240, true, ''],
    ['queue 4Kbytes', 4096, true, ''],
    ['queue 2000bytes', 2000, true, ''],
    ['queue 2000000B', 1048576, true, 'Clamp queue byte size to 1048576 (was 2000000)\n'],
    ['queue 20', 20, false, ''],
    ['', 50, false, ''],
  ];
  for (const [arg, size, bytes, notice] of cases) {
    const d = new Dummynet();
    const r = run(d, `pipe 1 config bw 1Mbit/s ${arg}`.trim());
    assert.equal(r.status, 0, arg);
    assert.equal(r.stderr, notice, arg);
    assert.equal(fsOf(d, 1 + 2 * 65536).qsize, size, arg);
    assert.equal(fsOf(d, 1 + 2 * 65536).qBytes, bytes, arg);
  }
});

test('plr is stored as a fraction of 2^31-1; one outside [0,1] or not a number is refused, nothing changed (ipfw clamped it silently)', () => {
  const d = new Dummynet();
  run(d, 'pipe 1 config plr 1');
  assert.equal(fsOf(d, 131073).plr, 0x7fffffff);
  run(d, 'pipe 1 config plr 0.05');
  assert.equal(fsOf(d, 131073).plr, Math.trunc(0.05 * 0x7fffffff));
  assert.match(run(d, 'pipe show').stdout, / 50 sl\.plr 0\.050000 0 flows/);
  for (const [arg, msg] of [['1.5', 'plr 1.5 is out of range (0..1)'], ['-3', 'plr: invalid number -3 (a probability, 0..1)'], ['abc', 'plr: invalid number abc (a probability, 0..1)']]) {
    const r = run(d, `pipe 1 config plr ${arg}`);
    assert.deepEqual([r.status, r.stderr], [65, `ipfw: ${msg}\n`], arg);
    assert.equal(fsOf(d, 131073).plr, Math.trunc(0.05 * 0x7fffffff), arg);
  }
});

test('burst uses expand_number (powers of 1024); delay over 10000 is refused', () => {
  assert.equal(expandNumber('500K'), 512000);
  assert.equal(expandNumber('1M'), 1048576);
  assert.equal(expandNumber('1500'), 1500);
  const d = new Dummynet();
  assert.equal(run(d, 'pipe 2 config bw 1Mbit/s burst 500K').status, 0);
  assert.equal(schedOf(d, 2).link.burstBytes, 512000);
  assert.match(run(d, 'pipe 2 show').stdout, /^00002:   1\.000 Mbit\/s    0 ms burst 512000\n/);
  const r = run(d, 'pipe 2 config delay 20000');
  assert.deepEqual([r.status, r.stderr], [65, 'ipfw: delay must be < 10000\n']);
  assert.equal(schedOf(d, 2).link.burstBytes, 512000, 'a refused command changes nothing');
  const neg = run(d, 'pipe 2 config delay -5ms');
  assert.deepEqual([neg.status, neg.stderr], [65, 'ipfw: delay must be < 10000\n'], 'no negative delay');
});

test('errors: messages and exit statuses as ipfw', () => {
  const d = new Dummynet();
  run(d, 'pipe 1 config bw 1Mbit/s');
  const cases: Array<[string, number, string]> = [
    ['pipe config', 64, 'ipfw: need a pipe/flowset/sched number\n'],
    ['pipe 1 config bw', 64, 'ipfw: bw needs bandwidth or interface\n\n'],
    ['pipe 1 config foo', 65, "ipfw: unrecognised option ``foo''\n"],
    ['pipe 1 config mask proto 0x1ff', 65, 'ipfw: proto mask must be 8 bit\n'],
    ['pipe 1 config mask src-port 0x1ffff', 65, 'ipfw: port mask must be 16 bit\n'],
    ['pipe 1 config mask flow-id 0x1fffff', 65, 'ipfw: flow_id mask must be 20 bit\n'],
    ['pipe 1 config mask src-ip6 /129', 65, 'ipfw: in6addr invalid mask len\n'],
    ['pipe 1 config mask src-ip', 64, 'ipfw: mask: value missing\n'],
    ['pipe 1 config ecn', 64, 'ipfw: enable red/gred for ECN\n'],
    ['pipe 1 config red 0.002/30/10/0.1', 65, 'ipfw: min_th 30 must be < than max_th 10\n'],
    ['pipe 1 config red 0/10/30/0.1', 65, 'ipfw: 0 < w_q <= 1\n'],
    ['pipe 1 config red 0.1/10/30/2', 65, 'ipfw: 0 <= max_p <= 1\n'],
    ['queue 5 config weight 3', 1, 'ipfw: setsockopt(IP_DUMMYNET_CONFIGURE): Invalid argument\n'],
    ['sched 1 config type bogus', 1, 'ipfw: setsockopt(IP_DUMMYNET_CONFIGURE): Invalid argument\n'],
    ['queue 1 config type rr', 64, 'ipfw: type is only for schedulers\n'],
    ['sched 1 config weight 3', 64, 'ipfw: weight is only for flowsets\n'],
    ['pipe 7 delete', 1, 'ipfw: rule 1: setsockopt(IP_DUMMYNET_DEL): Invalid argument\n'],
    ['pipe', 64, 'ipfw: missing command\n'],
    ['pipe 1 frobnicate', 64, "ipfw: bad command `frobnicate'\n"],
  ];
  const before = JSON.stringify(d.configJSON());
  for (const [cmd, status, stderr] of cases) {
    const r = run(d, cmd);
    assert.deepEqual([r.status, r.stderr, r.stdout], [status, stderr, ''], cmd);
  }
  assert.equal(JSON.stringify(d.configJSON()), before, 'refused commands change nothing');
});

test('queue weight/lmax/pri are bounded per scheduler type, with a notice for typed values', () => {
  const d = new Dummynet();
  run(d, 'pipe 1 config bw 1Mbit/s');
  const r = run(d, 'queue 3 config pipe 1 weight 500');
  assert.equal(r.stderr, 'Clamp WF2Q+ weight to 100 (was 500)\n');
  assert.equal(fsOf(d, 3).weight, 100);
  run(d, 'queue 4 config pipe 1');
  assert.match(run(d, 'queue 4 show').stdout, /^q00004  50 sl\. 0 flows \(1 buckets\) sched 1 weight 1 lmax 0 pri 0 droptail\n/);
  run(d, 'sched 1 config type rr');
  assert.match(run(d, 'queue 4 show').stdout, /weight 1 lmax 1500 pri 0/);
  // As in FreeBSD, attaching bounded the stored weight (1 under WF2Q+): under prio it is priority 1.
  run(d, 'sched 1 config type prio');
  assert.match(run(d, 'queue 4 show').stdout, /weight 1 lmax 0 pri 0/);
  run(d, 'queue 4 config pipe 1 weight 99');
  assert.equal(run(d, 'queue 4 config pipe 1 weight 99').stderr, 'Clamp PRIO priority to 63 (was 99)\n');
});

test('mask forms: all, /len prefixes, IPv6 lengths; buckets bounded', () => {
  const d = new Dummynet();
  run(d, 'queue 9 config pipe 1 mask src-ip /24 dst-port 0xff00 buckets 256');
  const f = (d.configJSON() as { flowsets: Array<{ nr: number; mask: { srcIp: number; dstPort: number }; buckets: number; hasMask: boolean }> }).flowsets.find((x) => x.nr === 9)!;
  assert.equal(f.mask.srcIp, 0xffffff);
  assert.equal(f.mask.dstPort, 0xff00);
  assert.equal(f.buckets, 256);
  run(d, 'pipe 1 config mask all');
  const out = run(d, 'pipe 1 show').stdout;
  assert.match(out, /flags 0x1 64 buckets 0 active\n/);
  // `all` does not set the IPv6 address type, so FreeBSD prints the IPv4 form of the mask.
  assert.match(out, /\n    mask:  0xff 0xffffffff\/0xffff -> 0xffffffff\/0xffff\n/);
  run(d, 'pipe 2 config mask src-ip6 /64');
  assert.match(run(d, 'pipe 2 show').stdout, /mask: proto: 0x00, flow_id: 0x00000000,  ffff:ffff:ffff:ffff::\/0x0000 -> ::\/0x0000/);
  const r = run(d, 'queue 9 config pipe 1 mask src-ip 0xffffffff buckets 100000');
  assert.equal(r.stderr, 'Clamp flowset buckets to 65536 (was 100000)\n');
});

test('profile FILE: parsed, sorted, interpolated into samples; listed with its loss', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dn-profile-'));
  try {
    const file = join(dir, 'wifi.txt');
    writeFileSync(file, '# an example\nname    bla_bla_bla\nsamples 100\nloss-level    0.86\nprob    delay\n0       200\t# minimum\n0.5     200\n0.5     300\n0.8     1000\n0.9     1300\n1       1300\n');
    const d = new Dummynet();
    assert.equal(run(d, `pipe 1 config bw 1Mbit/s profile ${file}`).status, 0);
    const out = run(d, 'pipe 1 show').stdout.split('\n');
    assert.equal(out[1], '\t profile: name "bla_bla_bla" loss 0.860000 samples 100');
    const s = (d.configJSON() as { scheds: Array<{ nr: number; profile: { samples: number[]; lossLevel: number } }> }).scheds.find((x) => x.nr === 1)!;
    assert.equal(s.profile.samples.length, 100);
    assert.equal(s.profile.lossLevel, 86);
    assert.equal(s.profile.samples[10], 200);
    assert.equal(s.profile.samples[55], 300 + Math.trunc((55 - 50) / (30 / 700)));
    writeFileSync(file, 'prob delay\n0.5 10\n');
    const bad = run(d, `pipe 1 config profile ${file}`);
    assert.equal(bad.status, 65);
    assert.match(bad.stderr, /too few samples, need at least 2/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fq_codel parameters, sched type names case-insensitive', () => {
  const d = new Dummynet();
  assert.equal(run(d, 'sched 1 config type FQ_Codel target 2500us interval 0.2s quantum 1000 limit 500 flows 64 noecn').status, 0);
  const out = run(d, 'sched 1 show').stdout;
  assert.match(out, / sched 1 type FQ_CODEL flags 0x0 0 buckets 0 active\n FQ_CODEL target 2.5ms interval 200ms quantum 1000 limit 500 flows 64 NoECN\n/);
  // Defaults, ECN on; a bare time is milliseconds; 2 s prints as FreeBSD's "2fs".
  run(d, 'sched 1 config type fq_codel interval 2000');
  assert.match(run(d, 'sched 1 show').stdout, / FQ_CODEL target 5ms interval 2fs quantum 1514 limit 10240 flows 1024 ECN\n/);
  assert.equal(run(d, 'sched 1 config type fq_codel limit 99999').stderr, 'Clamp fq_codel limit to 20480 (was 99999)\n');
  const odd = run(d, 'sched 1 config type fq_codel bogus');
  assert.deepEqual([odd.status, odd.stdout], [0, 'bogus is Invalid parameter\n']);
  const bad = run(d, 'sched 1 config type fq_codel target soon');
  assert.deepEqual([bad.status, bad.stderr], [65, 'ipfw: target needs time\n\n']);
});

test('configJSON/loadConfig round-trip reproduces the listing; delete and flush', () => {
  const d = new Dummynet();
  for (const c of ['pipe 1 config bw 10Mbit/s delay 20ms plr 0.01 queue 30', 'pipe 2 config bw 2Mbit/s mask dst-ip 0xffffff00 buckets 128', 'queue 5 config pipe 2 weight 7 red 0.002/5/15/0.1 mask src-port 0xffff', 'sched 3 config type qfq']) {
    assert.equal(run(d, c).status, 0, c);
  }
  const json = JSON.parse(JSON.stringify(d.configJSON()));
  const d2 = new Dummynet();
  d2.loadConfig(json);
  for (const k of ['pipe', 'queue', 'sched']) assert.equal(run(d2, `${k} show`).stdout, run(d, `${k} show`).stdout, k);
  assert.equal(run(d2, 'pipe 1 delete').status, 0);
  assert.doesNotMatch(run(d2, 'pipe show').stdout, /^00001/m);
  assert.equal(run(d2, 'queue 5 delete').status, 0);
  assert.equal(run(d2, 'queue show').stdout, '');
  assert.equal(run(d2, 'pipe flush').status, 0);
  assert.equal(run(d2, 'pipe show').stdout + run(d2, 'sched show').stdout, '');
  assert.throws(() => d2.loadConfig({ format: 'nope' }), { name: 'NetmapError', code: 'EINVAL' });
  assert.throws(() => new Dummynet({ maxPackets: 0 }), { name: 'NetmapError', code: 'EINVAL' });
});

test('strtoul follows C (base 0: hex, octal, decimal; rest returned)', () => {
  assert.deepEqual(strtoul('0x1fK'), { value: 31, rest: 'K' });
  assert.deepEqual(strtoul('010'), { value: 8, rest: '' });
  assert.deepEqual(strtoul('12ms'), { value: 12, rest: 'ms' });
  assert.deepEqual(strtoul('abc'), { value: 0, rest: 'abc' });
});

test('fuzz: random command lines never throw, answer with ipfw statuses, and leave a listable state', async () => {
  const { rng } = await import('../helpers/prng.js');
  const r = rng(2024);
  const words = ['pipe', 'queue', 'sched', 'flowset', 'config', 'delete', 'show', 'list', 'flush', '1', '2', '65535', '65536', '0', '-3', 'x',
    'bw', '10Mbit/s', '0x10KByte/s', 'G', 'delay', '20ms', '99999', 'burst', '1M', 'queue', '1000B', '500', '10KB', 'plr', '0.5', '2',
    'mask', 'all', 'src-ip', 'dst-ip', '0xffffffff', '/24', 'src-port', 'dst-port', '0xffff', 'proto', 'src-ip6', '/64', 'flow-id',
    'buckets', '128', 'noerror', 'red', 'gred', '0.002/5/15/0.1', '0/0/0/0', 'ecn', 'droptail', 'weight', 'lmax', 'pri', 'type',
    'fifo', 'wf2q+', 'rr', 'qfq', 'prio', 'fq_codel', 'target', 'interval', '5ms', 'limit', 'flows', 'quantum', 'noecn', 'profile', '/nonexistent', ''];
  const d = new Dummynet();
  for (let i = 0; i < 4000; i++) {
    const n = 1 + Math.floor(r() * 9);
    const argv: string[] = [];
    for (let k = 0; k < n; k++) argv.push(words[Math.floor(r() * words.length)]!);
    if (r() < 0.7) { argv[0] = ['pipe', 'queue', 'sched'][Math.floor(r() * 3)]!; if (argv.length > 2 && r() < 0.7) { argv[1] = String(1 + Math.floor(r() * 4)); argv[2] = 'config'; } }
    const res = d.command(argv);
    assert.ok([0, 1, 64, 65, 69].includes(res.status), `${argv.join(' ')} -> ${res.status}`);
    if (res.status !== 0) assert.match(res.stderr, /^ipfw: /, argv.join(' '));
  }
  for (const k of ['pipe', 'queue', 'sched']) assert.equal(d.command([k, 'show']).status, 0);
  const j = d.configJSON();
  const d2 = new Dummynet();
  d2.loadConfig(j);
  assert.equal(d2.command(['pipe', 'show']).stdout, d.command(['pipe', 'show']).stdout);
});

test('qfq bounds: weight 1..65536, maxlen 1..2000 (dn_sched_qfq.c)', () => {
  const d = new Dummynet();
  run(d, 'pipe 1 config bw 1Mbit/s');
  run(d, 'sched 1 config type qfq');
  assert.equal(run(d, 'queue 2 config pipe 1 weight 70000 lmax 3000').stderr, 'Clamp qfq weight to 65536 (was 70000)\nClamp qfq maxlen to 2000 (was 3000)\n');
  assert.match(run(d, 'queue 2 show').stdout, /weight 65536 lmax 2000 pri 0/);
});

test('dummynet numbers ipfw would truncate or misread are refused with their range, nothing changed', () => {
  const d = new Dummynet();
  run(d, 'pipe 1 config bw 1Mbit/s delay 20ms');
  run(d, 'queue 1 config pipe 1 weight 5');
  run(d, 'pipe 4464 config bw 2Mbit/s');
  const before = JSON.stringify(d.configJSON());
  for (const [cmd, msg] of [
    ['pipe 1 config delay 2s', 'delay 2s: give milliseconds (delay 20 or delay 20ms), 0..10000'],
    ['pipe 1 config delay abc', 'delay abc: give milliseconds (delay 20 or delay 20ms), 0..10000'],
    ['pipe 1 config mask src-ip 0x100000000', 'ip mask must be 32 bit'],
    ['pipe 1 config mask dst-ip /33', 'ip mask length 33 is out of range (0..32)'],
    ['pipe 1 config mask src-port -1', 'mask -1: a mask is not negative'],
    ['queue 1 config pipe 70000', 'pipe number 70000 is out of range (1..65535)'],
    ['queue 1 config weight -1', 'weight: invalid number -1'],
    ['queue 1 config weight 5x', 'weight: invalid number 5x'],
    ['queue 1 config lmax 1.5', 'lmax: invalid number 1.5'],
    ['pipe 5x config bw 1Mbit/s', 'invalid pipe number 5x'],
    // pipe 70000 named the FIFO twin of pipe 4464 (4464 + 65536) and deleted it
    ['pipe 70000 delete', 'pipe number 70000 is out of range (1..65535)'],
    ['pipe delete 1 70000', 'pipe number 70000 is out of range (1..65535)'],
    ['pipe delete 4464x', 'pipe number: invalid number 4464x'],
  ] as const) {
    const r = run(d, cmd);
    assert.deepEqual([r.status, r.stderr], [65, `ipfw: ${msg}\n`], cmd);
    assert.equal(JSON.stringify(d.configJSON()), before, cmd);
  }
  // the forms that were right stay right
  assert.equal(run(d, 'pipe 1 config delay 30').status, 0);
  assert.equal(run(d, 'pipe 1 config delay 30ms mask dst-ip /32 src-port 0xffff').status, 0);
  assert.equal(run(d, 'queue 1 config pipe 1 weight 7').status, 0);
});
