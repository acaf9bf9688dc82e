/**
 * The learning bridge's table in a switch entry of the registry (switch policy, kept out of the
 * registry, which only says which switches exist and which ports they have). Layout: see the
 * comment on the table in lookup.ts; the forwarding loop learns and looks up inline (forward.ts).
 * Control paths only, under the registry lock.
 */
import type { Registry } from '../memory/registry.js';
import * as L from '../memory/layout.js';

/** Empties the table and resets every port's last-source cache to all-ones (netmap's start). */
export function resetLearningTable(reg: Registry, switchIndex: number): void {
  reg.assertLocked();
  const base = reg.base + reg.switchEntry(switchIndex);
  const u8 = reg.sp.u8;
  u8.fill(0, base + L.SW_HASH, base + L.SW_HASH + 8 * L.SW_HASH_ENTRIES);
  u8.fill(0xff, base + L.SW_LAST_SRC, base + L.SW_LAST_SRC + 8 * L.MAX_SWITCH_PORTS);
}

/** A new occupant of port number `switchPort`: forget the last source learnt from the previous one. */
export function forgetLastSource(reg: Registry, switchIndex: number, switchPort: number): void {
  reg.assertLocked();
  const cache = reg.base + reg.switchEntry(switchIndex) + L.SW_LAST_SRC + 8 * switchPort;
  reg.sp.u8.fill(0xff, cache, cache + 8);
}

/** A port leaves the switch: drop the addresses learnt on it. */
export function forgetPortEntries(reg: Registry, switchIndex: number, switchPort: number): void {
  reg.assertLocked();
  const u32 = reg.sp.u32;
  const table = reg.word(reg.switchEntry(switchIndex) + L.SW_HASH);
  for (let entry = 0; entry < L.SW_HASH_ENTRIES; entry++) {
    // word 0 of an entry: (port + 1) | hi << 16
    if ((u32[table + 2 * entry]! & 0xffff) === switchPort + 1) {
      u32[table + 2 * entry] = 0;
      u32[table + 2 * entry + 1] = 0;
    }
  }
}
