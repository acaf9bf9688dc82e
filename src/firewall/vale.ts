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
import { V_PASS, type Evaluator, type Interfaces } from './engine.js';

export function createLookup(config: string, ctx: LookupContext): LookupFn {
  const fw = Firewall.open(config.trim());
  // port names by port number, dropped whenever the switch's ports change (the evaluator drops
  // its own per-interface match results when `generation` moves)
  const names: Array<string | null> = [];
  let namesGen = ctx.generation();
  let ifacesGen = 0;
  const ifaces: Interfaces = {
    name: (id: number) => {
      if (id < 0) return null;
      let n = names[id];
      if (n === undefined) { n = ctx.portName(id); names[id] = n; }
      return n;
    },
    get generation() { return ifacesGen; },
  };
  let gen = fw.generation();
  let evaluator: Evaluator = fw.evaluator(ifaces).evaluator;
  let batchMs = Date.now();
  let calls = 0;
  return (u8: Uint8Array, off: number, len: number, srcPort: number): number => {
    // a lookup sees no batch boundary: the ruleset generation is checked every frame (one
    // atomic load), the clock and the switch's port names once per 64 frames
    const g = fw.generation();
    if (g !== gen) { gen = g; evaluator = fw.evaluator(ifaces).evaluator; }
    if ((calls++ & 63) === 0) {
      const sg = ctx.generation();
      if (sg !== namesGen) { namesGen = sg; names.length = 0; ifacesGen++; }
      batchMs = Date.now();
    }
    const dst = ctx.learningBridge(u8, off, len, srcPort);
    const v = evaluator.check(u8, off, len, false, srcPort, dst === BROADCAST ? -1 : dst, batchMs);
    return v === V_PASS ? dst : DROP;
  };
}
