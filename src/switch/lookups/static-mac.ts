/**
 * Example pluggable lookup: a static MAC table. Install with
 *     await setLookup('vale1', new URL('./lookups/static-mac.js', import.meta.url).href,
 *                     '02:00:00:00:00:01=vale1:a 02:00:00:00:00:02=vale1:b default=drop');
 * Config: whitespace-separated `MAC=PORT` pairs (PORT a port name on the switch, or a port
 * number), and optionally `default=drop` (the default) or `default=flood` for unknown unicast.
 * Broadcast and multicast destinations are flooded. Port names are resolved to port numbers
 * when the lookup is created in a process and again whenever a name did not resolve (a port
 * attached later), at most once per millisecond.
 */
import { BROADCAST, DROP, type LookupContext, type LookupFn } from '../lookup.js';
import { fail } from '../../errors.js';

export function createLookup(config: string, ctx: LookupContext): LookupFn {
  const macs: number[] = []; // 48-bit MACs as numbers
  const targets: string[] = [];
  let unknown = DROP;
  for (const item of config.split(/\s+/).filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    if (eq < 0) fail('EINVAL', `static-mac: '${item}' is not MAC=PORT`);
    const key = item.slice(0, eq), value = item.slice(eq + 1);
    if (key === 'default') {
      if (value !== 'drop' && value !== 'flood') fail('EINVAL', `static-mac: default must be drop or flood, not '${value}'`);
      unknown = value === 'flood' ? BROADCAST : DROP;
      continue;
    }
    if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(key)) fail('EINVAL', `static-mac: bad MAC '${key}'`);
    macs.push(parseInt(key.replace(/:/g, ''), 16));
    targets.push(value);
  }
  // open addressing table: 2 * entries, power of two; key = MAC, value = port number (-1 unresolved)
  let size = 16;
  while (size < 2 * macs.length) size *= 2;
  const keys = new Float64Array(size).fill(-1);
  const ports = new Int32Array(size).fill(-1);
  const slotOf = new Int32Array(macs.length);
  for (let i = 0; i < macs.length; i++) {
    let h = (macs[i]! % size);
    while (keys[h] !== -1 && keys[h] !== macs[i]) h = (h + 1) & (size - 1);
    keys[h] = macs[i]!;
    slotOf[i] = h;
  }
  let unresolved = 0;
  let lastResolve = 0;
  const resolve = (): void => {
    lastResolve = Date.now();
    unresolved = 0;
    for (let i = 0; i < macs.length; i++) {
      const t = targets[i]!;
      const p = /^\d+$/.test(t) ? Number(t) : ctx.portNumber(t);
      ports[slotOf[i]!] = p;
      if (p < 0) unresolved++;
    }
  };
  resolve();
  return (u8, off, _len, _src) => {
    if ((u8[off]! & 1) !== 0) return BROADCAST;
    const mac = (u8[off]! * 1099511627776) + (u8[off + 1]! * 4294967296) + ((u8[off + 2]! << 24) >>> 0) + ((u8[off + 3]! << 16) | (u8[off + 4]! << 8) | u8[off + 5]!);
    let h = mac % size;
    for (;;) {
      const k = keys[h]!;
      if (k === mac) {
        const p = ports[h]!;
        if (p >= 0) return p;
        if (unresolved > 0 && Date.now() - lastResolve > 1) { resolve(); if (ports[h]! >= 0) return ports[h]!; }
        return DROP;
      }
      if (k === -1) return unknown;
      h = (h + 1) & (size - 1);
    }
  };
}
