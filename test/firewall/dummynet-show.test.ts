/**
 * `pipe show` / `queue show` / `sched show` text against FreeBSD's (ref §3.5): the real FreeBSD 11
 * transcript is reproduced from the same configuration and the same counters, and scripts'
 * awk field positions hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dummynet, FlowKey } from '../../src/firewall/dummynet/index.js';
import { flowRow, ipv6Text, humanizeBurst } from '../../src/firewall/dummynet/show.js';

const TRANSCRIPT = [
  '00001: 100.000 Kbit/s  300 ms burst 0',
  'q131073  50 sl.plr 0.050000 0 flows (1 buckets) sched 65537 weight 0 lmax 0 pri 0 droptail',
  ' sched 65537 type FIFO flags 0x0 0 buckets 1 active',
  'BKT Prot ___Source IP/port____ ____Dest. IP/port____ Tot_pkt/bytes Pkt/Byte Drp',
  '  0 ip           0.0.0.0/0             0.0.0.0/0      130    68642  0    0   6',
].join('\n') + '\n';

test('the FreeBSD 11 transcript: pipe 1 config bw 100Kbit/s delay 300 plr 0.05, 130 packets / 68642 bytes, 6 lost', () => {
  // plr is random: find the PRNG seed whose run loses exactly 6 of the 130 packets, as in the transcript.
  for (let seed = 1; seed < 2000; seed++) {
    const d = new Dummynet({ seed });
    assert.equal(d.command('pipe 1 config bw 100Kbit/s delay 300 plr 0.05'.split(' ')).status, 0);
    const key = new FlowKey().setV4(1, 0xc6120001, 0, 0xc6120002, 0);
    const H = new Int32Array(64), R = new Int32Array(64);
    let t = 0;
    let lost = 0;
    for (let i = 0; i < 130; i++) {
      if (d.enqueue('pipe', 1, i, i < 2 ? 529 : 528, key, 0, t) !== 0) lost++;
      t += 1e9;
      d.dequeueDue(t, H, R);
    }
    if (lost !== 6) continue;
    const out = d.command(['pipe', 'show']);
    assert.equal(out.status, 0);
    assert.equal(out.stdout, TRANSCRIPT);
    const last = out.stdout.trim().split('\n').pop()!.trim().split(/\s+/);
    assert.deepEqual([last[4], last[5], last[8]], ['130', '68642', '6']);
    assert.equal(d.command(['pipe', 'list']).stdout, TRANSCRIPT);
    return;
  }
  assert.fail('no seed loses exactly 6 of 130');
});

test('queue line with weight 99 and a mask line; the flows of a masked queue; sched show with children', () => {
  const d = new Dummynet();
  for (const c of ['pipe 1 config bw 1Mbit/s', 'queue 100 config pipe 1 weight 99 mask dst-port 0xffff', 'queue 2 config pipe 1 weight 1']) {
    assert.equal(d.command(c.split(' ')).status, 0);
  }
  const out = d.command(['queue', '100', 'show']).stdout.split('\n');
  assert.equal(out[0], 'q00100  50 sl. 0 flows (64 buckets) sched 1 weight 99 lmax 0 pri 0 droptail');
  assert.equal(out[1], '    mask:  0x00 0x00000000/0xffff'.replace('0x00000000/0xffff', '0x00000000/0x0000 -> 0x00000000/0xffff'));
  const k = new FlowKey();
  for (let port = 1000; port < 1003; port++) d.enqueue('queue', 100, port, 100, k.setV4(17, 0xc6120001, 5, 0xc6120002, port), 0, 0);
  const q = d.command(['queue', '100', 'show']).stdout.split('\n');
  assert.match(q[0]!, / 3 flows \(64 buckets\)/);
  assert.equal(q[2], 'BKT Prot ___Source IP/port____ ____Dest. IP/port____ Tot_pkt/bytes Pkt/Byte Drp');
  const rows = q.slice(3, 6).sort();
  // Flow ids are masked to the destination port: the rest prints as zeros, protocol 0 as "ip".
  for (const r of rows) assert.match(r, /^ {0,2}\d{1,3} ip           0\.0\.0\.0\/0             0\.0\.0\.0\/100[0-2]     1      100  [01]  *[0-9]+   0$/);
  const s = d.command(['sched', 'show']).stdout.split('\n');
  assert.equal(s[0], '00001:   1.000 Mbit/s    0 ms burst 0');
  assert.equal(s[1], ' sched 1 type WF2Q+ flags 0x0 0 buckets 1 active');
  assert.equal(s[2], '   Children flowsets: 2 100 ');
});

test('flow rows: field widths of list_flow for IPv4 and IPv6, BKT from flow_id_hash', () => {
  const k = new FlowKey().setV4(6, 0xc6120001, 80, 0xc6120002, 12345);
  const row = flowRow({ fid: k, totPkts: 12, totBytes: 3456, length: 3, lenBytes: 4500, drops: 7 });
  const h = ((0xc6120002 ^ (0xc6120002 >>> 15) ^ (0xc6120001 << 1) ^ (0xc6120001 >>> 16) ^ (12345 << 1) ^ 80 ^ 6) >>> 0) & 0xff;
  // %3u%c %-4s %15s/%-5d %15s/%-5d %4llu %8llu %2u %4u %3u
  assert.equal(row, `${String(h).padStart(3)} tcp  ${'198.18.0.1'.padStart(15)}/80    ${'198.18.0.2'.padStart(15)}/12345   12     3456  3 4500   7`);
  const v6 = new FlowKey();
  v6.isV6 = true; v6.proto = 17; v6.src6.set([0x20010db8, 0, 0, 1]); v6.dst6.set([0x20010db8, 0, 0, 2]); v6.srcPort = 53; v6.dstPort = 5353; v6.flowId6 = 5;
  const r6 = flowRow({ fid: v6, totPkts: 1, totBytes: 90, length: 0, lenBytes: 0, drops: 0 });
  // %3u%c %9s %7d  %39s/%-5d  %39s/%-5d then the counters
  assert.equal(r6.slice(4), `${'udp'.padStart(9)} ${'5'.padStart(7)}  ${'2001:db8::1'.padStart(39)}/53    ${' ' + '2001:db8::2'.padStart(39)}/5353     1       90  0    0   0`);
});

test('inet_ntop and humanize_number as FreeBSD prints them', () => {
  assert.equal(ipv6Text([0, 0, 0, 1]), '::1');
  assert.equal(ipv6Text([0, 0, 0, 0]), '::');
  assert.equal(ipv6Text([0x20010db8, 0x00010000, 0, 0x00000001]), '2001:db8:1::1');
  assert.equal(ipv6Text([0xfe800000, 0, 0x02000000, 0x00000001]), 'fe80::200:0:0:1');
  assert.equal(ipv6Text([0, 0, 0xffff, 0xc6120001]), '::ffff:198.18.0.1');
  assert.equal(humanizeBurst(0), '0');
  assert.equal(humanizeBurst(512000), '512000');
  // A 12-byte buffer leaves 9 digits: larger values are divided by 1024 until they fit.
  assert.equal(humanizeBurst(2 ** 40), '1048576 M');
});

test('link line rates: bit/s, Kbit/s, Mbit/s, Gbit/s and unlimited', () => {
  const d = new Dummynet();
  const cases: Array<[string, string]> = [['', 'unlimited     '], ['bw 500', '500.000 bit/s '], ['bw 300Kbit/s', '300.000 Kbit/s'], ['bw 10Mbit/s', ' 10.000 Mbit/s'], ['bw 2Gbit/s', '  2.000 Gbit/s']];
  for (const [arg, rate] of cases) {
    d.command(`pipe 4 config ${arg} delay 7`.split(' ').filter(Boolean));
    assert.equal(d.command(['pipe', '4', 'show']).stdout.split('\n')[0], `00004: ${rate}    7 ms burst 0`, arg);
  }
});

test('mask queue puts the queue number in the flow id (row marked *); a queue id shows its sched mask too', () => {
  const d = new Dummynet();
  // `pipe N config mask` masks the pipe's FIFO twin; queues see sched N's own mask.
  for (const c of ['pipe 1 config bw 1Mbit/s', 'sched 1 config mask src-ip 0xffffffff', 'queue 5 config pipe 1 mask queue', 'queue 6 config pipe 1 mask dst-port 0xffff']) {
    assert.equal(d.command(c.split(' ')).status, 0, c);
  }
  const k = new FlowKey();
  d.enqueue('queue', 5, 1, 100, k.setV4(17, 0xc6120001, 5, 0xc6120002, 80), 0, 0);
  const q5 = d.command(['queue', '5', 'show']).stdout.split('\n');
  assert.equal(q5[1], '    mask: queue, 0x00 0x00000000/0x0000 -> 0x00000000/0x0000');
  // The packet already left the queue for the link (it waits in the delay line): 0 queued.
  assert.match(q5[3]!, /^ {0,2}\d{1,3}\*ip        198\.18\.0\.1\/0             0\.0\.0\.0\/0        1      100  0    0   0$/);
  // Without a sched mask on sched 1 the queue id would be the destination port alone.
  d.enqueue('queue', 6, 2, 100, k.setV4(17, 0xc6120009, 5, 0xc6120002, 80), 0, 0);
  const q6 = d.command(['queue', '6', 'show']).stdout.split('\n');
  assert.match(q6[3]!, /^ {0,2}\d{1,3} ip        198\.18\.0\.9\/0             0\.0\.0\.0\/80       1      100  0    0   0$/);
  assert.match(d.command(['sched', '1', 'show']).stdout, / sched 1 type WF2Q\+ flags 0x1 64 buckets 2 active\n    mask:  0x00 0xffffffff\/0x0000 -> 0x00000000\/0x0000\n   Children flowsets: 5 6 \n/);
});
