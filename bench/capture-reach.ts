/**
 * Reaching capture tools (JSON lines):
 *  - frames/s a pcap-compatible session (netmap-ts/pcap createSession, on the event loop) delivers
 *    from a busy pipe end that `netmap pkt-gen -f tx` fills at full rate, side by side with a
 *    blocking openLive() dispatch loop and `netmap pkt-gen -f rx` on the same pipe;
 *  - time to first packet of `netmap extcap --capture` (from spawning it to the first record in
 *    its FIFO, a frame sent every millisecond), and through tshark (`tshark -i PORT -c 1`, from
 *    spawn to exit) side by side with tshark on its own randpkt extcap, when tshark is installed
 *    (as root inside a user namespace, the extcap installed into a temporary folder).
 * Figures on a shared machine are noisy. Environment: REACH_BENCH_SECONDS (default 3).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSession } from '../src/capture/pcap-compat.js';
import { openLive } from '../src/capture/live.js';
import '../src/port-types.js'; // every port type, plugged into openPort
import { openPort } from '../src/ports/index.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/tools/cli.js');
const SECONDS = Number(process.env.REACH_BENCH_SECONDS ?? 3);
const shm = fs.mkdtempSync('/dev/shm/netmap-bench-reach-');
process.env.NETMAP_TS_DIR = shm;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'netmap-bench-reach-'));
const children = new Set<ChildProcess>();

function emit(bench: string, metric: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ bench, metric, value: Number(value.toFixed(3)), unit, ...extra }));
}

function startGenerator(port: string): ChildProcess {
  const c = spawn(process.execPath, [CLI, 'pkt-gen', '-f', 'tx', '-i', port, '-l', '60', '-T', '0'], { stdio: 'ignore', env: process.env });
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function sessionRate(): Promise<void> {
  // the session end exists first, so that the generator's frames have somewhere to go
  const holder = openPort('netmap:rb}1');
  const gen = startGenerator('netmap:rb{1');
  try {
    const s = createSession('netmap:rb}1', { filter: 'udp' });
    let n = 0;
    s.on('packet', () => { n++; });
    // the generator takes seconds to start on a loaded machine: measure once frames flow
    const startBy = Date.now() + 60000;
    while (n === 0 && Date.now() < startBy) await sleep(50);
    await sleep(300);
    const n0 = n, r0 = s.stats();
    const t0 = performance.now();
    await sleep(SECONDS * 1000);
    const dt = (performance.now() - t0) / 1000;
    const st = s.stats();
    emit('reach.pcap-session', 'delivered', (n - n0) / dt / 1e6, 'Mpps', { seen: (st.ps_recv - r0.ps_recv) / dt / 1e6, ring_drops: st.ps_drop - r0.ps_drop, seconds: dt, note: 'noisy: shared machine' });
    s.close();
    await sleep(100);
    // reference: a blocking dispatch loop on the same end, no copy
    const cap = openLive('netmap:rb}1', { timeoutMs: 100 });
    cap.setFilter('udp');
    let m = 0;
    const t1 = performance.now();
    while (performance.now() - t1 < SECONDS * 1000) m += Math.max(0, cap.dispatch(0, () => undefined));
    emit('reach.openlive-dispatch', 'seen', m / ((performance.now() - t1) / 1000) / 1e6, 'Mpps', { note: 'blocking, zero-copy: the ceiling of the session' });
    cap.close();
  } finally {
    gen.kill('SIGTERM');
    holder.close();
  }
  // reference tool: pkt-gen rx on a fresh pipe fed by pkt-gen tx
  const gen2 = startGenerator('netmap:rc{1');
  try {
    const rx = spawnSync(process.execPath, [CLI, 'pkt-gen', '-f', 'rx', '-i', 'netmap:rc}1', '--json', '-T', '0', '-n', String(5e6 * SECONDS)], { encoding: 'utf8', timeout: (SECONDS + 30) * 1000, env: process.env });
    const last = rx.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
    if (last !== undefined) {
      const j = JSON.parse(last) as Record<string, unknown>;
      emit('reach.pktgen-rx', 'rate', Number(j.pps ?? 0) / 1e6, 'Mpps', { packets: j.packets, seconds: j.seconds, note: 'reference tool, same pipe set-up' });
    } else {
      emit('reach.pktgen-rx', 'rate', 0, 'Mpps', { error: (rx.stderr || rx.stdout).slice(0, 300) });
    }
  } finally {
    gen2.kill('SIGTERM');
  }
}

/**
 * Sends one broadcast frame every millisecond from `src` until stopped, and reads what `dst`
 * (the watched port) receives as its user would: a port whose RX ring stays full gets nothing
 * more, and its monitor then sees nothing (after 1024 ticks, about a second, in the first
 * version of this bench).
 */
function ticker(srcName: string, dst: ReturnType<typeof openPort>): () => void {
  const src = openPort(srcName);
  const f = new Uint8Array(60);
  f.fill(0xff, 0, 6);
  f.set([2, 0, 0, 0, 0, 1], 6);
  f[12] = 0x08;
  const r = dst.rxRings[0]!;
  const t = setInterval(() => {
    src.inject(f, 0, 60); src.txsync();
    dst.rxsync(); r.head = r.cur = r.tail; dst.rxsync();
  }, 1);
  return () => { clearInterval(t); src.close(); };
}

async function extcapFirstPacket(): Promise<void> {
  // the floor of any Node tool on this machine now
  for (let run = 0; run < 3; run++) {
    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    emit('reach.node-start', 'start-up', performance.now() - t0, 'ms', { run, how: 'node -e 0' });
  }
  const cap = openPort('valerb:cap');
  const stop = ticker('valerb:src', cap);
  try {
    for (let run = 0; run < 3; run++) {
      const fifo = path.join(work, `fifo${run}`);
      spawnSync('mkfifo', [fifo]);
      const t0 = performance.now();
      const c = spawn(process.execPath, [CLI, 'extcap', '--capture', '--extcap-interface', 'valerb:cap', '--fifo', fifo], { stdio: 'ignore', env: process.env });
      children.add(c);
      const first = await new Promise<number>((resolve) => {
        let bytes = 0;
        const rd = fs.createReadStream(fifo);
        const timer = setTimeout(() => { rd.destroy(); resolve(NaN); }, 30000);
        rd.on('data', (d) => { bytes += d.length; if (bytes >= 24 + 16) { clearTimeout(timer); resolve(performance.now() - t0); rd.destroy(); } });
      });
      c.kill('SIGTERM');
      await new Promise((r) => c.once('exit', r));
      emit('reach.extcap', 'first-packet', first, 'ms', { run, how: 'netmap extcap --capture, spawn to first record in the FIFO', note: 'noisy: shared machine' });
    }
    if (spawnSync('sh', ['-c', 'command -v tshark']).status !== 0) return;
    const root = process.getuid?.() === 0;
    if (root && spawnSync('sh', ['-c', 'command -v unshare']).status !== 0) return;
    const home = path.join(work, 'home');
    const ext = path.join(home, 'extcap');
    fs.mkdirSync(ext, { recursive: true });
    const env = { ...process.env, HOME: home, WIRESHARK_EXTCAP_DIR: ext };
    const wrap = (cmd: string[]): string[] => (root ? ['unshare', '--user', '--map-user=1000', '--map-group=1000', '--', ...cmd] : cmd);
    // asynchronous: the ticker runs on this event loop meanwhile
    const run = (argv: string[]): Promise<number> => new Promise((resolve) => {
      const t0 = performance.now();
      const c = spawn(argv[0]!, argv.slice(1), { env, stdio: 'ignore' });
      children.add(c);
      const timer = setTimeout(() => c.kill('SIGKILL'), 120000);
      c.on('exit', (code) => { clearTimeout(timer); children.delete(c); resolve(code === 0 ? performance.now() - t0 : NaN); });
    });
    await run(wrap([process.execPath, CLI, 'extcap', '--install', '--extcap-dir', ext]));
    for (let k = 0; k < 2; k++) {
      emit('reach.tshark-extcap', 'first-packet', await run(wrap(['tshark', '-i', 'valerb:cap', '-c', '1', '-w', path.join(work, 'ts.pcap')])), 'ms',
        { how: 'tshark -i valerb:cap -c 1, spawn to exit (tshark start-up included)', note: 'noisy: shared machine' });
      // the reference: tshark's own randpkt extcap from the system folder (not the temporary one)
      emit('reach.tshark-randpkt', 'first-packet', await run(['tshark', '-i', 'randpkt', '-c', '1', '-w', path.join(work, 'rp.pcap')]), 'ms',
        { how: 'tshark -i randpkt -c 1 (reference extcap), spawn to exit' });
    }
  } finally {
    stop();
    cap.close();
  }
}

try {
  await sessionRate();
  await extcapFirstPacket();
} finally {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(shm, { recursive: true, force: true });
}
