/**
 * Dummynet accuracy through the real daemon, measured by iperf3 (issue 12 §4): l (198.18.0.1) —
 * m0 [kipfw in m] m1 — r (198.18.0.2). Expected values are the arithmetic of ref ipfw-pcap.md
 * §3.4 with what the daemon's L2 path counts: the whole Ethernet frame without FCS (netmap-ipfw
 * re-prepends the Ethernet header before dummynet). An iperf3 UDP datagram of P bytes (`-l P`, the
 * payload iperf3 counts) is a frame of P + 42; a full TCP segment (MSS 1448 with timestamps) 1514.
 * Each iperf3 run is `-t 3` with 0.5 s intervals; rates are taken from the receiver's intervals
 * past the start-up. `pipe show` counters are checked against iperf3's own packet counts.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-dnip-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { skipReason, withLab, sleep } = await import('../helpers/netns.js');
const skip = skipReason(['ping', 'iperf3', 'ss']);
if (skip !== null) console.log(`# skipping dummynet iperf3 tests: ${skip}`);
const opts = { skip: skip ?? false, timeout: 60_000 };

const { startKipfw, must } = await import('./kipfw-lab.js');
const { topo, runAsync, pingRtts, pingSent, median, quantile, flowRow, within, load, iperf3, intervalGoodput, queueWaitNear } = await import('./dn-lab.js');

/** Ethernet + IPv4 + UDP headers: a datagram of P bytes is a frame of P + 42. */
const UDP_OVERHEAD = 42;
/** iperf3's UDP set-up: the client sends one 4-byte datagram before the test (then the data). */
const UDP_CONNECT_FRAME = 4 + UDP_OVERHEAD;

test('dummynet iperf3: bw 10 Mbit/s gives the layer-2 goodput (UDP ± 2%, TCP ± 5%); pipe show counts what iperf3 sent', opts, () => withLab(async (lab) => {
  const t = topo(lab);
  await startKipfw(lab, t.m, 'ib');
  must('ib', 'pipe', '1', 'config', 'bw', '10Mbit/s');
  must('ib', 'add', '100', 'pipe', '1', 'udp', 'from', '198.18.0.1', 'to', '198.18.0.2', 'dst-port', '5301');
  const P = 1400;
  // 11 Mbit/s of payload offered: the pipe stays backlogged
  const u = await iperf3(lab, t, 5301, ['-u', '-b', '11M', '-l', String(P), '-t', '3']);
  const udp = intervalGoodput(u.server, 0.5, 3);
  const udpExpected = 10 * P / (P + UDP_OVERHEAD); // 9.709
  const sent = u.client.end.sum!.packets!;
  const srv = u.server.end.sum!;
  const received = srv.packets! - srv.lost_packets!;
  const [tot, bytes, drops] = flowRow(must('ib', 'pipe', '1', 'show'));
  console.log(`# iperf3 UDP: goodput ${udp.toFixed(3)} Mbit/s over 0.5-3 s, computed ${udpExpected.toFixed(3)}; client sent ${sent}, server got ${received} (lost ${srv.lost_packets}, jitter ${srv.jitter_ms?.toFixed(3)} ms); pipe show ${tot} pkts ${bytes} bytes ${drops} drops (load ${load()})`);
  within(udp, udpExpected, 0.02, 'UDP goodput');
  // the offered load: every datagram iperf3 sent, and its connect datagram
  assert.equal(tot, sent + 1, 'Tot_pkt = datagrams iperf3 sent + its connect datagram');
  assert.equal(bytes, sent * (P + UDP_OVERHEAD) + UDP_CONNECT_FRAME, 'bytes = whole frames');
  // what the pipe let through reached the server, but for what was still on its way when iperf3's
  // server stopped counting: the 50 queue slots (58 ms of the link), the frame on the link, and
  // one released but not yet read (a run at load 2 had 2 beyond the queue)
  const IN_FLIGHT = 50 + 2;
  const passed = tot - drops;
  assert.ok(passed >= received + 1 && passed <= received + 1 + IN_FLIGHT, `passed ${passed} = server's ${received} + connect + at most ${IN_FLIGHT} in flight (queue 50, the link, one released)`);

  must('ib', 'add', '110', 'pipe', '1', 'tcp', 'from', '198.18.0.1', 'to', '198.18.0.2', 'dst-port', '5302');
  const c = await iperf3(lab, t, 5302, ['-t', '3']);
  const tcp = intervalGoodput(c.server, 1, 3); // past slow start
  const tcpExpected = 10 * 1448 / 1514; // 9.564
  console.log(`# iperf3 TCP: goodput ${tcp.toFixed(3)} Mbit/s over 1-3 s, computed ${tcpExpected.toFixed(3)}; retransmits ${(c.client.end.sum_sent as { retransmits?: number }).retransmits}`);
  within(tcp, tcpExpected, 0.05, 'TCP goodput');
}));

test('dummynet iperf3: 50 Mbit/s UDP into 10 Mbit/s loses ~80%; a ping waits the queue cap qsize·L·8/B', opts, () => withLab(async (lab) => {
  const t = topo(lab);
  await startKipfw(lab, t.m, 'if');
  const base = Math.min(...pingRtts(lab.run(t.l, 'ping', ['-4', '-c', '5', '-i', '0.05', '-W', '1', '198.18.0.2']).stdout));
  must('if', 'pipe', '1', 'config', 'bw', '10Mbit/s', 'queue', '50');
  must('if', 'add', '100', 'pipe', '1', 'udp', 'from', '198.18.0.1', 'to', '198.18.0.2', 'dst-port', '5303');
  must('if', 'add', '110', 'pipe', '1', 'icmp', 'from', '198.18.0.1', 'to', '198.18.0.2');
  const P = 1472, L = P + UDP_OVERHEAD; // full 1514-byte frames
  const running = iperf3(lab, t, 5303, ['-u', '-b', '50M', '-l', String(P), '-t', '3']);
  await sleep(800);
  const pings = await runAsync(lab, t.l, 'ping', ['-4', '-c', '30', '-i', '0.06', '-W', '1', '198.18.0.2']);
  const u = await running;
  const sent = u.client.end.sum!.packets!;
  const secs = u.client.end.sum!.seconds;
  const srv = u.server.end.sum!;
  const nPing = pingSent(pings.out);
  const rtts = pingRtts(pings.out);
  const [tot, bytes, drops] = flowRow(must('if', 'pipe', '1', 'show'));
  // the link carries B for the whole run (the pings' 98-byte frames take a little of it), plus the
  // full queue that drains after the sender stops
  const carried = 10e6 / 8 / L * secs + 50;
  const expectedLoss = 1 - carried / sent;
  const loss = drops / tot;
  const cap = 50 * L * 8 / 10e6 * 1000; // 60.56 ms
  console.log(`# iperf3 flood: sent ${sent} in ${secs.toFixed(2)} s (${(sent * P * 8 / secs / 1e6).toFixed(1)} Mbit/s), iperf3 lost ${srv.lost_packets}/${srv.packets} (${((srv.lost_packets! / srv.packets!) * 100).toFixed(1)}%); pipe show ${tot} pkts ${bytes} bytes ${drops} drops: loss ${(loss * 100).toFixed(1)}% (computed ${(expectedLoss * 100).toFixed(1)}%); ping ${rtts.length}/${nPing} answered, RTT median ${median(rtts)} p90 ${quantile(rtts, 0.9)} ms, base ${base}, cap ${cap.toFixed(2)} ms (load ${load()})`);
  // pipe show: the offered load, to the packet and the byte
  assert.equal(tot, sent + 1 + nPing, 'Tot_pkt = iperf3 datagrams + its connect datagram + echo requests');
  assert.equal(bytes, sent * L + UDP_CONNECT_FRAME + nPing * 98, 'bytes = whole frames (echo requests are 98 bytes)');
  const received = srv.packets! - srv.lost_packets!;
  const passed = tot - drops;
  assert.ok(passed >= received + 1 + rtts.length && passed <= received + 1 + nPing + 50, `passed ${passed}: the server's ${received}, the connect datagram, the answered pings and at most a queue of 50`);
  assert.ok(Math.abs(loss - expectedLoss) <= 0.03, `loss ${loss.toFixed(4)} ≈ ${expectedLoss.toFixed(4)}`);
  assert.ok(loss > 0.75 && loss < 0.85, `about 80% loss: ${loss}`);
  assert.ok(rtts.length >= 3, `some pings got through the full queue: ${pings.out}`);
  queueWaitNear(rtts, base, cap, 0.10, 'queueing delay of a ping behind a full queue');
  assert.ok(quantile(rtts, 0.9) - base <= cap * 1.1, `pings wait no longer than the cap: p90 ${quantile(rtts, 0.9)} ms`);
}));

test('dummynet iperf3: FreeBSD dummynet.sh queue: weights 99 and 1 on 1 MByte/s, TCP under a ping flood', opts, () => withLab(async (lab) => {
  // dummynet.sh: TCP (weight 99) carries 2,048,000 bytes within 3 s while `ping -f -s 1300`
  // (weight 1) floods the link, all three tries; with the weights swapped it fails all three. Here:
  // iperf3 TCP for 3 s must carry at least those bytes, and with the weights swapped it must not.
  const t = topo(lab);
  await startKipfw(lab, t.m, 'iq');
  must('iq', 'pipe', '1', 'config', 'bw', '1MByte/s');
  must('iq', 'queue', '100', 'config', 'sched', '1', 'weight', '99', 'mask', 'all');
  must('iq', 'queue', '200', 'config', 'sched', '1', 'weight', '1', 'mask', 'all');
  const NEED = 2000 * 1024;
  const run = async (tcpQueue: string, icmpQueue: string, port: number): Promise<{ bytes: number; pings: number }> => {
    must('iq', 'flush');
    must('iq', 'add', '1000', 'queue', tcpQueue, 'tcp', 'from', '198.18.0.1', 'to', '198.18.0.2', 'dst-port', String(port));
    must('iq', 'add', '1001', 'queue', icmpQueue, 'icmp', 'from', '198.18.0.1', 'to', '198.18.0.2');
    const flood = runAsync(lab, t.l, 'ping', ['-4', '-f', '-s', '1300', '-w', '5', '198.18.0.2'], 10_000);
    await sleep(1000); // the flood fills its queue
    const c = await iperf3(lab, t, port, ['-t', '3']);
    const fl = await flood;
    return { bytes: c.server.end.sum_received?.bytes ?? c.server.intervals.reduce((a, i) => a + i.sum.bytes, 0), pings: pingSent(fl.out) };
  };
  const good = await run('100', '200', 5304);
  const bad = await run('200', '100', 5305);
  console.log(`# dummynet.sh queue: TCP weight 99 carried ${good.bytes} bytes in 3 s under ${good.pings} flood pings; weight 1: ${bad.bytes} bytes under ${bad.pings} pings; needed ${NEED} (load ${load()})`);
  assert.ok(good.pings > 100 && bad.pings > 100, 'the floods ran');
  assert.ok(good.bytes >= NEED, `TCP at weight 99 carries ${NEED} bytes within 3 s: ${good.bytes}`);
  // and no more than the link allows: 3 s of 8 Mbit/s in 1514-byte frames of 1448 bytes
  assert.ok(good.bytes <= 3 * 1e6 * 1448 / 1514 * 1.05, `TCP no faster than the link: ${good.bytes}`);
  assert.ok(bad.bytes < NEED, `TCP at weight 1 under the flood does not: ${bad.bytes}`);
  assert.ok(bad.bytes > 0, 'but it is not starved to nothing');
}));
