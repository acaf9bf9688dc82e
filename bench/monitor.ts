/**
 * Monitor ports benchmark (JSON lines): pkt-gen tx -> VALE -> pkt-gen rx at full rate (60-byte
 * UDP frames to port 1234), alone and with `netmap dump -i vale0:rx/r 'udp and dst port 1234'
 * -w /dev/null` watching the receiver through a copy monitor. Rounds alternate the two cases
 * (the machine's speed drifts: only figures of one run compare). Per round: the receiver's rate
 * with and without the monitor, and the frames dump captured against those pkt-gen rx received.
 * Last line: medians, the slowdown (goal: at most 20%) and the captured share (goal: all, at
 * 10 Mpps or more).
 * There is no reference tool: netmap's monitors need its kernel module (the seed's tcpdump over
 * netmap filtered 10–15 Mpps, per issue 14). With three busy processes, a 2-core machine
 * shares cores: read the figures as such.
 * First, the cost in one thread, which core sharing disturbs less: a sender and a receiver on
 * one VALE switch in this process, 60-byte frames in batches of 256, with no monitor and with a
 * /r monitor on the receiver drained in the same loop; CPU ns a frame for the whole loop.
 * Each round also gives CPU time: the sender's a frame it sent (tx_cpu_ns_per_frame: forwarding
 * and monitor copies; frames the full receiver ring drops cost no copy), the receiver's a frame
 * it received, how long each waited for a CPU, and dump's CPU a frame it saw (start-up
 * excluded: sampled once it listens). The summary adds the load average at its end.
 * Usage: node dist/bench/monitor.js [seconds] [--rounds N] [--slots N]
 *   (seconds per case, default 3; --slots: monitor ring size, vale0:rx/r@conf:slots=N)
 */
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { CLI, runPair } from './lib/pktgen.js';

const argv = process.argv.slice(2);
const optArg = (name: string, def: number): number => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : def; };
const SECONDS = Math.min(30, Math.max(1, Number(argv[0] !== undefined && !argv[0].startsWith('--') ? argv[0] : 3) || 3));
const ROUNDS = Math.min(20, Math.max(1, optArg('--rounds', 3)));
const SLOTS = optArg('--slots', 0);
const DIR = fs.mkdtempSync('/dev/shm/nmts-bench-monitor-');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface DumpProc { stop(): void; started: Promise<boolean>; done: Promise<{ captured: number; received: number; dropped: number }>; cpuMs(): number }

/** CPU time (user + system, ms) of process `pid` so far, from /proc (NaN if gone). */
function cpuMsOf(pid: number | undefined): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) * 1000 / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch { return NaN; }
}

function startDump(port: string, filter: string): DumpProc {
  const child = spawn(process.execPath, [CLI, 'dump', '-i', port, '-w', '/dev/null', '--duration', String(SECONDS + 30), filter], { env: { ...process.env, NETMAP_TS_DIR: DIR }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let onStart: (ok: boolean) => void = () => {};
  const started = new Promise<boolean>((r) => { onStart = r; });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('listening')) onStart(true); });
  const done = new Promise<{ captured: number; received: number; dropped: number }>((resolve, reject) => child.on('close', (code) => {
    onStart(false);
    const num = (re: RegExp): number => Number(re.exec(err)?.[1] ?? NaN);
    if (code !== 0) reject(new Error(`dump failed (${code}): ${err}`));
    else resolve({ captured: num(/(\d+) packets captured/), received: num(/(\d+) packets received by filter/), dropped: num(/(\d+) packets dropped/) });
  }));
  return { stop: () => child.kill('SIGINT'), started, done, cpuMs: () => cpuMsOf(child.pid) };
}

async function round(k: number, monitored: boolean): Promise<{ mpps: number; received: number; captured: number; seen: number; dropped: number; txCpuNs: number; rxCpuNs: number; dumpCpuNs: number }> {
  let dump: DumpProc | null = null;
  let dumpCpu0 = NaN;
  const watch = async (): Promise<void> => {
    dump = startDump(`vale0:rx/r${SLOTS > 0 ? `@conf:slots=${SLOTS}` : ''}`, 'udp and dst port 1234');
    if (!(await dump.started)) throw new Error('dump did not start');
    dumpCpu0 = dump.cpuMs();
  };
  const { ts, rs } = await runPair(['-i', 'vale0:tx', '-f', 'tx', '-l', '60', '-d', '198.18.0.2:1234', '-s', '198.18.0.1:1234'], ['-i', 'vale0:rx', '-f', 'rx'], DIR, SECONDS, monitored ? watch : undefined);
  let d = { captured: NaN, received: NaN, dropped: NaN };
  const running = dump as DumpProc | null;
  let dumpCpu = NaN;
  if (running !== null) { await sleep(200); dumpCpu = running.cpuMs() - dumpCpu0; running.stop(); d = await running.done; }
  // CPU time a frame: what the sender's thread spent (forwarding and monitor copies included)
  // a frame it sent, what dump spent a frame it saw; and how long the sender waited for a CPU
  const txCpuNs = Number(ts.cpu_ms) * 1e6 / Number(ts.packets);
  const line = {
    bench: 'monitor', round: k, case: monitored ? 'with_monitor' : 'without_monitor', metric: 'rx_rate',
    value: Number((Number(rs.pps) / 1e6).toFixed(4)), unit: 'Mpps',
    tx_mpps: Number((Number(ts.pps) / 1e6).toFixed(4)), sent: ts.packets, received: rs.packets,
    tx_cpu_ns_per_frame: Number(txCpuNs.toFixed(1)), tx_cpu_wait_ms: ts.cpu_wait_ms, rx_cpu_ms: rs.cpu_ms,
    rx_cpu_ns_per_frame: Number((Number(rs.cpu_ms) * 1e6 / Number(rs.packets)).toFixed(1)), rx_cpu_wait_ms: rs.cpu_wait_ms,
    ...(monitored ? { dump_cpu_ms: dumpCpu, dump_cpu_ns_per_frame: Number((dumpCpu * 1e6 / d.received).toFixed(1)) } : {}),
    ...(monitored ? { captured: d.captured, monitor_seen: d.received, monitor_drops: d.dropped, captured_share: Number((d.captured / Number(rs.packets)).toFixed(4)) } : {}),
  };
  console.log(JSON.stringify(line));
  return { mpps: Number(rs.pps) / 1e6, received: Number(rs.packets), captured: d.captured, seen: d.received, dropped: d.dropped, txCpuNs, rxCpuNs: Number(rs.cpu_ms) * 1e6 / Number(rs.packets), dumpCpuNs: dumpCpu * 1e6 / d.received };
}

/** ns a frame of send + forward + receive (+ monitor copy and drain), one thread. */
async function inThread(frames: number, monitored: boolean): Promise<number> {
  process.env.NETMAP_TS_DIR = DIR;
  await import('../src/port-types.js'); // every port type, plugged into openPort
  const { openPort } = await import('../src/ports/index.js');
  const s = openPort('valeb:s'), r = openPort('valeb:r');
  const m = monitored ? openPort('valeb:r/r@conf:slots=1024') : null;
  try {
    const u8 = s.mem.u8;
    const t = s.txRings[0]!;
    for (let i = 0; i < t.numSlots; i++) {
      const o = t.slotBufOffset(i);
      u8.fill(0, o, o + 60);
      u8.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00], o);
    }
    const drain = (p: ReturnType<typeof openPort>): void => { p.rxsync(); const x = p.rxRings[0]!; x.head = x.cur = x.tail; p.rxsync(); };
    // r learns its address first
    const rt = r.txRings[0]!;
    u8.set([255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 2], rt.slotBufOffset(rt.head));
    rt.setSlotLen(rt.head, 60); rt.advance(rt.next(rt.head)); r.txsync(); drain(s);
    // CPU time rather than wall time: on a shared machine the wall clock counts other processes' turns
    const c0 = process.cpuUsage();
    for (let sent = 0; sent < frames;) {
      let i = t.head;
      for (let k = 0; k < 256; k++) { t.setSlotLen(i, 60); i = i + 1 === t.numSlots ? 0 : i + 1; }
      t.advance(i);
      s.txsync();
      drain(r);
      if (m !== null) drain(m);
      sent += 256;
    }
    const c = process.cpuUsage(c0);
    const ns = (c.user + c.system) * 1000 / frames;
    if (m !== null && m.rxRings[0]!.packets < frames) throw new Error(`the monitor copied ${m.rxRings[0]!.packets} of ${frames}`);
    return ns;
  } finally {
    m?.close(); r.close(); s.close();
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

try {
  const plain: number[] = [], tapped: number[] = [];
  for (let k = 0; k < ROUNDS + 2; k++) { plain.push(await inThread(2_000_000, false)); tapped.push(await inThread(2_000_000, true)); }
  const p = median(plain), q = median(tapped);
  console.log(JSON.stringify({
    bench: 'monitor', case: 'one_thread', metric: 'ns_per_frame', value: Number(q.toFixed(2)), unit: 'ns',
    without_ns: Number(p.toFixed(2)), with_ns: Number(q.toFixed(2)), monitor_ns: Number((q - p).toFixed(2)),
    rounds: ROUNDS + 2, note: 'send, forward and receive (and the monitor copy and its drain) in one thread, 60-byte frames, batch 256',
  }));
  const without: number[] = [], withMon: number[] = [], shares: number[] = [], cpuWithout: number[] = [], cpuWith: number[] = [];
  const rxCpuWithout: number[] = [], rxCpuWith: number[] = [], dumpCpu: number[] = [];
  for (let k = 0; k < ROUNDS; k++) {
    const a = await round(k, false);
    without.push(a.mpps);
    cpuWithout.push(a.txCpuNs);
    rxCpuWithout.push(a.rxCpuNs);
    const b = await round(k, true);
    withMon.push(b.mpps);
    cpuWith.push(b.txCpuNs);
    rxCpuWith.push(b.rxCpuNs);
    dumpCpu.push(b.dumpCpuNs);
    shares.push(b.captured / b.received);
  }
  const w = median(without), m = median(withMon);
  const cw = median(cpuWithout), cm = median(cpuWith);
  console.log(JSON.stringify({
    bench: 'monitor', case: 'summary', metric: 'slowdown', value: Number((1 - m / w).toFixed(4)), unit: 'fraction',
    rounds: ROUNDS, seconds: SECONDS, without_mpps: Number(w.toFixed(4)), with_mpps: Number(m.toFixed(4)),
    captured_share_median: Number(median(shares).toFixed(4)), goal_slowdown: 0.2, goal_capture_mpps: 10,
    tx_cpu_ns_without: Number(cw.toFixed(1)), tx_cpu_ns_with: Number(cm.toFixed(1)), cpu_slowdown: Number((1 - cw / cm).toFixed(4)),
    rx_cpu_ns_without: Number(median(rxCpuWithout).toFixed(1)), rx_cpu_ns_with: Number(median(rxCpuWith).toFixed(1)), dump_cpu_ns: Number(median(dumpCpu).toFixed(1)),
    load_average: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    note: 'shared 2-core machine: pkt-gen tx, pkt-gen rx and dump compete for cores; noisy',
  }));
} finally {
  fs.rmSync(DIR, { recursive: true, force: true });
}
