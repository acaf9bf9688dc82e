/**
 * `netmap lb`: spreads the flows of one port over groups of pipes by a symmetric 5-tuple hash
 * (netmap's lb). Consumers open `netmap:NAME}K`. The work is done by src/interfaces/lb.ts.
 */
import { loadPortTypesFor } from '../port-types-lazy.js';
import { LoadBalancer, type LbGroup } from '../interfaces/lb.js';
import { interfaceInfo } from '../interfaces/ifinfo.js';
import { fail } from '../errors.js';
import { parsePortSpec } from '../ports/name.js';
import { parseNumber, parseTool, runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';

const LB: ToolSpec = {
  name: 'lb',
  synopsis: ['[options] -i port [-p [name:]N]...'],
  options: [
    { short: 'i', value: 'PORT', help: 'input port (netmap:IF, a pipe end; not a VALE port), required' },
    { short: 'p', value: '[NAME:]N', many: true, help: 'add a group of N pipes netmap:NAME{K (NAME defaults to the input\'s name);\nevery group receives every packet (default: one group of 2)' },
    { short: 'B', value: 'N', help: 'extra buffers for overflow queues (default 0: drop when a pipe is full)' },
    { short: 'b', value: 'N', help: 'batch: slots handled per pass (default 2048)' },
    { short: 'w', value: 'SECS', help: 'wait up to SECS seconds for the input link (default 2)' },
    { short: 'W', help: 'busy wait (never sleep)' },
    { short: 'o', value: 'SECS', help: 'print JSON statistics to stdout every SECS seconds' },
    { short: 's', value: 'SECS', help: 'same, to stderr (netmap lb sends these to syslog)' },
    { long: 'duration', value: 'SECS', help: 'stop after SECS seconds (default: until SIGINT/SIGTERM)' },
  ],
};

interface Args {
  input: string; groups: LbGroup[]; extra: number; batch: number; wait: number; busy: boolean;
  stdoutEvery: number; stderrEvery: number; duration: number;
}

export function parseArgs(argv: string[]): Args | null {
  return parseTool(LB, argv, toArgs);
}

function toArgs(p: ParsedArgs): Args {
  if (p.operands.length > 0) usageFail(`unexpected argument '${p.operands[0]}'`);
  const input = p.value('i');
  if (input === undefined) usageFail('missing input port (-i)');
  const period = { min: 0.001, max: 86400, fraction: true };
  const a: Args = {
    input, groups: [], extra: p.number('B', 0, { min: 0, max: 524288 }), batch: p.number('b', 2048, { min: 1, max: 65536 }),
    wait: p.number('w', 2, { min: 0, max: 3600, fraction: true }), busy: p.has('W'),
    stdoutEvery: p.number('o', 0, period), stderrEvery: p.number('s', 0, period),
    duration: p.number('duration', 0, { min: 0, max: 1e9, fraction: true }),
  };
  // The names are checked when lb starts (checkPorts): a port name that cannot serve fails as an
  // open does (exit 1), not as a bad option (64). Here only the default group name is taken.
  let defaultName = '';
  try { defaultName = parsePortSpec(input).portName; } catch { /* checkPorts says why */ }
  const groupSpecs = p.values('p');
  for (const g of groupSpecs.length > 0 ? groupSpecs : ['2']) {
    const colon = g.lastIndexOf(':');
    const name = colon >= 0 ? g.slice(0, colon) : defaultName;
    const n = parseNumber(colon >= 0 ? g.slice(colon + 1) : g, '-p', { min: 1, max: 64 });
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
  return runTool(LB, argv, toArgs, run);
}

/**
 * The port names lb will open, checked before anything is opened: a malformed input, a VALE input,
 * a group name no pipe can have. A NetmapError EINVAL, as openPort's (the tool exits 1).
 */
export function checkPorts(args: Args): void {
  const spec = parsePortSpec(args.input);
  // The pipes (netmap:NAME{K) are opened in the input's memory region: an interface's pipes, or a
  // pipe's siblings, are there; a VALE port's region has no pipes (netmap:in{K made in a region of
  // its own failed at start with 'uses memory region 3, not 2'), so say so before starting.
  if (spec.subsystem === 'vale') {
    fail('EINVAL', `-i ${args.input}: a VALE port cannot be lb's input (its pipes would not share the port's memory); ` +
      `bridge it to a pipe and balance the pipe's other end, whose siblings carry the output: ` +
      `netmap bridge -i ${args.input} -i 'netmap:in{9' & netmap lb -i 'netmap:in}9' (consumers open netmap:in}0, netmap:in}1)`);
  }
  for (const g of args.groups) {
    if (g.name === '') fail('EINVAL', `-p: empty pipe name in '${g.name}:${g.pipes}'`);
    parsePortSpec(`netmap:${g.name}{${g.pipes - 1}`); // the parser's EINVAL names the fault
  }
}

async function run(args: Args): Promise<number> {
  checkPorts(args);
  await loadPortTypesFor([args.input, ...args.groups.map((g) => `netmap:${g.name}{0`)]);
  const lb = new LoadBalancer({ input: args.input, groups: args.groups, extraBuffers: args.extra, batch: args.batch });
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
