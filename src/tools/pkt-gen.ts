/**
 * `netmap pkt-gen`: netmap's packet generator and sink. Parses pkt-gen's options and hands the
 * run to the library (src/generator).
 */
import { NetmapError, fail } from '../errors.js';
import { parseMac, parseRange } from '../generator/addr.js';
import { DEFAULTS, FUNCTIONS, type GenConfig, type GenFunction } from '../generator/config.js';
import { runPktGen } from '../generator/run.js';

export const USAGE = `usage: netmap pkt-gen -i port [-f function] [options]
  -i port        netmap:IF, valeX:P, pipes NAME{N / NAME}N (a bare name gets netmap: prepended)
  -f function    tx, rx (default), ping, pong, txseq, rxseq
  -n count       packets to send/receive, 0 = forever (default 0); k/M/G suffixes accepted
  -l size        frame length without CRC, 42..buffer size (default 60)
  -b burst       batch per ring per poll (default 512; ping/pong 1)
  -R rate        packets per second (tx, txseq); k/M/G suffixes accepted
  -p threads     worker threads, each on its own ring (name-K) (default 1)
  -d dst         ip[:port][-[ip][:port]] destination range (default 10.1.0.1:1234)
  -s src         ip[:port][-[ip][:port]] source range (default 10.0.0.1:1234)
  -D dst_mac     destination MAC (default ff:ff:ff:ff:ff:ff)
  -S src_mac     source MAC (default 00:00:00:00:00:00)
  -z / -Z        random source / destination address and port within the range
  -w secs        wait before starting (default 0 for VALE ports and pipes, 2 otherwise)
  -T ms          report interval (default 1000, 0 = none)
  -W             rx, pong: exit after 1 s without traffic once traffic started
                 (until the first frame it waits without limit, as netmap's pkt-gen does)
  -a cpu         pin thread K to CPU (cpu + K) mod cpus
  -c cpus        CPUs to use for pinning (default: all)
  -N             do not normalise units in reports
  -X             rx, rxseq: dump every frame received (hex, on stderr)
  -v             verbose (repeat for more)
  --json         machine-readable JSON lines on stdout instead of text
  --spin us      busy-poll up to us microseconds before sleeping in poll (default 0)
  -h, --help     this help`;

const WITH_VALUE = new Set(['--spin', '-i', '-f', '-n', '-l', '-b', '-R', '-p', '-d', '-s', '-D', '-S', '-w', '-T', '-a', '-c']);
const FLAGS = new Set(['-X', '-z', '-Z', '-W', '-N', '-v', '--json', '-h', '--help']);

function parseCount(text: string, opt: string, min: number, max: number, suffixes: boolean): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)$/.exec(text);
  if (m === null || (!suffixes && (m[2] !== '' || m[1]!.includes('.')))) fail('EINVAL', `${opt}: '${text}' is not ${suffixes ? 'a number (k/M/G suffixes allowed)' : 'an integer'}`);
  const mult = { '': 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6, g: 1e9, G: 1e9 }[m[2]!]!;
  const v = Math.round(Number(m[1]) * mult);
  if (v < min || v > max) fail('EINVAL', `${opt}: ${text} is out of range (${min}..${max})`);
  return v;
}

/** Turns pkt-gen's port argument into a port name. */
export function portName(text: string): string {
  if (text.length === 0) fail('EINVAL', '-i: empty port name');
  if (text.startsWith('netmap:') || text.startsWith('vale')) return text;
  if (text.startsWith('tap:') || text.startsWith('pcap:') || text === 'null') fail('EOPNOTSUPP', `-i ${text}: the tap, pcap and null back-ends of pkt-gen are not supported; use a netmap port`);
  return `netmap:${text}`;
}

/** Parses pkt-gen's argument list; returns null for --help. Throws NetmapError (EINVAL) on bad input. */
export function parseArgs(argv: string[]): GenConfig | null {
  const opts = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    let key = a, val: string | undefined;
    if (!FLAGS.has(a) && !WITH_VALUE.has(a) && a.length > 2 && a[0] === '-' && a[1] !== '-' && WITH_VALUE.has(a.slice(0, 2))) {
      key = a.slice(0, 2); val = a.slice(2); // -n100
    }
    if (FLAGS.has(key)) {
      if (key === '-h' || key === '--help') return null;
      opts.set(key, [...(opts.get(key) ?? []), '']);
      continue;
    }
    if (!WITH_VALUE.has(key)) fail('EINVAL', a.startsWith('-') ? `unknown option '${a}'` : `unexpected argument '${a}'`);
    if (val === undefined) {
      val = argv[++i];
      if (val === undefined) fail('EINVAL', `option ${key} needs a value`);
    }
    opts.set(key, [...(opts.get(key) ?? []), val]);
  }
  const one = (k: string): string | undefined => {
    const v = opts.get(k);
    if (v === undefined) return undefined;
    if (v.length > 1 && k !== '-v') fail('EINVAL', `option ${k} given ${v.length} times`);
    return v[0];
  };
  const ifText = one('-i');
  if (ifText === undefined) fail('EINVAL', 'missing -i port (e.g. -i netmap:p{0 or -i vale0:a)');
  const ifname = portName(ifText);
  const fnText = one('-f') ?? 'rx';
  if (!(FUNCTIONS as readonly string[]).includes(fnText)) fail('EINVAL', `-f ${fnText}: unrecognised function (use ${FUNCTIONS.join(', ')})`);
  const fn = fnText as GenFunction;
  const pingPong = fn === 'ping' || fn === 'pong';
  const num = (k: string, def: number, min: number, max: number, suffixes = false): number => {
    const v = one(k);
    return v === undefined ? def : parseCount(v, k, min, max, suffixes);
  };
  const isSoftPort = ifname.startsWith('vale') || /[{}]/.test(ifname);
  const cfg: GenConfig = {
    fn, ifname,
    count: num('-n', 0, 0, Number.MAX_SAFE_INTEGER, true),
    size: num('-l', DEFAULTS.size, 42, 65535),
    burst: num('-b', pingPong ? DEFAULTS.pingBurst : DEFAULTS.burst, 1, DEFAULTS.maxBurst),
    rate: num('-R', 0, 0, 1e10, true),
    threads: num('-p', 1, 1, DEFAULTS.maxThreads),
    src: parseRange(one('-s') ?? DEFAULTS.src, '-s'),
    dst: parseRange(one('-d') ?? DEFAULTS.dst, '-d'),
    srcMac: parseMac(one('-S') ?? DEFAULTS.srcMac, '-S'),
    dstMac: parseMac(one('-D') ?? DEFAULTS.dstMac, '-D'),
    randomSrc: opts.has('-z'),
    randomDst: opts.has('-Z'),
    waitSecs: num('-w', isSoftPort ? 0 : 2, 0, 3600),
    reportMs: num('-T', DEFAULTS.reportMs, 0, 3600_000),
    verbose: opts.get('-v')?.length ?? 0,
    normalize: !opts.has('-N'),
    json: opts.has('--json'),
    idleExit: opts.has('-W'),
    affinity: num('-a', -1, 0, 1023),
    cpus: num('-c', 0, 0, 1024),
    spinUs: num('--spin', 0, 0, 100_000),
    dump: opts.has('-X'),
  };
  if (cfg.reportMs > 0 && cfg.reportMs < 10) fail('EINVAL', `-T ${cfg.reportMs}: report interval must be 0 or at least 10 ms`);
  return cfg;
}

export async function main(argv: string[]): Promise<number> {
  let cfg: GenConfig | null;
  try {
    cfg = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof NetmapError)) throw e;
    console.error(`pkt-gen: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (cfg === null) {
    console.log(USAGE);
    return 0;
  }
  try {
    const r = await runPktGen(cfg);
    return r.status;
  } catch (e) {
    if (!(e instanceof NetmapError)) throw e;
    console.error(`pkt-gen: ${e.message}`);
    return 1;
  }
}
