/**
 * pkt-gen end to end: separate tx and rx processes over pipes (never drop) and VALE (sent =
 * received + counted drops), ranges, rates, sequence checks, ping/pong, bad arguments, --help.
 * Every run is bounded by -n and a kill timeout, with its own NETMAP_TS_DIR.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { freshDir, removeDir, run, start, jsonOf } from './helpers.js';

const haveVale = fs.existsSync(new URL('../../src/switch/index.js', import.meta.url));

async function txrx(dir: string, rxArgs: string[], txArgs: string[]) {
  const rx = start(['pkt-gen', '-f', 'rx', '--json', '-T', '0', ...rxArgs], dir);
  await rx.waitFor('"type":"start"');
  const tx = await run(['pkt-gen', '-f', 'tx', '--json', '-T', '0', ...txArgs], dir);
  const r = await rx.done;
  assert.equal(tx.code, 0, tx.stderr);
  assert.equal(r.code, 0, r.stderr);
  return { tx: jsonOf(tx.stdout), rx: jsonOf(r.stdout) };
}

test('pipe: tx and rx in two processes, every packet arrives, counts and bytes agree', async () => {
  const dir = freshDir('pipe');
  try {
    const n = 300_000;
    const { tx, rx } = await txrx(dir, ['-i', 'netmap:pa}0', '-n', String(n)], ['-i', 'netmap:pa{0', '-n', String(n), '-l', '60']);
    assert.equal(tx.packets, n);
    assert.equal(rx.packets, n);
    assert.equal(tx.bytes, n * 60);
    assert.equal(rx.bytes, n * 60);
    assert.equal(rx.drops, 0);
    assert.equal(tx.size, 60);
    assert.ok(Number(tx.pps) > 1000 && Number(rx.pps) > 1000, `rates ${tx.pps} ${rx.pps}`);
    assert.ok(Math.abs(Number(tx.pps) - Number(tx.packets) / Number(tx.seconds)) < 1e-3 * Number(tx.pps));
    assert.ok(Number(tx.avg_batch) > 1 && Number(tx.avg_batch) <= 512);
  } finally { removeDir(dir); }
});

test('pipe: -p 2 runs two threads on rings name-0 and name-1; totals add up', async () => {
  const dir = freshDir('threads');
  try {
    const n = 200_001;
    const { tx, rx } = await txrx(dir, ['-i', 'netmap:pb}0@conf:rings=2', '-p', '2', '-n', String(n)], ['-i', 'netmap:pb{0@conf:rings=2', '-p', '2', '-n', String(n), '-l', '128']);
    assert.equal(tx.threads, 2);
    assert.equal(tx.queues, 2);
    assert.equal(tx.packets, n);
    assert.equal(rx.packets, n);
    assert.equal(rx.bytes, n * 128);
    // more threads than rings is refused
    const bad = await run(['pkt-gen', '-i', 'netmap:pc{0', '-f', 'tx', '-p', '2', '-n', '1'], dir);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /-p 2: .*only 1 TX ring/);
  } finally { removeDir(dir); }
});

test('pipe: txseq -> rxseq sees no gap; the text output has netmap\'s format', async () => {
  const dir = freshDir('seq');
  try {
    const n = 100_000;
    const rx = start(['pkt-gen', '-i', 'netmap:ps}0', '-f', 'rxseq', '-n', String(n), '-T', '0'], dir);
    await rx.waitFor('Receiving from');
    const tx = await run(['pkt-gen', '-i', 'netmap:ps{0', '-f', 'txseq', '-n', String(n), '-T', '0'], dir);
    const r = await rx.done;
    assert.equal(tx.code, 0, tx.stderr);
    assert.equal(r.code, 0, r.stderr);
    assert.match(tx.stdout, /^Sending on netmap:ps\{0: 1 queues, 1 threads and \d+ cpus\.\n10\.0\.0\.1 -> 10\.1\.0\.1 \(00:00:00:00:00:00 -> ff:ff:ff:ff:ff:ff\)\n/);
    assert.match(tx.stdout, new RegExp(`Sent ${n} packets ${n * 60} bytes \\d+ events 60 bytes each in \\d+\\.\\d\\d seconds\\.\\nSpeed: \\d+\\.\\d{3} [KMG]?pps Bandwidth: \\d+\\.\\d{3} [KMG]?bps \\(raw \\d+\\.\\d{3} [KMG]?bps\\)\\. Average batch: \\d+\\.\\d\\d pkts\\n`));
    assert.match(r.stdout, new RegExp(`Received ${n} packets ${n * 60} bytes`));
    assert.match(r.stdout, /Sequence: 0 gaps, 0 packets lost, 0 out of order\./);
  } finally { removeDir(dir); }
});

test('pipe: -R limits the rate and per-interval lines are printed', async () => {
  const dir = freshDir('rate');
  try {
    const rx = start(['pkt-gen', '-i', 'netmap:pr}0', '-f', 'rx', '-n', '6000', '--json', '-T', '0'], dir);
    await rx.waitFor('"type":"start"');
    const tx = await run(['pkt-gen', '-i', 'netmap:pr{0', '-f', 'tx', '-n', '6000', '-R', '5000', '-T', '300'], dir);
    await rx.done;
    assert.equal(tx.code, 0, tx.stderr);
    const m = /Sent 6000 packets .* in (\d+\.\d+) seconds/.exec(tx.stdout);
    assert.ok(m, tx.stdout);
    const secs = Number(m[1]);
    assert.ok(secs > 0.95 && secs < 4, `6000 packets at 5000 pps took ${secs} s`); // upper bound loose: shared CPUs
    assert.match(tx.stderr, /^\d{3}\.\d{6} main_thread \d+\.\d{3} K?pps \(\d+\.\d{3} K?pkts \d+\.\d{3} [KM]?bps in \d+ usec\) \d+\.\d\d avg_batch \d+ min_space$/m);
  } finally { removeDir(dir); }
});

test('pipe: ping/pong measures round trips', async () => {
  const dir = freshDir('ping');
  try {
    const pong = start(['pkt-gen', '-i', 'netmap:pp}0', '-f', 'pong', '-n', '200', '--json', '-T', '0'], dir);
    await pong.waitFor('"type":"start"');
    const ping = await run(['pkt-gen', '-i', 'netmap:pp{0', '-f', 'ping', '-n', '200', '--json', '-T', '0'], dir);
    const p = await pong.done;
    assert.equal(ping.code, 0, ping.stderr);
    assert.equal(p.code, 0, p.stderr);
    const s = jsonOf(ping.stdout);
    assert.equal(s.sent, 200);
    assert.equal(s.packets, 200);
    assert.ok(Number(s.rtt_min_ns) > 0 && Number(s.rtt_min_ns) <= Number(s.rtt_avg_ns) && Number(s.rtt_avg_ns) <= Number(s.rtt_max_ns), JSON.stringify(s));
    assert.equal(jsonOf(p.stdout).packets, 200);
    const text = await run(['pkt-gen', '-i', 'netmap:pq{0', '-f', 'ping', '-n', '1', '-T', '0'], dir, 8000);
    assert.equal(text.code, 0, text.stderr); // no pong: the one request times out, nothing received
    assert.match(text.stdout, /Received nothing\.\nRTT over 0 packets: min 0 av 0 max 0 ns \(1 sent, 0 received\)/);
  } finally { removeDir(dir); }
});

test('VALE: sent = received + drops counted by the switch', { skip: haveVale ? false : 'src/switch is not in this build' }, async () => {
  const dir = freshDir('vale');
  try {
    const n = 500_000;
    const rx = start(['pkt-gen', '-i', 'valepg0:rx', '-f', 'rx', '-W', '--json', '-T', '0'], dir);
    await rx.waitFor('"type":"start"');
    const tx = await run(['pkt-gen', '-i', 'valepg0:tx', '-f', 'tx', '-n', String(n), '--json', '-T', '0'], dir);
    const r = await rx.done;
    assert.equal(tx.code, 0, tx.stderr);
    assert.equal(r.code, 0, r.stderr);
    const t = jsonOf(tx.stdout), s = jsonOf(r.stdout);
    assert.equal(t.packets, n);
    assert.ok(Number(s.packets) > 0);
    assert.equal(Number(s.packets) + Number(s.drops) + Number(t.drops), n, `received ${s.packets} + drops ${s.drops}/${t.drops}`);
    assert.equal(s.bytes, Number(s.packets) * 60);
    // txseq -> rxseq: the packets missing from the sequence are exactly the drops the switch counted
    const rx2 = start(['pkt-gen', '-i', 'valepg1:rx', '-f', 'rxseq', '-W', '--json', '-T', '0'], dir);
    await rx2.waitFor('"type":"start"');
    const tx2 = await run(['pkt-gen', '-i', 'valepg1:tx', '-f', 'txseq', '-n', '20000', '-R', '20000', '--json', '-T', '0'], dir);
    const r2 = jsonOf((await rx2.done).stdout);
    assert.equal(tx2.code, 0, tx2.stderr);
    assert.equal(Number(r2.packets) + Number(r2.drops), 20000);
    assert.equal(r2.seq_lost, r2.drops);
    assert.equal(r2.seq_out_of_order, 0);
    assert.ok(Number(r2.drops) < 10000, `a rate-limited sender loses little (${r2.drops} drops)`);
  } finally { removeDir(dir); }
});

test('bad arguments: clear error, usage, non-zero exit; --help exits 0', async () => {
  const dir = freshDir('args');
  try {
    const help = await run(['pkt-gen', '--help'], dir);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /usage: netmap pkt-gen -i port/);
    assert.match(help.stdout, /-p threads/);
    const cases: [string[], RegExp][] = [
      [['-f', 'tx'], /missing -i port/],
      [['-i', 'netmap:x{0', '-f', 'blast'], /-f blast: unrecognised function/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-l', '10'], /-l: 10 is out of range \(42\.\.65535\)/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-l', 'big'], /-l: 'big' is not an integer/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-d', '10.0.0'], /-d: '10\.0\.0' is not an IPv4 address/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-s', '10.0.0.9-10.0.0.1'], /-s: range .* ends .* before it starts/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-D', 'ff:ff'], /-D: 'ff:ff' is not a MAC address/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-q'], /unknown option '-q'/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-n'], /option -n needs a value/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-n', '1', '-n', '2'], /option -n given twice/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-vq'], /unknown option '-q' in '-vq'/],
      [['-i', 'netmap:x{0', '-f', 'tx', 'extra'], /unexpected argument 'extra'/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-b', '0'], /-b: 0 is out of range/],
      [['-i', 'tap:foo', '-f', 'tx'], /not supported/],
    ];
    for (const [args, re] of cases) {
      const r = await run(['pkt-gen', ...args], dir);
      assert.equal(r.code, 64, `EX_USAGE for ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.match(r.stderr, /usage: netmap pkt-gen/);
    }
    // errors found when running: exit 1 with the netmap errno name
    const runtime: [string[], RegExp][] = [
      [['-i', 'netmap:x{0', '-f', 'ping', '-p', '2'], /-p 2: ping runs on one thread only \(EINVAL\)/],
      [['-i', 'netmap:x{0', '-f', 'tx', '-l', '4000', '-n', '1'], /-l 4000: frames longer than the port's 2048-byte buffers/],
      [['-i', 'netmap:x{0*', '-f', 'tx', '-n', '1'], /EINVAL/],
    ];
    for (const [args, re] of runtime) {
      const r = await run(['pkt-gen', ...args], dir);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
    }
  } finally { removeDir(dir); }
});
