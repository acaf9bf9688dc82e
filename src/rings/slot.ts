/**
 * A netmap_slot seen as four 32-bit words, for loops that walk many slots by word index instead
 * of through a Ring (Ring.slotWord + SLOT_WORDS * i is slot i): buf_idx, len | flags << 16, and
 * ptr as two words. The accessors name the 16-bit halves so no caller does u16[2 * word + 2]
 * arithmetic (VALE's per-slot loops index with the named halves SLOT_LEN_HALF/SLOT_FLAGS_HALF
 * instead: see there).
 */
import * as L from '../memory/layout.js';

/** 32-bit words per slot. */
export const SLOT_WORDS = L.SLOT_SIZE >>> 2;
/** Word of a slot holding buf_idx. */
export const SLOT_WORD_BUF_IDX = L.SLOT_BUF_IDX >>> 2;
/** Word of a slot holding len (low half) and flags (high half). */
export const SLOT_WORD_LEN_FLAGS = L.SLOT_LEN >>> 2;
/** Words of a slot holding ptr (low, high). */
export const SLOT_WORD_PTR = L.SLOT_PTR >>> 2;

/**
 * u16 index of len (and flags), counted from the slot's first u16: `u16[2 * slotWord +
 * SLOT_LEN_HALF]`. For VALE's per-slot forwarding loops (switch/forward.ts), where V8 did not
 * inline the accessors below: with them, bench/vale.js 1core-60B fell from 15-21 to 12-15 Mpps
 * (three runs each, back to back, on a loaded 2-core machine).
 */
export const SLOT_LEN_HALF = L.SLOT_LEN >>> 1;
export const SLOT_FLAGS_HALF = L.SLOT_FLAGS >>> 1;
const LEN_HALF = SLOT_LEN_HALF;
const FLAGS_HALF = SLOT_FLAGS_HALF;

export function slotLenAtWord(u16: Uint16Array, slotWord: number): number {
  return u16[2 * slotWord + LEN_HALF]!;
}

export function setSlotLenAtWord(u16: Uint16Array, slotWord: number, len: number): void {
  u16[2 * slotWord + LEN_HALF] = len;
}

export function slotFlagsAtWord(u16: Uint16Array, slotWord: number): number {
  return u16[2 * slotWord + FLAGS_HALF]!;
}

export function setSlotFlagsAtWord(u16: Uint16Array, slotWord: number, flags: number): void {
  u16[2 * slotWord + FLAGS_HALF] = flags;
}

/** Frames up to this length are copied with copyBlocks' word loop, longer ones with copyWithin. */
export const SMALL_COPY = 512;

/**
 * Copies `len` bytes rounded up to 64 (netmap's pkt_copy) as 8-byte words, from word index `s`
 * to word index `t` of a Float64Array over the space. Netmap buffers are 64-byte aligned and a
 * multiple of 64 bytes long, so the rounding stays inside both. Float64Array element copies keep
 * every bit pattern (NaNs included) on V8: the test suite checks frames made of NaN patterns.
 * (The VALE forwarder and the monitors' copies use it.)
 */
export function copyBlocks(f64: Float64Array, s: number, t: number, len: number): void {
  const end = s + (((len + 63) >>> 6) << 3);
  for (; s < end; s += 8, t += 8) {
    f64[t] = f64[s]!; f64[t + 1] = f64[s + 1]!; f64[t + 2] = f64[s + 2]!; f64[t + 3] = f64[s + 3]!;
    f64[t + 4] = f64[s + 4]!; f64[t + 5] = f64[s + 5]!; f64[t + 6] = f64[s + 6]!; f64[t + 7] = f64[s + 7]!;
  }
}
