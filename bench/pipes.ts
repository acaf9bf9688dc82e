/**
 * Netmap pipe benchmark: throughput of 60-byte packets between two processes and between two
 * worker threads, at batch sizes 1, 32, 256 and 512 (packets per txsync/rxsync), the cost per
 * packet at batch 1, and the round-trip latency of one packet over a pipe both ways (busy-polling
 * with rxsync, and sleeping in poll()). The sender writes every slot's length and the receiver
 * reads every slot's length (and the first byte of the first packet of each batch), so both do
 * real work per packet, as pkt-gen does. Those application loops walk the slot words directly
 * (Ring.slotWord), a ring segment at a time and four slots per iteration, as a C compiler would
 * unroll them: in V8 a loop's own overhead costs more than a slot's load or store.
 *
 *   node dist/bench/pipes.js [--ms 1500] [--quick] [--spin] [--poll-spin US] [--slots 1024]
 *                            [--only process|thread|same-thread] [--batches 256,512] [--no-rtt]
 *
 * --spin busy-polls with rxsync/txsync instead of poll(); --poll-spin US sets Port.pollSpinUs on
 * every port (poll() re-checks for US µs before it sleeps; the default, 0, sleeps at once: until
 * 2026-12-03 poll() always spun 30 µs). --only, --batches and --no-rtt pick a subset (bench/pktgen.ts runs the two-process throughput
 * at one batch beside pkt-gen, to compare them in one run).
 *
 * One side on its own (bench/pktgen-callgrind.sh runs each side under valgrind this way):
 *
 *   NETMAP_TS_DIR=DIR node dist/bench/pipes.js --child '{"role":"rx","name":"p","batch":512}'
 *   NETMAP_TS_DIR=DIR node dist/bench/pipes.js --child '{"role":"tx","name":"p","batch":512,"count":1000000}'
 *
 * The tx side sends `count` packets (or runs for `ms`, 1500 by default) and then an end marker; the
 * rx side runs until that marker. Started this way (not forked by this bench), a side prints its
 * result as one JSON line on stdout.
 *
 * Prints JSON lines: {"bench":"pipes","metric":...,"value":...,"unit":...,...}.
 */
import { fork } from 'node:child_process';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

interface Role {
  role: 'tx' | 'rx' | 'ping' | 'pong';
  name: string;
  batch: number;
  /** tx: how long to send (ignored with `count`). */
  ms?: number;
  /** tx: send exactly this many packets, then the end marker. */
  count?: number;
  /** The shared-memory directory (NETMAP_TS_DIR); the environment's when absent. */
  dir?: string;
  blocking?: boolean;
  rounds?: number;
  slots?: number;
  /** Port.pollSpinUs of the ports (undefined: the default). */
  pollSpinUs?: number;
}

interface Result { packets: number; seconds: number; bytes: number; rttNs?: number; cpuMs?: number; cpuWaitMs?: number; threadCpuMs?: number }

/** Field k of this thread's schedstat, in ms (0: time on a CPU, 1: wait for a CPU); -1 where unknown. */
function schedMs(k: number): number {
  try { return Number(fs.readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[k]) / 1e6; } catch { return -1; }
}
const cpuWaitMs = (): number => schedMs(1);

const PKT_LEN = 60;
const END_LEN = 1;

interface SlotRing { slotWord: number; numSlots: number }

/** Sets the length of `k` slots from `from` (wrapping) to `len`; returns the slot after them. */
function writeLengths(u16: Uint16Array, ring: SlotRing, from: number, k: number, len: number): number {
  const n = ring.numSlots;
  let seg = n - from < k ? n - from : k;
  let p = (ring.slotWord + 4 * from) * 2 + 2;
  for (let pass = 0; pass < 2; pass++) {
    const end = p + 8 * seg, end4 = end - 24;
    for (; p < end4; p += 32) { u16[p] = len; u16[p + 8] = len; u16[p + 16] = len; u16[p + 24] = len; }
    for (; p < end; p += 8) u16[p] = len;
    seg = k - seg;
    if (seg === 0) break;
    p = ring.slotWord * 2 + 2;
  }
  const next = from + k;
  return next >= n ? next - n : next;
}

/** Sum of the lengths of `k` slots from `from` (wrapping). */
function sumLengths(u16: Uint16Array, ring: SlotRing, from: number, k: number): number {
  const n = ring.numSlots;
  let seg = n - from < k ? n - from : k, sum = 0;
  let p = (ring.slotWord + 4 * from) * 2 + 2;
  for (let pass = 0; pass < 2; pass++) {
    const end = p + 8 * seg, end4 = end - 24;
    for (; p < end4; p += 32) sum += u16[p]! + u16[p + 8]! + u16[p + 16]! + u16[p + 24]!;
    for (; p < end; p += 8) sum += u16[p]!;
    seg = k - seg;
    if (seg === 0) break;
    p = ring.slotWord * 2 + 2;
  }
  return sum;
}

function conf(r: Role): string {
  return r.slots !== undefined ? `@conf:slots=${r.slots}` : '';
}

async function runRole(r: Role): Promise<Result> {
  if (r.dir !== undefined) process.env.NETMAP_TS_DIR = r.dir;
  const { pipePortType, parentPortType } = await import('../src/pipes/pipe.js');
  const nm = await import('../src/ports/port.js');
  nm.registerPortTypes([pipePortType, parentPortType]);
  const cpu0 = process.cpuUsage();
  const wait0 = cpuWaitMs();
  // how long this side was ready to run but had no CPU: a round that lost a core to another
  // program is not a figure of the code (bench/pktgen.ts leaves such rounds out)
  const waited = (): number => (wait0 < 0 ? -1 : cpuWaitMs() - wait0);
  // this thread's own CPU time (no start-up, no other threads), comparable to pkt-gen's cpu_ms
  const ran0 = schedMs(0);
  const ran = (): number => (ran0 < 0 ? -1 : schedMs(0) - ran0);
  const cpuMs = (): number => { const c = process.cpuUsage(cpu0); return (c.user + c.system) / 1000; };
  if (r.role === 'tx') {
    const port = nm.openPort(`netmap:${r.name}{1${conf(r)}`);
    if (r.pollSpinUs !== undefined) port.pollSpinUs = r.pollSpinUs;
    const tx = port.txRings[0]!;
    const u16 = port.mem.u16;
    const batch = r.batch;
    const count = r.count ?? 0;
    const deadline = count > 0 ? Infinity : performance.now() + (r.ms ?? 1500);
    let sent = 0;
    for (let iter = 0; ; iter++) {
      if (count > 0 ? sent >= count : (iter & 1023) === 0 && performance.now() > deadline) break;
      let room = tx.space();
      if (room === 0) {
        if (r.blocking === false) { port.txsync(); continue; }
        port.poll(nm.POLLOUT, 1000);
        room = tx.space();
        if (room === 0) continue;
      }
      let k = room < batch ? room : batch;
      if (count > 0 && k > count - sent) k = count - sent;
      tx.advance(writeLengths(u16, tx, tx.head, k, PKT_LEN));
      port.txsync();
      sent += k;
    }
    // end marker
    while (tx.space() === 0) port.poll(nm.POLLOUT, 1000);
    tx.setSlotLen(tx.head, END_LEN);
    tx.advance(tx.next(tx.head));
    port.txsync();
    // wait until the receiver has released everything (so closing does not race it)
    const t0 = Date.now();
    while (tx.txPending() && Date.now() - t0 < 5000) port.poll(nm.POLLOUT, 100);
    const cpu = cpuMs();
    port.close();
    return { packets: sent, seconds: 0, bytes: 0, cpuMs: cpu, cpuWaitMs: waited(), threadCpuMs: ran() };
  }
  if (r.role === 'rx') {
    const port = nm.openPort(`netmap:${r.name}}1${conf(r)}`, { noTxPoll: true });
    if (r.pollSpinUs !== undefined) port.pollSpinUs = r.pollSpinUs;
    const rx = port.rxRings[0]!;
    const u8 = port.mem.u8, u16 = port.mem.u16;
    const batch = r.batch;
    const n = rx.numSlots;
    let got = 0, bytes = 0, start = 0, end = 0, probe = 0;
    outer: for (;;) {
      port.rxsync();
      let avail = rx.space();
      if (avail === 0) {
        if (r.blocking === false) continue;
        port.poll(nm.POLLIN, 2000);
        avail = rx.space();
        if (avail === 0) continue;
      }
      if (start === 0) start = performance.now();
      const k = avail < batch ? avail : batch;
      const i = rx.head;
      probe += u8[rx.slotBufOffset(i)]!;
      // the end marker is the only packet of length END_LEN: look for it only when the sum says
      const sum = sumLengths(u16, rx, i, k);
      if (sum !== k * PKT_LEN) {
        let j = i;
        for (let c = 0; c < k; c++) {
          const len = rx.slotLen(j);
          j = rx.next(j);
          if (len === END_LEN) { rx.advance(j); end = performance.now(); break outer; }
          bytes += len;
          got++;
        }
        rx.advance(j);
        continue;
      }
      bytes += sum;
      got += k;
      const next = i + k;
      rx.advance(next >= n ? next - n : next);
    }
    port.rxsync();
    const cpu = cpuMs();
    port.close();
    void probe;
    return { packets: got, seconds: (end - start) / 1000, bytes, cpuMs: cpu, cpuWaitMs: waited(), threadCpuMs: ran() };
  }
  // ping-pong: ping sends on {1 and waits for the echo on its rx ring; pong echoes back.
  const isPing = r.role === 'ping';
  const port = nm.openPort(`netmap:${r.name}${isPing ? '{' : '}'}1`);
  if (r.pollSpinUs !== undefined) port.pollSpinUs = r.pollSpinUs;
  const tx = port.txRings[0]!, rx = port.rxRings[0]!;
  const rounds = r.rounds ?? 10000;
  const recv = (): number => {
    for (;;) {
      port.rxsync();
      if (!rx.empty()) break;
      if (r.blocking === true) port.poll(nm.POLLIN, 2000);
    }
    const len = rx.slotLen(rx.head);
    rx.advance(rx.next(rx.head));
    return len;
  };
  const send = (len: number): void => {
    while (tx.space() === 0) port.poll(nm.POLLOUT, 1000);
    tx.setSlotLen(tx.head, len);
    tx.advance(tx.next(tx.head));
    port.txsync();
  };
  if (isPing) {
    // warm up, then time
    for (let j = 0; j < 200; j++) { send(PKT_LEN); recv(); }
    const t0 = process.hrtime.bigint();
    for (let j = 0; j < rounds; j++) { send(PKT_LEN); recv(); }
    const t1 = process.hrtime.bigint();
    send(END_LEN);
    port.close();
    return { packets: rounds, seconds: Number(t1 - t0) / 1e9, bytes: 0, rttNs: Number(t1 - t0) / rounds };
  }
  for (;;) {
    const len = recv();
    send(len);
    if (len === END_LEN) break;
  }
  const t0 = Date.now();
  while (tx.txPending() && Date.now() - t0 < 2000) { port.poll(nm.POLLOUT, 50); }
  port.close();
  return { packets: 0, seconds: 0, bytes: 0 };
}

// ---- runners ------------------------------------------------------------------------------------

const self = fileURLToPath(import.meta.url);

function inProcess(r: Role): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = fork(self, ['--child', JSON.stringify(r)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: Result | null = null;
    child.on('message', (m) => { result = m as Result; });
    child.on('error', reject);
    child.on('exit', (code) => (result !== null ? resolve(result) : reject(new Error(`${r.role} process exited with ${code}`))));
  });
}

function inThread(r: Role): Promise<Result> {
  return new Promise((resolve, reject) => {
    const w = new Worker(self, { workerData: r });
    let result: Result | null = null;
    w.on('message', (m) => { result = m as Result; });
    w.on('error', reject);
    w.on('exit', (code) => (result !== null ? resolve(result) : reject(new Error(`${r.role} thread exited with ${code}`))));
  });
}

function emit(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ bench: 'pipes', ...o }) + '\n');
}

/**
 * Both ends in one thread, alternating batches: no cross-core traffic and no scheduling, so its
 * CPU time per packet (sender + receiver + both syncs) is a load-independent figure of the code.
 * `loops`: this bench's slot loops, or pkt-gen's (generator/slots.ts) over the same pipe.
 */
async function sameThread(dir: string, batch: number, ms: number, loops: 'pipes' | 'pkt-gen'): Promise<{ mpps: number; cpuNs: number; packets: number }> {
  process.env.NETMAP_TS_DIR = dir;
  const { pipePortType, parentPortType } = await import('../src/pipes/pipe.js');
  const nm = await import('../src/ports/port.js');
  const slots = await import('../src/generator/slots.js');
  nm.registerPortTypes([pipePortType, parentPortType]);
  const name = `bst${loops === 'pipes' ? '' : 'g'}${batch}`;
  const m = nm.openPort(`netmap:${name}{1`, { extraBuffers: 1 }), s = nm.openPort(`netmap:${name}}1`, { noTxPoll: true });
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  const n = tx.numSlots;
  const u8 = s.mem.u8, u16 = s.mem.u16, u32 = m.mem.u32;
  // pkt-gen's sender (slots.ts fillConstant: buffers filled once, then only checked) writes
  // its frame from an extra buffer; its receiver adds up lengths with slots.ts sumLengths
  const filled = new Int32Array(n).fill(-1), tplAt = m.bufOffset(m.bufsHead);
  let firstLap = n;
  let got = 0, bytes = 0, probe = 0;
  const loop = (until: number): void => {
    for (let iter = 0; ; iter++) {
      if ((iter & 255) === 0 && performance.now() > until) break;
      let k = tx.space();
      if (k > batch) k = batch;
      if (loops === 'pkt-gen') {
        tx.advance(slots.fillConstant(m.mem.u8, m.mem.i32, tx.slotWord, n, tx.head, k, filled, tx.bufBase, tx.bufSize, tx.numBufs, tplAt, PKT_LEN, firstLap > 0));
        if (firstLap > 0) firstLap -= k;
        m.txsync();
        s.rxsync();
        let a = rx.space();
        if (a > batch) a = batch;
        const i = rx.head;
        bytes += slots.sumLengths(u16, rx.slotWord, n, i, a);
        rx.advance(slots.slotAfter(i, a, n));
        got += a;
        continue;
      }
      tx.advance(writeLengths(u16, tx, tx.head, k, PKT_LEN));
      m.txsync();
      s.rxsync();
      let a = rx.space();
      if (a > batch) a = batch;
      const i = rx.head;
      if (a > 0) probe += u8[rx.slotBufOffset(i)]!;
      bytes += sumLengths(u16, rx, i, a);
      const next = i + a;
      rx.advance(next >= n ? next - n : next);
      got += a;
    }
  };
  loop(performance.now() + 200); // warm up
  got = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  loop(t0 + ms);
  const t1 = performance.now();
  const c = process.cpuUsage(c0);
  m.close(); s.close();
  void probe; void bytes;
  return { mpps: got / ((t1 - t0) * 1000), cpuNs: ((c.user + c.system) * 1000) / got, packets: got };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const msArg = args.indexOf('--ms');
  const ms = msArg >= 0 ? Number(args[msArg + 1]) : 1500;
  const quick = args.includes('--quick');
  const spin = args.includes('--spin');
  const pollSpinArg = args.indexOf('--poll-spin');
  const pollSpinUs = pollSpinArg >= 0 ? Number(args[pollSpinArg + 1]) : undefined;
  if (pollSpinUs !== undefined && !(Number.isFinite(pollSpinUs) && pollSpinUs >= 0 && pollSpinUs <= 100_000)) throw new Error('--poll-spin: microseconds, 0..100000');
  const slotsArg = args.indexOf('--slots');
  const slots = slotsArg >= 0 ? Number(args[slotsArg + 1]) : 1024;
  const onlyArg = args.indexOf('--only');
  const only = onlyArg >= 0 ? args[onlyArg + 1] : undefined;
  const batchesArg = args.indexOf('--batches');
  const batches = batchesArg >= 0 ? args[batchesArg + 1]!.split(',').map(Number) : quick ? [1, 256] : [1, 32, 256, 512];
  if (batches.some((b) => !Number.isInteger(b) || b < 1 || b > 4096)) throw new Error('--batches: integers 1..4096, comma-separated');
  const rtt = !args.includes('--no-rtt');
  const dir = fs.mkdtempSync('/dev/shm/nmts-bench-pipes-');
  // remove the directory however the run ends (Ctrl-C, a closed pipe on stdout, ...)
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGPIPE'] as const) process.on(sig, () => process.exit(130));
  process.stdout.on('error', () => process.exit(0));
  let seq = 0;
  try {
    for (const batch of only === undefined || only === 'same-thread' ? batches : []) {
      for (const loops of ['pipes', 'pkt-gen'] as const) {
        const r = await sameThread(dir, batch, Math.min(ms, 1000), loops);
        emit({ metric: 'cpu_per_packet', mode: 'same-thread', loops, batch, pkt_len: PKT_LEN, value: Number(r.cpuNs.toFixed(2)), unit: 'ns', mpps: Number(r.mpps.toFixed(2)), note: `sender+receiver+both syncs in one thread; ${loops === 'pipes' ? 'this bench\'s slot loops' : 'pkt-gen\'s slot loops (generator/slots.ts)'}` });
      }
    }
    for (const mode of ['process', 'thread'] as const) {
      if (only !== undefined && only !== mode) continue;
      const run = mode === 'process' ? inProcess : inThread;
      for (const batch of batches) {
        const name = `bp${seq++}`;
        const rx = run({ role: 'rx', name, batch, ms, dir, blocking: !spin, slots, pollSpinUs });
        const tx = run({ role: 'tx', name, batch, ms, dir, blocking: !spin, slots, pollSpinUs });
        const [rr, tr] = await Promise.all([rx, tx]);
        const mpps = rr.packets / rr.seconds / 1e6;
        // CPU time per packet of each side (includes start-up and idle polling; a check on how
        // much of the wall time the side actually ran, which matters on a loaded machine)
        const txCpuNs = ((tr.cpuMs ?? 0) * 1e6) / Math.max(1, tr.packets);
        const rxCpuNs = ((rr.cpuMs ?? 0) * 1e6) / Math.max(1, rr.packets);
        // (process.cpuUsage() is per process: with threads both sides report the process total)
        const cpu = mode === 'process'
          ? { tx_cpu_ns_per_pkt: Number(txCpuNs.toFixed(2)), rx_cpu_ns_per_pkt: Number(rxCpuNs.toFixed(2)) }
          : { both_sides_cpu_ns_per_pkt: Number(Math.max(txCpuNs, rxCpuNs).toFixed(2)) };
        const waits = mode === 'process' ? {
          tx_cpu_wait_ms: Number((tr.cpuWaitMs ?? -1).toFixed(3)), rx_cpu_wait_ms: Number((rr.cpuWaitMs ?? -1).toFixed(3)),
          tx_thread_cpu_ms: Number((tr.threadCpuMs ?? -1).toFixed(3)), rx_thread_cpu_ms: Number((rr.threadCpuMs ?? -1).toFixed(3)),
        } : {};
        emit({ metric: 'throughput', mode, batch, pkt_len: PKT_LEN, slots, value: Number(mpps.toFixed(2)), unit: 'Mpps', packets: rr.packets, sent: tr.packets, seconds: Number(rr.seconds.toFixed(3)), ...cpu, ...waits, wait: spin ? 'busy' : 'poll', poll_spin_us: pollSpinUs ?? 'default' });
        if (batch === 1) emit({ metric: 'cost_per_packet', mode, batch, value: Number((1e9 / (rr.packets / rr.seconds)).toFixed(1)), unit: 'ns' });
      }
      for (const blocking of rtt ? [false, true] : []) {
        const name = `bp${seq++}`;
        const rounds = blocking ? 5000 : 20000;
        const pong = run({ role: 'pong', name, batch: 1, ms, dir, blocking, rounds, pollSpinUs });
        const ping = run({ role: 'ping', name, batch: 1, ms, dir, blocking, rounds, pollSpinUs });
        const [pr] = await Promise.all([ping, pong]);
        emit({ metric: 'rtt', mode, wait: blocking ? 'poll' : 'busy', value: Number(((pr.rttNs ?? 0) / 1000).toFixed(2)), unit: 'us', rounds });
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (!isMainThread) {
  runRole(workerData as Role).then((res) => parentPort!.postMessage(res), (e) => { throw e; });
} else if (process.argv[2] === '--child') {
  let role = {} as Role;
  try { role = JSON.parse(process.argv[3] ?? '{}') as Role; } catch { /* reported below */ }
  if (role === null || typeof role !== 'object' || !['tx', 'rx', 'ping', 'pong'].includes(role.role) || typeof role.name !== 'string' || !(role.batch >= 1 && role.batch <= 4096) ||
      (role.count !== undefined && !(Number.isInteger(role.count) && role.count > 0)) || (role.dir === undefined && process.env.NETMAP_TS_DIR === undefined && !process.connected)) {
    console.error('usage: NETMAP_TS_DIR=DIR node pipes.js --child \'{"role":"tx|rx|ping|pong","name":"NAME","batch":1..4096[,"count":N][,"ms":MS][,"slots":S][,"blocking":false]}\'');
    process.exit(64);
  }
  runRole(role).then((res) => {
    if (process.connected) process.send!(res);
    else process.stdout.write(JSON.stringify({ bench: 'pipes', metric: 'side', role: role.role, name: role.name, batch: role.batch, ...res }) + '\n');
  }, (e) => { console.error(e); process.exit(1); });
} else {
  main().catch((e) => { console.error(e); process.exit(1); });
}
