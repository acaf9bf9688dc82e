/**
 * The firewall's data path on one core (JSON lines): the "Mpps on one core" of kipfw, without
 * the scheduler of a two-core machine deciding how much of a core each of the three processes of
 * the pkt-gen -> valeA -> kipfw -> valeB -> pkt-gen set-up gets (bench/firewall.ts runs that one).
 *
 * One thread plays all three parts in turn: it fills the sender's TX ring on valeA (frames
 * written once, then only lengths set, as pkt-gen does) and syncs it (VALE copies them into
 * kipfw's RX ring), runs one pass of kipfw's data path (rxsync, ruleset, buffer swap to valeB,
 * txsync: VALE copies into the receiver's ring and wakes it), and drains the receiver. Only the
 * time spent in kipfw's pass is counted: packets / that time is what one core running kipfw
 * moves, its VALE delivery included; cpu_mpps counts the process's CPU time in those passes
 * instead of the wall time (what a busy machine does not inflate). A warm-up of up to 0.5 s is
 * not counted (the first pass builds the new ruleset's evaluator). Cases: the rule sets,
 * compiled and interpreted.
 * Usage: node dist/bench/firewall-path.js [seconds] [case ...]   (default 2 s each)
 */
import fs from 'node:fs';

const DIR = fs.mkdtempSync('/dev/shm/nmts-bench-fwpath-');
process.env.NETMAP_TS_DIR = DIR;
const SECONDS = Math.min(30, Math.max(0.5, Number(process.argv[2] ?? 2) || 2));
const ONLY = process.argv.slice(3);

await import('../src/port-types.js');
const { openPort } = await import('../src/ports/index.js');
const { Kipfw } = await import('../src/firewall/daemon.js');
const { makeDaemonDummynet } = await import('../src/firewall/dummynet-glue.js');
type Port = ReturnType<typeof openPort>;

/** 60-byte UDP frames 10.0.0.1:sport -> 10.1.0.1:1234, broadcast MAC; sport cycles over `flows`. */
function prepareFrames(p: Port, flows: number): void {
  const r = p.txRings[0]!;
  const u8 = p.mem.u8;
  for (let i = 0; i < r.numSlots; i++) {
    const o = r.slotBufOffset(i);
    const sport = 10000 + (i % flows);
    u8.fill(0, o, o + 60);
    u8.set([255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0,
      10, 0, 0, 1, 10, 1, 0, 1, sport >> 8, sport & 255, 0x04, 0xd2, 0, 26], o);
    r.setSlotLen(i, 60);
  }
}

let portSeq = 0;
async function pathCase(name: string, lines: string[], opts: { flows?: number; compiled?: boolean; target?: number } = {}): Promise<void> {
  const caseName = `${name}${opts.compiled === false ? '-interpreted' : ''}`;
  if (ONLY.length > 0 && !ONLY.includes(name) && !ONLY.includes(caseName)) return;
  const id = ++portSeq;
  const s = openPort(`valeI${id}a:s`);
  const d = openPort(`valeI${id}b:d`);
  const k = await Kipfw.start({ name: `bp${id}`, ports: [`valeI${id}a:f`, `valeI${id}b:f`], compiled: opts.compiled ?? true, log: () => {} }, makeDaemonDummynet);
  try {
    if (lines.length > 0) {
      const r = k.handle({ file: lines.join('\n') + '\n' });
      if (r.status !== 0) throw new Error(`rules: ${r.stderr}`);
    }
    const flows = opts.flows ?? 1;
    prepareFrames(s, flows);
    const tx = s.txRings[0]!, rx = d.rxRings[0]!;
    const path = k.path!;
    let packets = 0, inPath = 0, inCpu = 0;
    let flow = 0;
    const u8 = s.mem.u8;
    /** One round: the sender, kipfw's pass (timed), the receiver. */
    const round = (): void => {
      // the sender: a ring's worth, lengths only (buffers keep their frames)
      let n = tx.space();
      if (n > 512) n = 512;
      let j = tx.head;
      for (let i = 0; i < n; i++) {
        if (flows > 1) {
          // a new source port per frame: `flows` flows in turn (the sender's work, not timed)
          const o = tx.slotBufOffset(j) + 34, sport = 10000 + (flow++ % flows);
          u8[o] = sport >> 8; u8[o + 1] = sport & 255;
        }
        tx.setSlotLen(j, 60);
        j = tx.next(j);
      }
      tx.advance(j);
      s.txsync();
      // kipfw: one pass (its own clock reads included)
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const before = path.stats.received;
      path.step();
      inPath += performance.now() - t0;
      const c = process.cpuUsage(c0);
      inCpu += (c.user + c.system) / 1000;
      packets += path.stats.received - before;
      // the receiver
      d.rxsync();
      rx.advance(rx.tail);
      d.rxsync();
    };
    // Warm-up, not counted: the first pass builds the evaluator of the new ruleset (for the 100k
    // table: parsing the published configuration and building the hash, a few hundred ms, once
    // per ruleset change), and V8 compiles the loop.
    for (const end = performance.now() + Math.min(500, SECONDS * 250); performance.now() < end;) round();
    packets = 0; inPath = 0; inCpu = 0;
    const end = performance.now() + SECONDS * 1000;
    while (performance.now() < end) round();
    // On a busy machine the thread is preempted inside passes: the wall time overstates the cost,
    // the CPU time (getrusage, every thread of the process) does not.
    const mpps = packets / inPath / 1e3, cpuMpps = packets / inCpu / 1e3;
    console.log(JSON.stringify({
      bench: 'firewall-path', case: caseName, metric: 'kipfw_mpps_one_core', value: Number(mpps.toFixed(3)), unit: 'Mpps',
      ns_per_packet: Number((inPath * 1e6 / packets).toFixed(1)), cpu_mpps: Number(cpuMpps.toFixed(3)), cpu_ns_per_packet: Number((inCpu * 1e6 / packets).toFixed(1)), packets, passed: path.stats.passed, denied: path.stats.denied,
      to_dummynet: path.stats.toDummynet, ...(opts.target !== undefined ? { target_mpps: opts.target, met: mpps >= opts.target } : {}),
      note: 'kipfw pass only: rxsync, rules, swap to valeB, txsync with VALE delivery; sender and receiver excluded',
    }));
  } finally {
    k.stop();
    await k.close();
    s.close();
    d.close();
  }
}

try {
  const hundred = Array.from({ length: 100 }, (_, i) => `add ${100 + i} deny tcp from 198.19.${i}.0/24 to any dst-port ${1000 + i}`);
  const table = ['table big create type addr', ...Array.from({ length: 100_000 }, (_, i) => `table big add 11.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32 ${i & 0xffff}`),
    'table big add 10.0.0.1/32 1', 'add 100 allow ip from table(big) to any', 'add 200 deny ip from any to any'];
  const state = ['sysctl net.inet.ip.fw.dyn_max=16384', 'add 100 check-state', 'add 200 allow udp from any to any keep-state', 'add 300 deny ip from any to any'];
  for (const compiled of [true, false]) {
    await pathCase('allow-1-rule', [], { compiled, target: 10 });
    await pathCase('100-rules-then-allow', [...hundred, 'add 1000 allow ip from any to any'], { compiled, target: 5 });
    await pathCase('table-100k', table, { compiled, target: 5 });
    await pathCase('keep-state-10k-flows', state, { compiled, flows: 10_000, target: 4 });
  }
  await pathCase('pipe-no-bw-limit', ['pipe 1 config', 'add 100 pipe 1 ip from any to any'], { target: 3 });
} finally {
  fs.rmSync(DIR, { recursive: true, force: true });
}
