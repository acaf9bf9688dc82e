/**
 * `netmap kipfw [options] PORT_A PORT_B [PORT_C PORT_D ...]`: the firewall daemon (netmap-ipfw's
 * kipfw). Ports go in pairs; frames received on one port of a pair go through the ruleset and,
 * when they pass, out of the other. Runs in the foreground until SIGINT/SIGTERM (exit status 0),
 * or until an interface under one of its ports is deleted (exit status 1). The work is done
 * by src/firewall/daemon.ts; rules are managed with `netmap ipfw`.
 */
import '../port-types.js'; // every port type, plugged into openPort
import { Kipfw } from '../firewall/daemon.js';
import { prepareRealtimeProcess } from '../native/index.js';
import { makeDaemonDummynet } from '../firewall/dummynet-glue.js';
import { PATH_POOL_DEFAULT } from '../firewall/path.js';
import { HANDOFF_STOCK } from '../firewall/handoff.js';
import { parseTool, runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';

const KIPFW: ToolSpec = {
  name: 'kipfw',
  synopsis: ['[-s NAME] [-p N] [-D] [-c] [-I] [-b POOL] [--rt PRIO] [--spin] [-v] [--duration SECS] PORT_A PORT_B [PORT_C PORT_D ...]'],
  preamble: [
    'PORT_A PORT_B  a pair of ports (netmap:IF, netmap:IF^, valeX:P, pipes, single rings): frames',
    '               received on one go through the ruleset and, when they pass, out of the other',
  ],
  options: [
    { short: 's', value: 'NAME', help: 'the firewall\'s name, for \'netmap ipfw -s NAME\' (default: $NETMAP_IPFW or \'ipfw\')' },
    { short: 'p', value: 'N', help: 'N worker threads (1..16), each on its own ring pair of every port (name-K), one\nruleset, one set of counters, one state table and one dummynet (in worker 0, fed by\nthe others); the ports need N ring pairs (valeX:P@conf:rings=N, netmap:IF@conf:rings=N)' },
    { short: 'D', help: 'rule 65535 is \'deny ip from any to any\' (default: allow, as netmap-ipfw)' },
    { short: 'c', help: 'copy frames even when the two ports share memory (no buffer swapping)' },
    { short: 'I', help: 'interpret rulesets instead of compiling them to JavaScript' },
    { short: 'b', value: 'POOL', help: `extra buffers each port lends dummynet for waiting packets (0..65536, default ${PATH_POOL_DEFAULT};\nwith -p N worker 0 takes POOL, the others up to ${HANDOFF_STOCK} each to swap for handed-off frames)` },
    { long: 'rt', value: 'PRIO', help: 'run the data path and dummynet in a real-time thread (SCHED_FIFO, 1..99; root):\npackets leave their pipes on time even when the CPUs are busy (with -p N: worker 0)' },
    { long: 'spin', help: 'busy-wait while dummynet holds packets: its thread never sleeps until the last one\nleft (a CPU kept busy meanwhile; the sleep before a due packet otherwise ends 200 µs early)' },
    { short: 'v', many: true, help: 'a status line every second' },
    { long: 'duration', value: 'SECS', help: 'stop after SECS seconds (default: until SIGINT/SIGTERM)' },
  ],
  permute: true,
};

interface Args { workers: number; name: string; ports: string[]; deny: boolean; copy: boolean; interpret: boolean; pool: number; rt: number; spin: boolean; verbose: boolean; duration: number }

export function parseArgs(argv: string[]): Args | null {
  return parseTool(KIPFW, argv, toArgs);
}

function toArgs(p: ParsedArgs): Args {
  const ports = p.operands;
  if (ports.length === 0) usageFail('missing ports');
  if (ports.length % 2 !== 0) usageFail(`ports go in pairs: '${ports.at(-1)}' has no partner`);
  return {
    workers: p.number('p', 1, { min: 1, max: 16 }), name: p.value('s') ?? (process.env.NETMAP_IPFW || 'ipfw'), ports,
    deny: p.has('D'), copy: p.has('c'), interpret: p.has('I'), pool: p.number('b', PATH_POOL_DEFAULT, { min: 0, max: 65536 }),
    rt: p.number('rt', 0, { min: 1, max: 99 }), spin: p.has('spin'),
    verbose: p.has('v'), duration: p.number('duration', 0, { min: 0, max: 1e9, fraction: true }),
  };
}

export async function main(argv: string[]): Promise<number> {
  return runTool(KIPFW, argv, toArgs, run);
}

async function run(args: Args): Promise<number> {
  // A real-time data path does V8's GC work itself (dummynet/README.md, TIMING)
  if (args.rt > 0) prepareRealtimeProcess(args.rt);
  const k = await Kipfw.start({
    name: args.name, ports: args.ports, defaultAccept: !args.deny, compiled: !args.interpret,
    zeroCopy: !args.copy, poolBuffers: args.pool, workers: args.workers, realtime: args.rt, spin: args.spin,
  }, makeDaemonDummynet);
  const onSignal = (): void => k.stop();
  // `on`, kept until k.close() is done: a second SIGINT during the asynchronous close (^C twice,
  // timeout -s INT) killed the daemon and left its control socket, store and memory behind.
  // Before the lines that say the daemon is up: a signal sent on seeing them killed it otherwise.
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  for (const line of k.describe()) console.error(line);
  let timer: NodeJS.Timeout | null = null;
  if (args.verbose) {
    let last = { ...k.stats };
    timer = setInterval(() => {
      const s = k.stats;
      console.error(`kipfw ${k.name}: ${s.received - last.received} pps in, ${s.passed - last.passed} passed, ${s.denied - last.denied} denied, ${s.toDummynet - last.toDummynet} to dummynet`);
      last = { ...s };
    }, 1000);
  }
  try {
    await k.run(args.duration > 0 ? args.duration * 1000 : Infinity);
  } finally {
    if (timer !== null) clearInterval(timer);
    const s = k.stats;
    console.error(`kipfw ${k.name}: ${s.received} received, ${s.passed} passed, ${s.denied} denied, ${s.rejected} rejected (${s.repliesSent} replies), ${s.toDummynet} through dummynet${args.workers > 1 ? ` (${s.handedOff} handed to worker 0 by the others)` : ''}`);
    if (s.poolFull > 0 || s.dummynetLost > 0 || s.handoffFull > 0) console.error(`kipfw ${k.name}: dummynet dropped ${s.poolFull} packets for want of a pool buffer, ${s.handoffFull} for a full hand-off ring (-p N), ${s.dummynetLost} at its output (a full TX ring, or dropped by the pipe)`);
    const late = k.releaseLateness();
    if (late !== null && late.packets > 0) {
      const us = (x: number): string => (x === Infinity ? '>1 s' : x === 0 ? '<1 µs' : `≤${x} µs`);
      console.error(`kipfw ${k.name}: dummynet released ${late.packets} packets late by p50 ${us(late.p50Us)}, p90 ${us(late.p90Us)}, p99 ${us(late.p99Us)}, max ${us(late.maxUs)}`);
    }
    try {
      await k.close();
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
  }
  return k.failure === null ? 0 : 1;
}
