/**
 * `netmap pkt-gen`: netmap's packet generator and sink. Parses pkt-gen's options and hands the
 * run to the library (src/generator).
 */
import { fail } from '../errors.js';
import { parseMac, parseRange } from '../generator/addr.js';
import { DEFAULTS, FUNCTIONS, type GenConfig, type GenFunction } from '../generator/config.js';
import { parseTool, runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';

const NO_LIMIT = Number.MAX_SAFE_INTEGER;

export const PKT_GEN: ToolSpec = {
  name: 'pkt-gen',
  synopsis: ['-i port [-f function] [options]'],
  options: [
    { short: 'i', value: 'port', help: 'netmap:IF, valeX:P, pipes NAME{N / NAME}N (a bare name gets netmap: prepended)' },
    { short: 'f', value: 'function', help: 'tx, rx (default), ping, pong, txseq, rxseq' },
    { short: 'n', value: 'count', help: 'packets to send/receive, 0 = forever (default 0); k/M/G suffixes accepted' },
    { short: 'l', value: 'size', help: 'frame length without CRC, 42..buffer size (default 60)' },
    { short: 'b', value: 'burst', help: 'batch per ring per poll (default 512; ping/pong 1)' },
    { short: 'R', value: 'rate', help: 'packets per second (tx, txseq); k/M/G suffixes accepted' },
    { short: 'p', value: 'threads', help: 'worker threads, each on its own ring (name-K) (default 1)' },
    { short: 'd', value: 'dst', help: 'ip[:port][-[ip][:port]] destination range (default 10.1.0.1:1234)' },
    { short: 's', value: 'src', help: 'ip[:port][-[ip][:port]] source range (default 10.0.0.1:1234)' },
    { short: 'D', value: 'dst_mac', help: 'destination MAC (default ff:ff:ff:ff:ff:ff)' },
    { short: 'S', value: 'src_mac', help: 'source MAC (default 00:00:00:00:00:00)' },
    { short: 'z', help: 'random source address and port within the range' },
    { short: 'Z', help: 'random destination address and port within the range' },
    { short: 'w', value: 'secs', help: 'wait before starting (default 0 for VALE ports and pipes, 2 otherwise)' },
    { short: 'T', value: 'ms', help: 'report interval (default 1000, 0 = none)' },
    { short: 'W', help: 'rx, pong: exit after 1 s without traffic once traffic started\n(until the first frame it waits without limit, as netmap\'s pkt-gen does)' },
    { short: 'a', value: 'cpu', help: 'pin thread K to CPU (cpu + K) mod cpus' },
    { short: 'c', value: 'cpus', help: 'CPUs to use for pinning (default: all)' },
    { short: 'N', help: 'do not normalise units in reports' },
    { short: 'X', help: 'rx, rxseq: dump every frame received (hex, on stderr)' },
    { short: 'v', help: 'verbose (repeat for more)' },
    { long: 'json', help: 'machine-readable JSON lines on stdout instead of text' },
    { long: 'spin', value: 'us', help: 'busy-poll up to us microseconds before sleeping in poll (default 0)' },
    { long: 'no-reserve', help: 'place no threads: by default (without -a, one thread) a receiver reserves a CPU for its\npacket thread and keeps its other threads off it, and a sender keeps all its threads off\nCPUs that receivers reserved (V8\'s helper threads would take the receiver\'s CPU)' },
    { long: 'rt', value: 'prio', help: 'run the packet threads at SCHED_FIFO priority prio (1..99; root or CAP_SYS_NICE):\na receiver then preempts other threads the moment frames arrive (see src/generator/README.md)' },
  ],
};

/** Turns pkt-gen's port argument into a port name. */
export function portName(text: string): string {
  if (text.length === 0) fail('EINVAL', '-i: empty port name');
  if (text.startsWith('netmap:') || text.startsWith('vale')) return text;
  if (text.startsWith('tap:') || text.startsWith('pcap:') || text === 'null') fail('EOPNOTSUPP', `-i ${text}: the tap, pcap and null back-ends of pkt-gen are not supported; use a netmap port`);
  return `netmap:${text}`;
}

/** Parses pkt-gen's argument list; returns null for --help. Throws a UsageError on bad input. */
export function parseArgs(argv: string[]): GenConfig | null {
  return parseTool(PKT_GEN, argv, toConfig);
}

function toConfig(p: ParsedArgs): GenConfig {
  if (p.operands.length > 0) usageFail(`unexpected argument '${p.operands[0]}'`);
  const ifText = p.value('i');
  if (ifText === undefined) usageFail('missing -i port (e.g. -i netmap:p{0 or -i vale0:a)');
  const ifname = portName(ifText);
  const fnText = p.value('f') ?? 'rx';
  if (!(FUNCTIONS as readonly string[]).includes(fnText)) usageFail(`-f ${fnText}: unrecognised function (use ${FUNCTIONS.join(', ')})`);
  const fn = fnText as GenFunction;
  const pingPong = fn === 'ping' || fn === 'pong';
  const isSoftPort = ifname.startsWith('vale') || /[{}]/.test(ifname);
  const cfg: GenConfig = {
    fn, ifname,
    count: p.number('n', 0, { min: 0, max: NO_LIMIT, units: true }),
    size: p.number('l', DEFAULTS.size, { min: 42, max: 65535 }),
    burst: p.number('b', pingPong ? DEFAULTS.pingBurst : DEFAULTS.burst, { min: 1, max: DEFAULTS.maxBurst }),
    rate: p.number('R', 0, { min: 0, max: 1e10, units: true }),
    threads: p.number('p', 1, { min: 1, max: DEFAULTS.maxThreads }),
    src: parseRange(p.value('s') ?? DEFAULTS.src, '-s'),
    dst: parseRange(p.value('d') ?? DEFAULTS.dst, '-d'),
    srcMac: parseMac(p.value('S') ?? DEFAULTS.srcMac, '-S'),
    dstMac: parseMac(p.value('D') ?? DEFAULTS.dstMac, '-D'),
    randomSrc: p.has('z'),
    randomDst: p.has('Z'),
    waitSecs: p.number('w', isSoftPort ? 0 : 2, { min: 0, max: 3600 }),
    reportMs: p.number('T', DEFAULTS.reportMs, { min: 0, max: 3600_000 }),
    verbose: p.count('v'),
    normalize: !p.has('N'),
    json: p.has('json'),
    idleExit: p.has('W'),
    affinity: p.number('a', -1, { min: 0, max: 1023 }),
    cpus: p.number('c', 0, { min: 0, max: 1024 }),
    spinUs: p.number('spin', 0, { min: 0, max: 100_000 }),
    realtime: p.number('rt', 0, { min: 1, max: 99 }),
    reserveCpu: !p.has('no-reserve'),
    dump: p.has('X'),
  };
  if (cfg.reportMs > 0 && cfg.reportMs < 10) usageFail(`-T ${cfg.reportMs}: report interval must be 0 or at least 10 ms`);
  return cfg;
}

export async function main(argv: string[]): Promise<number> {
  // the generator (and with it every port type) is loaded only to run, not for --help or a bad argument
  return runTool(PKT_GEN, argv, toConfig, async (cfg) => {
    if (cfg.realtime > 0) (await import('../native/index.js')).prepareRealtimeProcess(cfg.realtime);
    const { runPktGen } = await import('../generator/run.js');
    return (await runPktGen(cfg)).status;
  });
}
