/**
 * `netmap bridge`: forwards between two ports, both ways (netmap's bridge application).
 * With one port, bridges an interface with its own host stack (`a` and `a^`).
 * The work is done by src/interfaces/bridge.ts.
 */
import { NetmapError } from '../errors.js';
import '../port-types.js';
import { openPort, type Port } from '../ports/index.js';
import { Bridge, BRIDGE_DEFAULT_BURST, BRIDGE_MAX_BURST } from '../interfaces/bridge.js';
import { interfaceInfo } from '../interfaces/ifinfo.js';
import { argHelpers } from './args.js';
import { prepareLookup } from '../switch/control.js';

const USAGE = `usage: netmap bridge [-v] [-c] [-b burst] [-w wait_link] -i port_a [-i port_b]
       netmap bridge [options] port_a [port_b [burst]]
  -i PORT    a port (netmap:IF, netmap:IF^, valeX:P, pipes...); twice for the two sides.
             With one port the other side is its host stack: 'netmap:IF' <-> 'netmap:IF^'
  -b BURST   slots moved per ring pair and pass (1..${BRIDGE_MAX_BURST}, default ${BRIDGE_DEFAULT_BURST})
  -w SECS    wait up to SECS seconds for interface links to come up (default 2)
  -c         disable zero copy (copy payloads even when the ports share memory)
  -v         verbose: a status line every second
  --duration SECS  stop after SECS seconds (default: until SIGINT/SIGTERM)`;

interface Args { ports: string[]; burst: number; wait: number; zeroCopy: boolean; verbose: boolean; duration: number }

const { bad, num } = argHelpers(USAGE);

export function parseArgs(argv: string[]): Args | null {
  const a: Args = { ports: [], burst: BRIDGE_DEFAULT_BURST, wait: 2, zeroCopy: true, verbose: false, duration: 0 };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '-h': case '--help': return null;
      case '-i': {
        a.ports.push(argv[++i] ?? bad('option -i needs a port name'));
        break;
      }
      case '-b': a.burst = Math.floor(num(argv[++i], '-b', 1, BRIDGE_MAX_BURST)); break;
      case '-w': a.wait = num(argv[++i], '-w', 0, 3600); break;
      case '-c': a.zeroCopy = false; break;
      case '-v': a.verbose = true; break;
      case '--duration': a.duration = num(argv[++i], '--duration', 0, 1e9); break;
      default:
        if (arg.startsWith('-')) bad(`unknown option '${arg}'`);
        positional.push(arg);
    }
  }
  if (a.ports.length === 0 && positional.length > 0) {
    a.ports.push(positional[0]!);
    if (positional[1] !== undefined) a.ports.push(positional[1]);
    if (positional[2] !== undefined) a.burst = Math.floor(num(positional[2], 'burst', 1, BRIDGE_MAX_BURST));
    if (positional.length > 3) bad(`too many arguments`);
  } else if (positional.length > 0) {
    bad(`unexpected argument '${positional[0]}'`);
  }
  if (a.ports.length === 0) bad('missing port (-i)');
  if (a.ports.length > 2) bad('at most two ports (-i twice)');
  if (a.ports.length === 1 || a.ports[0] === a.ports[1]) {
    const p = a.ports[0]!;
    if (p.endsWith('^')) bad(`with one port, give the interface itself ('${p.slice(0, -1)}'), not its host rings`);
    a.ports = [p, `${p}^`];
  }
  return a;
}

async function waitLink(port: Port, secs: number): Promise<void> {
  const deadline = Date.now() + secs * 1000;
  for (;;) {
    let running = true;
    try {
      running = interfaceInfo(port.name).running;
    } catch {
      return; // not an interface
    }
    if (running || Date.now() >= deadline) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function ringsText(p: Port): string {
  const first = p.rxRings[0]?.id ?? 0;
  return `0x${first.toString(16)}/${p.rxRings.length}`;
}

export async function main(argv: string[]): Promise<number> {
  let args: Args | null;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error(`netmap bridge: ${(e as Error).message}`);
    return 2;
  }
  if (args === null) {
    console.log(USAGE);
    return 0;
  }
  let a: Port | null = null, b: Port | null = null;
  try {
    // a switch's plugged-in lookup is loaded before forwarding (frames sent meanwhile would drop)
    for (const p of args.ports) await prepareLookup(p);
    a = openPort(args.ports[0]!);
    b = openPort(args.ports[1]!);
    const bridge = new Bridge(a, b, { burst: args.burst, zeroCopy: args.zeroCopy });
    console.error(`------- zerocopy ${bridge.zeroCopy ? 'supported' : 'NOT supported'}`);
    await Promise.all([waitLink(a, args.wait), waitLink(b, args.wait)]);
    console.error(`Ready to go, ${args.ports[0]} ${ringsText(a)} <-> ${args.ports[1]} ${ringsText(b)}.`);
    let stop = false;
    const onSignal = (): void => { stop = true; };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const end = args.duration > 0 ? Date.now() + args.duration * 1000 : Infinity;
    let lastReport = Date.now();
    let idle = 0;
    while (!stop && Date.now() < end) {
      // bounded passes between event-loop turns, so signals are seen
      const turnEnd = Date.now() + 50;
      do {
        if (bridge.step() === 0) {
          idle++;
          bridge.wait(idle > 2 ? 20 : 1);
        } else {
          idle = 0;
        }
      } while (Date.now() < turnEnd);
      if (args.verbose && Date.now() - lastReport >= 1000) {
        lastReport = Date.now();
        console.error(`bridge: ${bridge.forwardedAB} ${args.ports[0]} -> ${args.ports[1]}, ${bridge.forwardedBA} back`);
      }
      await new Promise((r) => setImmediate(r));
    }
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    console.error(`${bridge.forwardedAB} packets ${args.ports[0]} -> ${args.ports[1]}, ${bridge.forwardedBA} packets ${args.ports[1]} -> ${args.ports[0]}`);
    return 0;
  } catch (e) {
    if (e instanceof NetmapError) {
      console.error(`netmap bridge: ${e.message}`);
      return 1;
    }
    throw e;
  } finally {
    b?.close();
    a?.close();
  }
}
