/**
 * The firewall as a VALE switch's lookup function (netmap's pluggable lookup was made "to attach
 * the firewall directly on the netmap port"). `netmap ipfw attach valeX` creates the firewall
 * store named valeX and plugs this module in with the store's name as its configuration.
 *
 * Forwarding runs in every sender's process, so every sender imports this module and opens the
 * store: all of them evaluate the same published ruleset (each rebuilds its evaluator when the
 * store's generation moves, checked at the start of every forwarding batch), add to their own counter stripe (the counters add
 * up exactly across processes), and share one dynamic-state table.
 *
 * Each frame is first given a destination by netmap's learning bridge, then checked once as a
 * forwarded packet on its way out: not `in`, `recv` = the source port's name, `xmit` = the
 * destination port's name (none for a flood: `xmit NAME` does not match, `xmit any` does not
 * either). A passed frame goes where the bridge sends it; anything else is dropped and counted as
 * the source port's txDrops in `vale-ctl -s`. A lookup cannot send packets, so reject/unreach/
 * reset drop without a reply here, and pipe/queue (dummynet needs a daemon to hold packets) drop.
 */
import { BROADCAST, DROP, type LookupBatch, type LookupContext, type BatchLookupFn } from '../switch/lookup.js';
import { Firewall } from './firewall.js';
import { type Evaluator, type Interfaces } from './engine.js';

export function createBatchLookup(config: string, ctx: LookupContext): BatchLookupFn {
  const fw = Firewall.open(config.trim());
  // port names by port number, dropped whenever the switch's ports change (the evaluator drops
  // its own per-interface match results when `generation` moves)
  const names: Array<string | null> = [];
  let namesGen = ctx.generation();
  // a plain field, not a getter: the evaluator reads it for every packet
  const ifaces: Interfaces & { generation: number } = {
    name: (id: number) => {
      if (id < 0) return null;
      let n = names[id];
      if (n === undefined) { n = ctx.portName(id); names[id] = n; }
      return n;
    },
    generation: 0,
  };
  let gen = fw.generation();
  let evaluator: Evaluator = fw.evaluator(ifaces).evaluator;
  return (b: LookupBatch): void => {
    // once per batch, as kipfw does: the ruleset version (one atomic load; a new one is swapped
    // in here, so a batch is judged by one version), the switch's port names, the clock
    const g = fw.generation();
    if (g !== gen) { gen = g; evaluator = fw.evaluator(ifaces).evaluator; }
    const sg = ctx.generation();
    if (sg !== namesGen) { namesGen = sg; names.length = 0; ifaces.generation++; }
    // a DROP from the bridge (shorter than an Ethernet header) is skipped: the switch drops it
    // before any rule; a flood has no xmit interface
    evaluator.filterBatch(b.u8, b.off, b.len, b.dst, b.count, b.srcPort, Date.now(), BROADCAST, DROP);
  };
}
