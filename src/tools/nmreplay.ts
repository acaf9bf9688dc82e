/**
 * `netmap nmreplay`: replay a pcap/pcapng file onto a netmap port. The work is done by
 * src/capture/replay.ts.
 */
import { loadPortTypesFor } from '../port-types-lazy.js';
import { openPort } from '../ports/port.js';
import { replayFile, type ReplayOptions } from '../capture/replay.js';
import { parseNumber, runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';

const NMREPLAY: ToolSpec = {
  name: 'nmreplay',
  synopsis: ['-f FILE -i PORT [-b BW | -r PPS | -F] [-l LOOPS] [-t SECONDS] [-c COUNT]'],
  options: [
    { short: 'f', value: 'FILE', help: 'capture file to replay (pcap or pcapng)' },
    { short: 'i', value: 'PORT', help: 'netmap port to send on (netmap:p{1, vale0:a, netmap:eth1, ...)' },
    { short: 'b', value: 'BW', help: 'fixed bandwidth in bit/s, with k/M/G suffixes (e.g. 100M), counting 24 bytes of framing' },
    { short: 'r', value: 'PPS', help: 'fixed packet rate (packets per second, k/M suffixes)' },
    { short: 'F', help: 'as fast as possible\n(default: the timing recorded in the file)' },
    { short: 'l', value: 'LOOPS', help: 'passes over the file (default 1; 0 = until -t or -c)' },
    { short: 't', value: 'SECONDS', help: 'stop after SECONDS' },
    { short: 'c', value: 'COUNT', help: 'stop after COUNT packets' },
  ],
};

interface Args { file: string; port: string; opts: ReplayOptions }

function toArgs(p: ParsedArgs): Args {
  if (p.operands.length > 0) usageFail(`unexpected argument '${p.operands[0]}'`);
  const file = p.value('f'), port = p.value('i');
  if (file === undefined) usageFail('give the file to replay (-f)');
  if (port === undefined) usageFail('give the port to send on (-i)');
  const opts: ReplayOptions = { mode: 'timed' };
  // the last pacing option wins
  for (const g of p.given) {
    if (g.key === 'b') { opts.mode = 'bandwidth'; opts.bandwidth = parseNumber(g.value, '-b', POSITIVE); }
    if (g.key === 'r') { opts.mode = 'rate'; opts.rate = parseNumber(g.value, '-r', POSITIVE); }
    if (g.key === 'F') opts.mode = 'fast';
  }
  if (p.has('l')) opts.loops = p.number('l', 1, { min: 0, max: Number.MAX_SAFE_INTEGER });
  if (p.has('t')) opts.durationMs = p.number('t', 0, POSITIVE) * 1000;
  if (p.has('c')) opts.count = p.number('c', 0, { ...POSITIVE, fraction: false });
  // checked here too so that it is a usage error (64), not a failed replay (1) after the file is read
  if (opts.loops === 0 && opts.durationMs === undefined && opts.count === undefined) usageFail('-l 0 (endless) needs -t SECONDS or -c COUNT');
  return { file, port, opts };
}

const POSITIVE = { min: 0.001, max: 1e15, fraction: true, units: true };

export async function main(argv: string[]): Promise<number> {
  return runTool(NMREPLAY, argv, toArgs, async ({ file, port, opts }) => {
    await loadPortTypesFor([port]);
    const p = openPort(port);
    try {
      const r = replayFile(file, p, opts);
      console.log(`${r.packets} packets, ${r.bytes} bytes in ${r.seconds.toFixed(3)} s over ${r.loops} loop(s): ` +
        `${(r.pps / 1e6).toFixed(3)} Mpps, ${(r.bps / 1e6).toFixed(1)} Mbit/s${r.truncated > 0 ? `, ${r.truncated} truncated to the buffer size` : ''}`);
    } finally {
      p.close();
    }
    return 0;
  });
}
