/**
 * The firewall as a VALE switch's lookup function (netmap's pluggable lookup was made "to attach
 * the firewall directly on the netmap port"). `netmap ipfw attach valeX` creates the firewall
 * store named valeX and plugs this module in with the store's name as its configuration.
 *
 * Forwarding runs in every sender's process, so every sender imports this module and opens the
 * store: all of them evaluate the same published ruleset (each rebuilds its evaluator when the
 * store's generation moves, between batches), add to their own counter stripe (the counters add
 * up exactly across processes), and share one dynamic-state table.
 *
 * Each frame is first given a destination by netmap's learning bridge, then checked once as a
 * forwarded packet on its way out: not `in`, `recv` = the source port's name, `xmit` = the
 * destination port's name (none for a flood: `xmit NAME` does not match, `xmit any` does not
 * either). A passed frame goes where the bridge sends it; anything else is dropped and counted as
 * the source port's txDrops in `vale-ctl -s`. A lookup cannot send packets, so reject/unreach/
 * reset drop without a reply here, and pipe/queue (dummynet needs a daemon to hold packets) drop.
 */
import { BROADCAST, DROP, type LookupContext, type LookupFn } from '../switch/lookup.js';
import { Firewall } from './firewall.js';
import type { Interfaces } from './engine.js';
import type { PathEvaluator } from './path.js';

const V_PASS = 0;

export function createLookup(config: string, ctx: LookupContext): LookupFn {
  const fw = Firewall.open(config.trim());
  const names: Array<string | null> = [];
  let namesGen = -2;
  const ifaces: Interfaces = {
    name: (id: number) => {
      if (id < 0) return null;
      const g = ctx.generation();
      if (g !== namesGen) { names.length = 0; namesGen = g; ifacesGen++; }
      let n = names[id];
      if (n === undefined) { n = ctx.portName(id); names[id] = n; }
      return n;
    },
    get generation() { return ifacesGen; },
  };
  let ifacesGen = 0;
  let gen = -1;
  let evaluator: PathEvaluator = fw.evaluator(ifaces).evaluator;
  let batchMs = Date.now();
  let calls = 0;
  return (u8: Uint8Array, off: number, len: number, srcPort: number): number => {
    // a lookup sees no batch boundary: the ruleset generation is checked every frame (one
    // atomic load), the clock and the switch's port names once per 64 frames
    const g = fw.generation();
    if (g !== gen) { gen = g; evaluator = fw.evaluator(ifaces).evaluator; }
    if ((calls++ & 63) === 0) {
      const sg = ctx.generation();
      if (sg !== namesGen) ifaces.name(0);
      batchMs = Date.now();
    }
    const dst = ctx.learningBridge(u8, off, len, srcPort);
    const v = evaluator.check(u8, off, len, false, srcPort, dst === BROADCAST ? -1 : dst, batchMs);
    return v === V_PASS ? dst : DROP;
  };
}
