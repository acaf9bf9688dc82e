/**
 * `netmap bridge`: forwards between two ports, both ways (netmap's bridge application).
 * With one port, bridges an interface with its own host stack (`a` and `a^`).
 * The work is done by src/interfaces/bridge.ts.
 */
import { loadPortTypesFor } from '../port-types-lazy.js';
import { openPort, type Port } from '../ports/port.js';
import { Bridge, BRIDGE_DEFAULT_BURST, BRIDGE_MAX_BURST } from '../interfaces/bridge.js';
import { interfaceInfo } from '../interfaces/ifinfo.js';
import { parseNumber, parseTool, runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';
import { prepareLookup } from '../switch/control.js';
import { fail } from '../errors.js';
import { formatPortSpec, parsePortSpec } from '../ports/name.js';

const BRIDGE: ToolSpec = {
  name: 'bridge',
  synopsis: ['[-v] [-c] [-L] [-b burst] [-w wait_link] -i port_a [-i port_b]', '[options] port_a [port_b [burst]]'],
  options: [
    { short: 'i', value: 'PORT', many: true, help: 'a port (netmap:IF, netmap:IF^, valeX:P, pipes...); twice for the two sides.\nWith one port the other side is its host stack: \'netmap:IF\' <-> \'netmap:IF^\'' },
    { short: 'b', value: 'BURST', help: `slots moved per ring pair and pass (1..${BRIDGE_MAX_BURST}, default ${BRIDGE_DEFAULT_BURST})` },
    { short: 'w', value: 'SECS', help: 'wait up to SECS seconds for interface links to come up (default 2)' },
    { short: 'c', help: 'disable zero copy (copy payloads even when the ports share memory)' },
    { short: 'L', help: 'with one port (or the same twice): loop its traffic back out of it\ninstead of bridging it with its host stack' },
    { short: 'v', many: true, help: 'verbose: a status line every second' },
    { long: 'duration', value: 'SECS', help: 'stop after SECS seconds (default: until SIGINT/SIGTERM)' },
  ],
};

/** The two sides; the same name twice with -L (one port, looped back); one: the port and its host stack. */
interface Args { ports: string[]; loopback: boolean; burst: number; wait: number; zeroCopy: boolean; verbose: boolean; duration: number }

export function parseArgs(argv: string[]): Args | null {
  return parseTool(BRIDGE, argv, toArgs);
}

function toArgs(p: ParsedArgs): Args {
  const burstRule = { min: 1, max: BRIDGE_MAX_BURST };
  const a: Args = {
    ports: p.values('i'), loopback: p.has('L'), burst: p.number('b', BRIDGE_DEFAULT_BURST, burstRule),
    wait: p.number('w', 2, { min: 0, max: 3600, fraction: true }), zeroCopy: !p.has('c'), verbose: p.has('v'),
    duration: p.number('duration', 0, { min: 0, max: 1e9, fraction: true }),
  };
  // netmap's second form: bridge [options] port_a [port_b [burst]]
  const ops = p.operands;
  if (a.ports.length > 0 && ops.length > 0) usageFail(`unexpected argument '${ops[0]}'`);
  if (ops.length > 3) usageFail('too many arguments');
  if (ops.length > 0) {
    a.ports = ops.slice(0, 2);
    if (ops[2] !== undefined) a.burst = parseNumber(ops[2], 'burst', burstRule);
  }
  if (a.ports.length === 0) usageFail('missing port (-i)');
  if (a.ports.length > 2) usageFail('at most two ports (-i twice)');
  if (a.ports.length === 1 || a.ports[0] === a.ports[1]) {
    // one port: looped back (-L), or bridged with its host stack (named when bridge starts,
    // hostSideOf: a name that cannot have one fails as an open does, exit 1)
    a.ports = a.loopback ? [a.ports[0]!, a.ports[0]!] : [a.ports[0]!];
  } else if (a.loopback) {
    usageFail('-L loops one port back to itself: give one port');
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
  return runTool(BRIDGE, argv, toArgs, run);
}

/**
 * The host-stack side of `name` for bridge's one-port form: the same name with the host rings
 * selected (`netmap:eth0` -> `netmap:eth0^`), every other suffix kept. EINVAL for a malformed name
 * or one that already selects rings.
 */
export function hostSideOf(name: string): string {
  const spec = parsePortSpec(name);
  if (spec.mode !== 'ALL_NIC') fail('EINVAL', `${name}: with one port, give the interface itself ('${formatPortSpec({ ...spec, mode: 'ALL_NIC', ringId: 0 })}'), not a ring selection: its host rings are the other side`);
  return formatPortSpec({ ...spec, mode: 'SW' });
}

async function run(given: Args): Promise<number> {
  const args = given.ports.length === 1 ? { ...given, ports: [given.ports[0]!, hostSideOf(given.ports[0]!)] } : given;
  let a: Port | null = null, b: Port | null = null;
  try {
    await loadPortTypesFor(args.ports);
    // a switch's plugged-in lookup is loaded before forwarding (frames sent meanwhile would drop)
    for (const p of args.ports) await prepareLookup(p);
    a = openPort(args.ports[0]!);
    // -L: one port, forwarding between its own RX and TX rings
    b = args.loopback ? a : openPort(args.ports[1]!);
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
  } finally {
    if (b !== a) b?.close();
    a?.close();
  }
}
