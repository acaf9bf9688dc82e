/**
 * `netmap nmreplay`: replay a pcap/pcapng file onto a netmap port. The work is done by
 * src/capture/replay.ts.
 */
import { NetmapError } from '../errors.js';
import '../port-types.js';
import { openPort } from '../ports/index.js';
import { replayFile, type ReplayOptions } from '../capture/replay.js';

const USAGE = `usage: netmap nmreplay -f FILE -i PORT [-b BW | -r PPS | -F] [-l LOOPS] [-t SECONDS] [-c COUNT]
  -f FILE      capture file to replay (pcap or pcapng)
  -i PORT      netmap port to send on (netmap:p{1, vale0:a, netmap:eth1, ...)
  -b BW        fixed bandwidth in bit/s, with k/M/G suffixes (e.g. 100M), counting 24 bytes of framing
  -r PPS       fixed packet rate (packets per second, k/M suffixes)
  -F           as fast as possible
               (default: the timing recorded in the file)
  -l LOOPS     passes over the file (default 1; 0 = until -t or -c)
  -t SECONDS   stop after SECONDS
  -c COUNT     stop after COUNT packets`;

function parseUnits(v: string | undefined, what: string): number {
  const m = v === undefined ? null : /^(\d+(?:\.\d+)?)([kKmMgG]?)$/.exec(v);
  if (m === null) throw new Error(`${what} needs a number with an optional k/M/G suffix, got '${v ?? ''}'`);
  const mult = { '': 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6, g: 1e9, G: 1e9 }[m[2] ?? ''] as number;
  const n = Number(m[1]) * mult;
  if (!(n > 0)) throw new Error(`${what} must be positive`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  let file: string | undefined, port: string | undefined;
  const opts: ReplayOptions = { mode: 'timed' };
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      const val = (): string => {
        const v = argv[++i];
        if (v === undefined) throw new Error(`option ${a} needs an argument`);
        return v;
      };
      switch (a) {
        case '-f': file = val(); break;
        case '-i': port = val(); break;
        case '-b': opts.mode = 'bandwidth'; opts.bandwidth = parseUnits(val(), '-b'); break;
        case '-r': opts.mode = 'rate'; opts.rate = parseUnits(val(), '-r'); break;
        case '-F': opts.mode = 'fast'; break;
        case '-l': {
          const v = val();
          if (!/^\d+$/.test(v)) throw new Error(`-l needs a whole number, got '${v}'`);
          opts.loops = Number(v);
          break;
        }
        case '-t': opts.durationMs = parseUnits(val(), '-t') * 1000; break;
        case '-c': opts.count = Math.floor(parseUnits(val(), '-c')); break;
        default: throw new Error(`unknown argument '${a}'`);
      }
    }
    if (file === undefined) throw new Error('give the file to replay (-f)');
    if (port === undefined) throw new Error('give the port to send on (-i)');
  } catch (e) {
    console.error(`netmap nmreplay: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  try {
    const p = openPort(port);
    try {
      const r = replayFile(file, p, opts);
      console.log(`${r.packets} packets, ${r.bytes} bytes in ${r.seconds.toFixed(3)} s over ${r.loops} loop(s): ` +
        `${(r.pps / 1e6).toFixed(3)} Mpps, ${(r.bps / 1e6).toFixed(1)} Mbit/s${r.truncated > 0 ? `, ${r.truncated} truncated to the buffer size` : ''}`);
    } finally {
      p.close();
    }
    return 0;
  } catch (e) {
    if (e instanceof NetmapError) {
      console.error(`netmap nmreplay: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
