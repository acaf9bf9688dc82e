/**
 * `netmap lb`: spreads the flows of one port over groups of pipes by a symmetric 5-tuple hash
 * (netmap's lb). Consumers open `netmap:NAME}K`. The work is done by src/interfaces/lb.ts.
 */
import { NetmapError } from '../errors.js';
import '../port-types.js';
import { LoadBalancer, type LbGroup } from '../interfaces/lb.js';
import { interfaceInfo } from '../interfaces/ifinfo.js';
import { parsePortSpec } from '../ports/name.js';
import { argHelpers } from './args.js';

const USAGE = `usage: netmap lb [options] -i port [-p [name:]N]...
  -i PORT        input port (netmap:IF, valeX:P, ...), required
  -p [NAME:]N    add a group of N pipes netmap:NAME{K (NAME defaults to the input's name);
                 every group receives every packet (default: one group of 2)
  -B N           extra buffers for overflow queues (default 0: drop when a pipe is full)
  -b N           batch: slots handled per pass (default 2048)
  -w SECS        wait up to SECS seconds for the input link (default 2)
  -W             busy wait (never sleep)
  -o SECS        print JSON statistics to stdout every SECS seconds
  -s SECS        same, to stderr (netmap lb sends these to syslog)
  --duration S   stop after S seconds (default: until SIGINT/SIGTERM)`;

interface Args {
  input: string; groups: LbGroup[]; extra: number; batch: number; wait: number; busy: boolean;
  stdoutEvery: number; stderrEvery: number; duration: number;
}

const { bad, num } = argHelpers(USAGE);

export function parseArgs(argv: string[]): Args | null {
  const a: Args = { input: '', groups: [], extra: 0, batch: 2048, wait: 2, busy: false, stdoutEvery: 0, stderrEvery: 0, duration: 0 };
  const groupSpecs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '-h': case '--help': return null;
      case '-i': a.input = argv[++i] ?? bad('option -i needs a port'); break;
      case '-p': groupSpecs.push(argv[++i] ?? bad('option -p needs [name:]N')); break;
      case '-B': a.extra = Math.floor(num(argv[++i], '-B', 0, 524288)); break;
      case '-b': a.batch = Math.floor(num(argv[++i], '-b', 1, 65536)); break;
      case '-w': a.wait = num(argv[++i], '-w', 0, 3600); break;
      case '-W': a.busy = true; break;
      case '-o': a.stdoutEvery = num(argv[++i], '-o', 0.001, 86400); break;
      case '-s': a.stderrEvery = num(argv[++i], '-s', 0.001, 86400); break;
      case '--duration': a.duration = num(argv[++i], '--duration', 0, 1e9); break;
      default: bad(arg.startsWith('-') ? `unknown option '${arg}'` : `unexpected argument '${arg}'`);
    }
  }
  if (a.input === '') bad('missing input port (-i)');
  const spec = ((): ReturnType<typeof parsePortSpec> => {
    try { return parsePortSpec(a.input); } catch (e) { return bad((e as Error).message); }
  })();
  const defaultName = spec.parentName;
  for (const g of groupSpecs.length > 0 ? groupSpecs : ['2']) {
    const colon = g.lastIndexOf(':');
    const name = colon >= 0 ? g.slice(0, colon) : defaultName;
    const n = Math.floor(num(colon >= 0 ? g.slice(colon + 1) : g, '-p', 1, 64));
    if (name === '') bad(`empty pipe name in -p ${g}`);
    a.groups.push({ name, pipes: n });
  }
  return a;
}

function statsLines(lb: LoadBalancer, input: string, prev: Map<string, [number, number, number, number]>, secs: number): string[] {
  const ts = Date.now() / 1000;
  const out: string[] = [];
  const rate = (key: string, f: number, fb: number, d: number, db: number): Record<string, number> => {
    const p = prev.get(key) ?? [0, 0, 0, 0];
    prev.set(key, [f, fb, d, db]);
    return {
      data_forward_rate_Mbps: Number((((fb - p[1]) * 8) / secs / 1e6).toFixed(3)),
      data_drop_rate_Mbps: Number((((db - p[3]) * 8) / secs / 1e6).toFixed(3)),
      packet_forward_rate_kpps: Number(((f - p[0]) / secs / 1e3).toFixed(3)),
      packet_drop_rate_kpps: Number(((d - p[2]) / secs / 1e3).toFixed(3)),
    };
  };
  let fw = 0, dr = 0, fwb = 0, drb = 0;
  lb.pipes().forEach((s, ring) => {
    fw += s.forwarded; dr += s.dropped; fwb += s.forwardedBytes; drb += s.droppedBytes;
    out.push(JSON.stringify({
      ts, interface: s.name, output_ring: ring, packets_forwarded: s.forwarded, packets_dropped: s.dropped,
      ...rate(s.name, s.forwarded, s.forwardedBytes, s.dropped, s.droppedBytes), overflow_queue_size: s.queued,
    }));
  });
  out.push(JSON.stringify({
    ts, interface: input, output_ring: null, packets_received: lb.received, packets_forwarded: fw, packets_dropped: dr,
    non_ip_packets: lb.nonIp, ...rate('<input>', fw, fwb, dr, drb), free_buffer_slots: lb.freeBuffers,
  }));
  return out;
}

export async function main(argv: string[]): Promise<number> {
  let args: Args | null;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error(`netmap lb: ${(e as Error).message}`);
    return 2;
  }
  if (args === null) {
    console.log(USAGE);
    return 0;
  }
  let lb: LoadBalancer;
  try {
    lb = new LoadBalancer({ input: args.input, groups: args.groups, extraBuffers: args.extra, batch: args.batch });
  } catch (e) {
    if (e instanceof NetmapError) {
      console.error(`netmap lb: ${e.message}`);
      return 1;
    }
    throw e;
  }
  try {
    const deadline = Date.now() + args.wait * 1000;
    for (;;) {
      let up = true;
      try { up = interfaceInfo(lb.input.name).running; } catch { /* not an interface */ }
      if (up || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const names = lb.groups.flat().map((p) => p.name.replace('{', '}'));
    console.error(`lb: ${args.input} -> ${lb.groups.flat().length} pipes in ${lb.groups.length} group(s); consumers open ${names.join(' ')}`);
    console.error('Ready');
    let stop = false;
    const onSignal = (): void => { stop = true; };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const end = args.duration > 0 ? Date.now() + args.duration * 1000 : Infinity;
    const prevOut = new Map<string, [number, number, number, number]>(), prevErr = new Map<string, [number, number, number, number]>();
    let nextOut = args.stdoutEvery > 0 ? Date.now() + args.stdoutEvery * 1000 : Infinity;
    let nextErr = args.stderrEvery > 0 ? Date.now() + args.stderrEvery * 1000 : Infinity;
    let idle = 0;
    while (!stop && Date.now() < end) {
      const turnEnd = Date.now() + 50;
      do {
        if (lb.step() === 0) {
          idle++;
          if (!args.busy) lb.wait(idle > 2 ? 20 : 1);
        } else {
          idle = 0;
        }
      } while (Date.now() < turnEnd);
      const now = Date.now();
      if (now >= nextOut) {
        for (const l of statsLines(lb, args.input, prevOut, args.stdoutEvery)) console.log(l);
        nextOut = now + args.stdoutEvery * 1000;
      }
      if (now >= nextErr) {
        for (const l of statsLines(lb, args.input, prevErr, args.stderrEvery)) console.error(l);
        nextErr = now + args.stderrEvery * 1000;
      }
      await new Promise((r) => setImmediate(r));
    }
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    let fw = 0, dr = 0;
    for (const s of lb.pipes()) { fw += s.forwarded; dr += s.dropped; }
    console.log(`${fw} packets forwarded.  ${dr} packets dropped. Total ${fw + dr}`);
    return 0;
  } finally {
    lb.close();
  }
}
