/**
 * Firewall benchmark (JSON lines), netmap-ipfw's own set-up: pkt-gen tx -> valeA -> kipfw ->
 * valeB -> pkt-gen rx, 60-byte frames, three processes. Cases: the default rule alone (`allow ip
 * from any to any`), 100 non-matching rules then allow, a table of 100k addresses, keep-state
 * with 10k flows, and a pipe with no bw limit (dummynet), with one worker and with `-p 2`. Each reports the receiver's rate and
 * kipfw's own count. Then the same one-rule set as a VALE switch's lookup (`netmap ipfw attach`),
 * beside the plain learning switch in the same run (three rounds each, alternating; medians). netmap-ipfw cannot run here (it needs the
 * netmap kernel module): its published figures are printed beside ours (6.5 Mpps filtering,
 * 2.2 Mpps through a pipe, README; i7-3400).
 * As root with nft installed: kipfw between two veths (AF_PACKET) against a Linux bridge with
 * an equivalent nftables ruleset (bridge family), trafgen sending 60-byte frames through each.
 * Usage: node dist/bench/firewall.js [--tx-rate PPS] [seconds] [case ...]   (default 3 s, all cases)
 */
import fs from 'node:fs';
import { startPktgen, runPair, type PktgenProc } from './lib/pktgen.js';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const CLI = fileURLToPath(new URL('../src/tools/cli.js', import.meta.url));
const rateAt = process.argv.indexOf('--tx-rate');
/** `--tx-rate PPS`: the kipfw cases' sender paces itself (pkt-gen -R), leaving the CPU it would spend flooding valeA to kipfw and the receiver. */
const TX_RATE = rateAt > 0 ? process.argv.splice(rateAt, 2)[1]! : null;
const SECONDS = Math.min(30, Math.max(1, Number(process.argv[2] ?? 3) || 3));
const ONLY = process.argv.slice(3);
const DIR = fs.mkdtempSync('/dev/shm/nmts-bench-fw-');
const ENV = { ...process.env, NETMAP_TS_DIR: DIR };
const pktgen = (args: string[]): PktgenProc => startPktgen(args, DIR, SECONDS + 10);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


function ipfw(name: string, args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, 'ipfw', '-s', name, ...args], { env: ENV, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`ipfw ${args.slice(0, 6).join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

async function startKipfw(name: string, ports: string[], extra: string[] = []): Promise<{ child: ChildProcess; startMs: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [CLI, 'kipfw', '-s', name, ...extra, ...ports], { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const sock = path.join(DIR, `ipfw-${name}.sock`);
  for (let i = 0; i < 400 && !fs.existsSync(sock); i++) {
    if (child.exitCode !== null) throw new Error(`kipfw exited: ${err}`);
    await sleep(25);
  }
  if (!fs.existsSync(sock)) throw new Error(`kipfw did not start: ${err}`);
  return { child, startMs: performance.now() - t0 };
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null) { r(); return; }
    child.once('exit', () => r());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

/** The packet count of rule `n` in `ipfw show` (0 when absent). */
function ruleCount(name: string, n: number): number {
  const line = ipfw(name, ['show', String(n)]).split('\n')[0] ?? '';
  return Number(line.trim().split(/\s+/)[1] ?? 0) || 0;
}

/** pkt-gen tx -> src switch port ... rx on dst; returns the receiver's and sender's rates. */
async function flow(tx: string, rx: string, txArgs: string[] = [], rxArgs: string[] = []): Promise<{ rx_mpps: number; tx_mpps: number; received: number; sent: number }> {
  const { ts, rs } = await runPair(['-i', tx, '-f', 'tx', '-l', '60', ...txArgs], ['-i', rx, '-f', 'rx', ...rxArgs], DIR, SECONDS);
  return { rx_mpps: Number((Number(rs.pps) / 1e6).toFixed(3)), tx_mpps: Number((Number(ts.pps) / 1e6).toFixed(3)), received: Number(rs.packets), sent: Number(ts.packets) };
}

/** CPU seconds (user + system) process `pid` has used, all its threads, from /proc. */
function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

let seq = 0;
async function kipfwCase(name: string, target: number, published: number | null, setup: (fw: string) => void, txArgs: string[] = [], kipfwArgs: string[] = [], countRule = 65535, workers = 1): Promise<void> {
  if (ONLY.length > 0 && !ONLY.includes(name)) return;
  const id = ++seq;
  const fw = `bfw${id}`;
  const a = `valeA${id}`, b = `valeB${id}`;
  // with workers > 1 every port has that many ring pairs and each side runs a thread per ring, so
  // the sender's ring K reaches kipfw's RX ring K (worker K)
  const conf = workers > 1 ? `@conf:rings=${workers}` : '';
  const threads = workers > 1 ? ['-p', String(workers)] : [];
  const k = await startKipfw(fw, [`${a}:f${conf}`, `${b}:f${conf}`], [...threads, ...kipfwArgs]);
  try {
    const t0 = performance.now();
    setup(fw);
    const setupMs = performance.now() - t0;
    const before = ruleCount(fw, countRule);
    const cpu0 = cpuSeconds(k.child.pid!);
    const f = await flow(`${a}:s${conf}`, `${b}:d${conf}`, [...threads, ...(TX_RATE !== null ? ['-R', TX_RATE] : []), ...txArgs], threads);
    const cpu = cpuSeconds(k.child.pid!) - cpu0;
    const counted = ruleCount(fw, countRule) - before;
    console.log(JSON.stringify({
      bench: 'firewall', case: name, metric: 'rx_rate', value: f.rx_mpps, unit: 'Mpps', ...f,
      kipfw_counted: counted, kipfw_cpu_s: Number(cpu.toFixed(2)),
      // what kipfw moves per second of its own CPU: the "Mpps on one core" of the target, whatever
      // share of the two cores the three processes of this set-up got
      kipfw_mpps_per_core: Number((counted / cpu / 1e6).toFixed(3)),
      target_mpps: target, met: counted / cpu / 1e6 >= target,
      kipfw_workers: workers, tx_rate: TX_RATE ?? 'unpaced', kipfw_start_ms: Math.round(k.startMs), rules_setup_ms: Math.round(setupMs),
      ...(published !== null ? { netmap_ipfw_published_mpps: published, ratio_to_published: Number((f.rx_mpps / published).toFixed(3)) } : {}),
    }));
  } finally {
    await stopChild(k.child);
  }
}

function rulesFile(lines: string[]): string {
  const f = path.join(DIR, `rules-${++seq}.txt`);
  fs.writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

async function valeLookupCase(): Promise<void> {
  if (ONLY.length > 0 && !ONLY.includes('vale-lookup')) return;
  const sw = 'valefwb';
  // keep the switch alive between the runs (a lookup keeps it, a port would do too); it is there
  // in both runs, so both have the same ports (pkt-gen's frames are flooded to it as well)
  const hold = startPktgen(['-i', `${sw}:hold`, '-f', 'rx'], DIR, 6 * (SECONDS + 5) + 60); // six flows
  await hold.started;
  try {
    // rounds alternate between the plain switch and the firewall (attached, then detached again),
    // so that both see the same machine; the medians are compared
    const plain: number[] = [], filtered: number[] = [], sentPlain: number[] = [], sentFiltered: number[] = [];
    let counted = 0, received = 0;
    for (let round = 0; round < 3; round++) {
      const p = await flow(`${sw}:s`, `${sw}:d`);
      plain.push(p.rx_mpps); sentPlain.push(p.tx_mpps);
      const at = spawnSync(process.execPath, [CLI, 'ipfw', 'attach', sw], { env: ENV, encoding: 'utf8', timeout: 30_000 });
      if (at.status !== 0) throw new Error(`ipfw attach failed: ${at.stderr}`);
      const f = await flow(`${sw}:s`, `${sw}:d`);
      filtered.push(f.rx_mpps); sentFiltered.push(f.tx_mpps);
      counted += ruleCount(sw, 65535);
      received += f.received;
      const de = spawnSync(process.execPath, [CLI, 'ipfw', 'detach', sw], { env: ENV, encoding: 'utf8', timeout: 30_000 });
      if (de.status !== 0) throw new Error(`ipfw detach failed: ${de.stderr}`);
    }
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const ratio = med(filtered) / med(plain);
    console.log(JSON.stringify({
      bench: 'firewall', case: 'vale-lookup-1-rule', metric: 'rx_rate', value: med(filtered), unit: 'Mpps',
      plain_switch_mpps: med(plain), ratio_to_plain: Number(ratio.toFixed(3)), target_ratio: 0.6, met: ratio >= 0.6,
      rounds_filtered_mpps: filtered, rounds_plain_mpps: plain, sender_filtered_mpps: med(sentFiltered), sender_plain_mpps: med(sentPlain),
      counted_by_rule_65535: counted, received,
    }));
  } finally {
    hold.stop();
    await hold.done.catch(() => undefined);
  }
}

// ---- kipfw between two veths against nftables on a Linux bridge ------------------------------

// 60-byte IPv4/UDP frame 198.18.0.1:9 -> 198.18.0.2:9 to an unknown unicast MAC (valid IPv4 header:
// a Linux bridge drops malformed ones)
const FRAME = '{ 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, c16(0x0800), 0x45, 0, c16(46), c16(0), c16(0), 64, 17, csumip(14, 33), '
  + '198, 18, 0, 1, 198, 18, 0, 2, c16(9), c16(9), c16(26), c16(0), fill(0x41, 18) }';
/** The ruleset both run: ten rules that do not match the test frames, then accept. */
const VETH_RULES = Array.from({ length: 10 }, (_, i) => `add ${100 + i} deny tcp from 198.19.${i}.0/24 to any dst-port ${1000 + i}`);
const NFT_RULES = Array.from({ length: 10 }, (_, i) => `add rule bridge fw filt ip saddr 198.19.${i}.0/24 tcp dport ${1000 + i} drop`);

async function vethCase(frames: number): Promise<void> {
  if (ONLY.length > 0 && !ONLY.includes('veth')) return;
  process.env.NETMAP_TS_DIR = DIR;
  const { Lab, skipReason } = await import('../test/helpers/netns.js');
  const skip = skipReason(['trafgen', 'nft', 'taskset']);
  if (skip !== null) { console.log(JSON.stringify({ bench: 'firewall', case: 'veth', skipped: skip })); return; }
  const pin = os.cpus().length >= 2;
  const run = async (kind: 'kipfw' | 'nftables'): Promise<{ pps: number; delivered: number; secs: number }> => {
    const lab = new Lab();
    try {
      const { l, m, r } = lab.line(false);
      let child: ChildProcess | null = null;
      if (kind === 'kipfw') {
        const args = [process.execPath, CLI, 'kipfw', '-s', 'vethfw', 'netmap:m0', 'netmap:m1'];
        child = pin ? lab.spawn(m, 'taskset', ['-c', '1', ...args]) : lab.spawn(m, args[0]!, args.slice(1));
        const sock = path.join(DIR, 'ipfw-vethfw.sock');
        for (let i = 0; i < 400 && !fs.existsSync(sock); i++) await sleep(25);
        ipfw('vethfw', ['-q', rulesFile(VETH_RULES)]);
      } else {
        lab.must(m, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
        lab.must(m, 'ip', ['link', 'set', 'm0', 'master', 'br0']);
        lab.must(m, 'ip', ['link', 'set', 'm1', 'master', 'br0']);
        lab.must(m, 'ip', ['link', 'set', 'br0', 'up']);
        const f = rulesFile(['add table bridge fw', 'add chain bridge fw filt { type filter hook forward priority 0; policy accept; }', ...NFT_RULES]);
        lab.must(m, 'nft', ['-f', f]);
      }
      const ready = Date.now() + 10_000;
      while (lab.run(l, 'ping', ['-c', '1', '-W', '1', '198.18.0.2']).status !== 0 && Date.now() < ready) await sleep(100);
      const before = lab.counters(r, 'r0').rxPackets;
      const t0 = performance.now();
      const targs = ['trafgen', '-o', 'l0', '-P', '1', '-n', String(frames), '-q', FRAME];
      const tr = pin ? lab.run(l, 'taskset', ['-c', '0', ...targs], 120_000) : lab.run(l, targs[0]!, targs.slice(1), 120_000);
      if (tr.status !== 0) throw new Error(`trafgen: ${tr.stderr}`);
      await sleep(300);
      const secs = (performance.now() - t0) / 1000 - 0.3;
      const delivered = lab.counters(r, 'r0').rxPackets - before;
      if (child !== null) await stopChild(child);
      return { pps: delivered / secs, delivered, secs };
    } finally {
      lab.cleanup();
    }
  };
  const ours = await run('kipfw');
  const ref = await run('nftables');
  console.log(JSON.stringify({
    bench: 'firewall', case: 'veth-kipfw-vs-nftables-bridge', metric: 'delivered_rate', value: Number((ours.pps / 1e6).toFixed(4)), unit: 'Mpps',
    kipfw_mpps: Number((ours.pps / 1e6).toFixed(4)), nftables_bridge_mpps: Number((ref.pps / 1e6).toFixed(4)),
    ratio: Number((ours.pps / ref.pps).toFixed(3)), sent_each: frames, kipfw_delivered: ours.delivered, nftables_delivered: ref.delivered,
    rules: '10 non-matching rules then accept; trafgen 60-byte UDP frames from l through m to r, counted by r0',
  }));
}

try {
  await kipfwCase('allow-1-rule', 10, 6.5, () => { /* rule 65535 allow ip from any to any */ });
  await kipfwCase('100-rules-then-allow', 5, null, (fw) => {
    const lines: string[] = [];
    for (let i = 0; i < 100; i++) lines.push(`add ${100 + i} deny tcp from 198.19.${i}.0/24 to any dst-port ${1000 + i}`);
    lines.push('add 1000 allow ip from any to any');
    ipfw(fw, ['-q', rulesFile(lines)]);
  }, [], [], 1000);
  await kipfwCase('table-100k', 5, null, (fw) => {
    const lines = ['table big create type addr'];
    for (let i = 0; i < 100_000; i++) lines.push(`table big add 11.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32 ${i & 0xffff}`);
    lines.push('table big add 10.0.0.1/32 1');
    lines.push('add 100 allow ip from table(big) to any');
    ipfw(fw, ['-q', rulesFile(lines)]);
  }, [], ['-D'], 100);
  await kipfwCase('keep-state-10k-flows', 4, null, (fw) => {
    ipfw(fw, ['-q', rulesFile(['sysctl net.inet.ip.fw.dyn_max=16384', 'add 100 check-state', 'add 200 allow udp from any to any keep-state'])]);
  }, ['-s', '10.0.0.1:10000-10.0.0.1:19999'], ['-D'], 200);
  await kipfwCase('pipe-no-bw-limit', 3, 2.2, (fw) => {
    ipfw(fw, ['pipe', '1', 'config']);
    ipfw(fw, ['add', '100', 'pipe', '1', 'ip', 'from', 'any', 'to', 'any']);
  }, [], [], 100);
  // kipfw -p 2: worker 1 hands its frames to worker 0, which owns the dummynet (issue 11 §1)
  await kipfwCase('pipe-no-bw-limit-p2', 3, 2.2, (fw) => {
    ipfw(fw, ['pipe', '1', 'config']);
    ipfw(fw, ['add', '100', 'pipe', '1', 'ip', 'from', 'any', 'to', 'any']);
  }, [], [], 100, 2);
  await valeLookupCase();
  if (process.getuid?.() === 0) await vethCase(1_000_000);
} finally {
  fs.rmSync(DIR, { recursive: true, force: true });
}
