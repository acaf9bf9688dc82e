/**
 * `netmap kipfw [options] PORT_A PORT_B [PORT_C PORT_D ...]`: the firewall daemon (netmap-ipfw's
 * kipfw). Ports go in pairs; frames received on one port of a pair go through the ruleset and,
 * when they pass, out of the other. Runs in the foreground until SIGINT/SIGTERM (exit status 0),
 * or until an interface under one of its ports is deleted (exit status 1). The work is done
 * by src/firewall/daemon.ts; rules are managed with `netmap ipfw`.
 */
import { NetmapError } from '../errors.js';
import '../port-types.js'; // every port type, plugged into openPort
import { Kipfw } from '../firewall/daemon.js';
import { makeDaemonDummynet } from '../firewall/dummynet-glue.js';
import { PATH_POOL_DEFAULT } from '../firewall/path.js';
import { argHelpers } from './args.js';

const USAGE = `usage: netmap kipfw [-s NAME] [-p N] [-D] [-c] [-I] [-b POOL] [--rt PRIO] [-v] [--duration SECS] PORT_A PORT_B [PORT_C PORT_D ...]
  PORT_A PORT_B  a pair of ports (netmap:IF, netmap:IF^, valeX:P, pipes, single rings): frames
                 received on one go through the ruleset and, when they pass, out of the other
  -s NAME    the firewall's name, for 'netmap ipfw -s NAME' (default: $NETMAP_IPFW or 'ipfw')
  -p N       N worker threads (1..16), each on its own ring pair of every port (name-K), one
             ruleset, one set of counters and one state table; the ports need N ring pairs
             (valeX:P@conf:rings=N). Dummynet runs with -p 1 only
  -D         rule 65535 is 'deny ip from any to any' (default: allow, as netmap-ipfw)
  -c         copy frames even when the two ports share memory (no buffer swapping)
  -I         interpret rulesets instead of compiling them to JavaScript
  -b POOL    extra buffers each port lends dummynet for waiting packets (0..65536, default ${PATH_POOL_DEFAULT})
  --rt PRIO  run the data path and dummynet in a real-time thread (SCHED_FIFO, 1..99; root):
             packets leave their pipes on time even when the CPUs are busy (-p 1 only)
  -v         a status line every second
  --duration SECS  stop after SECS seconds (default: until SIGINT/SIGTERM)`;

interface Args { workers: number; name: string; ports: string[]; deny: boolean; copy: boolean; interpret: boolean; pool: number; rt: number; verbose: boolean; duration: number }

const { bad, num } = argHelpers(USAGE);

export function parseArgs(argv: string[]): Args | null {
  const a: Args = { workers: 1, name: process.env.NETMAP_IPFW || 'ipfw', ports: [], deny: false, copy: false, interpret: false, pool: PATH_POOL_DEFAULT, rt: 0, verbose: false, duration: 0 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '-h': case '--help': return null;
      case '-s': {
        const v = argv[++i];
        if (v === undefined) bad('option -s needs a name');
        a.name = v;
        break;
      }
      case '-p': a.workers = Math.floor(num(argv[++i], '-p', 1, 16)); break;
      case '-D': a.deny = true; break;
      case '-c': a.copy = true; break;
      case '-I': a.interpret = true; break;
      case '-b': a.pool = Math.floor(num(argv[++i], '-b', 0, 65536)); break;
      case '--rt': a.rt = Math.floor(num(argv[++i], '--rt', 1, 99)); break;
      case '-v': a.verbose = true; break;
      case '--duration': a.duration = num(argv[++i], '--duration', 0, 1e9); break;
      default:
        if (arg.startsWith('-') && arg.length > 1) bad(`unknown option '${arg}'`);
        a.ports.push(arg);
    }
  }
  if (a.ports.length === 0) bad('missing ports');
  if (a.ports.length % 2 !== 0) bad(`ports go in pairs: '${a.ports.at(-1)}' has no partner`);
  return a;
}

export async function main(argv: string[]): Promise<number> {
  let args: Args | null;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error(`netmap kipfw: ${(e as Error).message}`);
    return 64;
  }
  if (args === null) {
    console.log(USAGE);
    return 0;
  }
  let k: Kipfw;
  try {
    k = await Kipfw.start({
      name: args.name, ports: args.ports, defaultAccept: !args.deny, compiled: !args.interpret,
      zeroCopy: !args.copy, poolBuffers: args.pool, workers: args.workers, realtime: args.rt,
    }, makeDaemonDummynet);
  } catch (e) {
    if (e instanceof NetmapError) {
      console.error(`netmap kipfw: ${e.message}`);
      return 1;
    }
    throw e;
  }
  for (const line of k.describe()) console.error(line);
  const onSignal = (): void => k.stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
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
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    const s = k.stats;
    console.error(`kipfw ${k.name}: ${s.received} received, ${s.passed} passed, ${s.denied} denied, ${s.rejected} rejected (${s.repliesSent} replies), ${s.toDummynet} through dummynet`);
    if (s.poolFull > 0 || s.dummynetLost > 0) console.error(`kipfw ${k.name}: dummynet dropped ${s.poolFull} packets for want of a pool buffer, ${s.dummynetLost} at its output (a full TX ring, or dropped by the pipe)`);
    const late = k.releaseLateness();
    if (late !== null && late.packets > 0) {
      const us = (x: number): string => (x === Infinity ? '>1 s' : x === 0 ? '<1 µs' : `≤${x} µs`);
      console.error(`kipfw ${k.name}: dummynet released ${late.packets} packets late by p50 ${us(late.p50Us)}, p90 ${us(late.p90Us)}, p99 ${us(late.p99Us)}, max ${us(late.maxUs)}`);
    }
    await k.close();
  }
  return k.failure === null ? 0 : 1;
}
