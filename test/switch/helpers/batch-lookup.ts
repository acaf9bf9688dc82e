/**
 * A batch lookup for the switch tests (lookup.ts createBatchLookup). Config:
 *   `drop-id N`   keeps the learning bridge's answers, drops frames whose byte 14 is N
 *   `to PORT`     sends every frame to port number PORT (a router: the bridge's answers ignored)
 *   `throw`       throws (the switch drops the batch)
 *   `bad`         answers 300, which is no port (the switch drops the frames)
 * Every call records the batch it saw in `seen` (sizes, source port, the bridge's answers).
 */
import { BROADCAST, DROP, type BatchLookupFn, type LookupBatch, type LookupContext, type LookupFn } from '../../../src/switch/lookup.js';

export const seen: Array<{ count: number; srcPort: number; dst: number[] }> = [];

export function createBatchLookup(config: string, _ctx: LookupContext): BatchLookupFn {
  const [what, arg] = config.split(' ');
  return (b: LookupBatch): void => {
    seen.push({ count: b.count, srcPort: b.srcPort, dst: Array.from(b.dst.subarray(0, b.count)) });
    if (what === 'throw') throw new Error('batch lookup failed on purpose');
    for (let i = 0; i < b.count; i++) {
      if (what === 'drop-id') { if (b.u8[b.off[i]! + 14] === Number(arg)) b.dst[i] = DROP; }
      else if (what === 'to') b.dst[i] = Number(arg);
      else if (what === 'bad') b.dst[i] = 300;
    }
  };
}

/** Also exported, never used: the switch prefers the batch form. */
export function createLookup(_config: string, _ctx: LookupContext): LookupFn {
  return () => BROADCAST;
}
