/**
 * Per-rule counters: exact after N packets per rule, exact across two worker threads that count
 * into their own stripes of one SharedArrayBuffer, a dead thread's stripe taken over with its
 * sums, zero and resetlog.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { Counters, DynTable } from '../../src/firewall/state.js';
import { c, rule, config, build, verdict, ip4, TH } from './fw-helpers.js';

const A = '198.18.0.1', B = '198.18.1.2';

function ruleset() {
  return config([
    rule(100, 'count', 0, []),
    rule(200, 'deny', 0, [c({ op: 'proto', proto: 17 })]),
    rule(300, 'allow', 0, [c({ op: 'proto', proto: 6 })]),
  ]);
}
const frames = [ip4(A, B, { kind: 'tcp', sport: 1, dport: 2, flags: TH.SYN }), ip4(A, B, { kind: 'udp', sport: 1, dport: 2, payload: 12 }), ip4(A, B, { kind: 'icmp', type: 8 })];

for (const compiled of [false, true]) {
  test(`${compiled ? 'compiled' : 'interpreted'}: counters are exact per rule after N packets`, () => {
    const cfg = ruleset();
    const { ev, shared } = build(cfg, compiled);
    const n = 3000;
    for (let i = 0; i < n; i++) verdict(ev, frames[i % 3]!, { now: 1_700_000_123_456 });
    const read = (k: number) => shared.counters.read(cfg.rules[k]!.slot);
    assert.deepEqual(read(0), { packets: n, bytes: 1000 * (40 + 40 + 28), lastMatch: 1_700_000_123 });
    assert.deepEqual(read(1), { packets: 1000, bytes: 1000 * 40, lastMatch: 1_700_000_123 });
    assert.deepEqual(read(2), { packets: 1000, bytes: 1000 * 40, lastMatch: 1_700_000_123 });
    assert.deepEqual(read(3), { packets: 1000, bytes: 1000 * 28, lastMatch: 1_700_000_123 }, 'ICMP falls to the default rule');
    shared.counters.zero(cfg.rules[0]!.slot);
    assert.deepEqual(read(0), { packets: 0, bytes: 0, lastMatch: 0 });
    verdict(ev, frames[0]!);
    assert.equal(read(0).packets, 1, 'counting resumes from zero');
    assert.equal(shared.counters.logOne(5, 2) && shared.counters.logOne(5, 2), true);
    assert.equal(shared.counters.logOne(5, 2), false, 'logamount reached');
    shared.counters.resetLog(5);
    assert.equal(shared.counters.logOne(5, 2), true);
  });
}

function runWorker(data: object): Promise<{ stripe: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./counters-worker.js', import.meta.url), { workerData: data });
    let msg: { stripe: number } | null = null;
    w.on('message', (m) => { msg = m; });
    w.on('error', reject);
    w.on('exit', (code) => (code === 0 && msg ? resolve(msg) : reject(new Error(`worker exit ${code}`))));
  });
}

test('two worker threads on one SharedArrayBuffer add up exactly; a dead stripe is taken over', async () => {
  const stripes = 3, capacity = 64;
  const cLen = Counters.bytesNeeded(stripes), dLen = DynTable.bytesNeeded(capacity);
  const cOff = 16, dOff = 16 + ((cLen + 7) & ~7);
  const sab = new SharedArrayBuffer(dOff + dLen);
  const cfg = ruleset();
  const base = { sab, cOff, cLen, stripes, dOff, dLen, capacity, config: cfg, frames: frames.map((f) => [...f]) };
  const n = 200_000;
  const [a, b] = await Promise.all([
    runWorker({ ...base, packets: n, compiled: true, keepStripe: true }),
    runWorker({ ...base, packets: n, compiled: false, keepStripe: true }),
  ]);
  assert.notEqual(a.stripe, b.stripe, 'each thread counts into its own stripe');
  assert.ok(a.stripe > 0 && b.stripe > 0);
  const counters = new Counters(sab, cOff, cLen, stripes);
  assert.equal(counters.read(cfg.rules[0]!.slot).packets, 2 * n, 'the count rule saw every packet of both threads');
  // Exact split: n = 200000 packets per worker cycle over 3 frames: TCP gets ceil(n/3), UDP and ICMP the rest.
  const tcpPer = Math.ceil(n / 3), udpPer = Math.floor((n + 1) / 3), icmpPer = Math.floor(n / 3);
  assert.equal(counters.read(cfg.rules[2]!.slot).packets, 2 * tcpPer);
  assert.equal(counters.read(cfg.rules[1]!.slot).packets, 2 * udpPer);
  assert.equal(counters.read(cfg.rules[3]!.slot).packets, 2 * icmpPer);
  assert.equal(counters.read(cfg.rules[0]!.slot).bytes, 2 * (tcpPer * 40 + udpPer * 40 + icmpPer * 28));
  // Both workers exited holding their stripes: this thread takes one over, sums intact.
  const s = counters.acquireStripe();
  assert.ok(s === a.stripe || s === b.stripe, `took over a dead thread's stripe (${s})`);
  const before = counters.read(cfg.rules[0]!.slot).packets;
  counters.add(s, cfg.rules[0]!.slot, 10, 1);
  assert.equal(counters.read(cfg.rules[0]!.slot).packets, before + 1);
  counters.releaseStripe(s);
});

test('two processes on one mapped file: counters and states add up exactly', async () => {
  const { spawn } = await import('node:child_process');
  const fs = await import('node:fs');
  const path = await import('node:path');
  const native = await import('../../src/native/index.js');
  const dir = process.env.NETMAP_TS_DIR || '/dev/shm';
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `fw-eval-xproc-${process.pid}`);
  const capacity = 2048;
  const cLen = Counters.bytesNeeded(4), dLen = DynTable.bytesNeeded(capacity);
  const cOff = 4096 + 8, dOff = cOff + ((cLen + 7) & ~7);
  const size = Math.ceil((dOff + dLen) / 4096) * 4096;
  fs.writeFileSync(file, Buffer.alloc(0));
  fs.truncateSync(file, size);
  try {
    const worker = new URL('./process-worker.js', import.meta.url).pathname;
    const packets = 100_000;
    const run = (flowBase: number) => new Promise<{ stripe: number; passed: number }>((resolve, reject) => {
      const child = spawn(process.execPath, [worker, file, String(cOff), String(cLen), String(dOff), String(dLen), String(capacity), String(flowBase), String(packets)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exit ${code}`))));
    });
    const [a, b] = await Promise.all([run(10_000), run(20_000)]);
    assert.equal(a.passed, packets); assert.equal(b.passed, packets);
    const fd = native.openFile(file, fs.constants.O_RDWR);
    const { address, buffer } = native.reserveAddressSpace(size);
    native.mapFileAt(address, size, fd);
    native.closeFd(fd);
    const counters = new Counters(buffer, cOff, cLen, 4);
    const dyn = new DynTable(buffer, dOff, dLen, capacity);
    // Slots as config() assigns them: 100 → 1, 200 → 2, 300 → 3.
    assert.equal(counters.read(2).packets, 2 * packets, 'every packet decided by rule 200 (directly or through its state)');
    assert.equal(counters.read(2).bytes, 2 * packets * 28);
    assert.equal(counters.read(1).packets, 0);
    const states = dyn.list(1_000_000);
    assert.equal(states.length, 1000, 'each process installed its 500 flows, none lost or doubled');
    assert.equal(states.reduce((s, x) => s + x.packets, 0), 2 * (packets - 500), 'state hits: every packet after the installing one');
  } finally {
    fs.rmSync(file, { force: true });
  }
});

test('two threads installing and hitting the same 500 flows at once: 500 states, nothing lost', async () => {
  const stripes = 3, capacity = 1024;
  const cLen = Counters.bytesNeeded(stripes), dLen = DynTable.bytesNeeded(capacity);
  const cOff = 8, dOff = 8 + ((cLen + 7) & ~7);
  const sab = new SharedArrayBuffer(dOff + dLen);
  const cfg = config([
    rule(100, 'check-state', 0, []),
    rule(200, 'allow', 0, [c({ op: 'proto', proto: 17 }), c({ op: 'probe-state', name: 'default' }), c({ op: 'keep-state', name: 'default', record: false })]),
    rule(300, 'deny', 0, []),
  ], { settings: { dynMax: capacity } });
  const flows = Array.from({ length: 500 }, (_, i) => [...ip4(A, B, { kind: 'udp', sport: 1000 + i, dport: 53 })]);
  const base = { sab, cOff, cLen, stripes, dOff, dLen, capacity, config: cfg, frames: flows, keepStripe: false };
  const n = 50_000;
  await Promise.all([runWorker({ ...base, packets: n, compiled: true }), runWorker({ ...base, packets: n, compiled: true })]);
  const counters = new Counters(sab, cOff, cLen, stripes);
  const dyn = new DynTable(sab, dOff, dLen, capacity);
  const states = dyn.list(1_700_000_000_000);
  assert.equal(states.length, 500, 'one state per flow, however the two threads raced');
  assert.equal(counters.read(cfg.rules[1]!.slot).packets, 2 * n, 'every packet passed by rule 200');
  const onStates = states.reduce((s, x) => s + x.packets, 0);
  assert.ok(onStates >= 2 * n - 1000 && onStates <= 2 * n - 500, `state hits ${onStates}: all but the installing packets`);
});
