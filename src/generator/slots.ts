/**
 * The per-slot work of pkt-gen's tx and rx when the frames do not change from one packet to the
 * next (no -z/-Z, no ranges, no sequence number): as netmap's pkt-gen, the sender writes each
 * frame into a buffer once and afterwards only checks that the slot still holds it (its
 * len|flags word unchanged), and the receiver only adds up slot lengths. Both walk the slot words
 * directly, a ring segment at a time (no wrap test per slot) and four slots per iteration: in V8 a loop's own overhead costs more than a slot's load
 * or store, and at pipe speed (over 100 Mpps) these loops are most of pkt-gen's time.
 *
 * Slot i of a ring is the SLOT_WORDS u32 words from `slotWord + SLOT_WORDS * i` (rings/slot.ts):
 * buf_idx, len | flags << 16, ptr (two words). These loops index the words with slot.ts's named
 * offsets instead of calling its accessors: the sender tests and sets len and flags as one 32-bit
 * word (the accessors would make it two 16-bit ones), and the receiver strides over the len
 * halves; the accessors were measured not to inline in VALE's loops of the same shape
 * (switch/forward.ts), and these are pkt-gen's hottest.
 */
import { SLOT_WORDS, SLOT_WORD_BUF_IDX, SLOT_WORD_LEN_FLAGS, SLOT_LEN_HALF } from '../rings/slot.js';

/** Offsets of the words of the 2nd, 3rd and 4th slot of an unrolled group, from the 1st. */
const S1 = SLOT_WORDS, S2 = 2 * SLOT_WORDS, S3 = 3 * SLOT_WORDS;
const BUF = SLOT_WORD_BUF_IDX, LF = SLOT_WORD_LEN_FLAGS;
/** The same in u16 units, for the len halves. */
const H1 = 2 * SLOT_WORDS, H2 = 4 * SLOT_WORDS, H3 = 6 * SLOT_WORDS;

/**
 * Makes `k` slots from `from` (wrapping at `numSlots`) carry the template frame, with length
 * `size` and no flags; returns the slot after the last one. A slot whose buffer index differs
 * from `filled[slot]` (first use, or a buffer that changed hands) gets the template copied in
 * (u8[tplAt, tplAt + size)) and is remembered. Buffer indices out of range are written through
 * buffer 0 (the port's txsync turns such a slot into an empty one).
 *
 * `firstLap`: every slot's buffer index is looked at (the first time round the ring: its slots
 * may hold buffers and lengths an earlier holder left). Afterwards, as netmap's pkt-gen, a slot
 * whose len|flags word is still exactly `size` holds the buffer this loop filled: a buffer
 * that changed hands since comes with NS_BUF_CHANGED (a pipe's receiver that swapped it, a
 * zero-copy monitor) or another length (a sync that repaired the slot). So the common case reads
 * one word per slot and writes nothing, four slots per test.
 */
export function fillConstant(
  u8: Uint8Array, u32: Uint32Array, slotWord: number, numSlots: number, from: number, k: number,
  filled: Int32Array, bufBase: number, bufSize: number, numBufs: number, tplAt: number, size: number,
  firstLap: boolean,
): number {
  let i = from;
  let left = k;
  while (left > 0) {
    const seg = numSlots - i < left ? numSlots - i : left;
    const end = i + seg, end4 = end - 3;
    let w = slotWord + SLOT_WORDS * i;
    if (firstLap) {
      for (; i < end; i++, w += SLOT_WORDS) fillSlot(u8, u32, w, i, filled, bufBase, bufSize, numBufs, tplAt, size);
    } else {
      for (; i < end4; i += 4, w += 4 * SLOT_WORDS) {
        if (((u32[w + LF]! ^ size) | (u32[w + S1 + LF]! ^ size) | (u32[w + S2 + LF]! ^ size) | (u32[w + S3 + LF]! ^ size)) === 0) continue;
        for (let j = 0; j < 4; j++) fillSlot(u8, u32, w + SLOT_WORDS * j, i + j, filled, bufBase, bufSize, numBufs, tplAt, size);
      }
      for (; i < end; i++, w += SLOT_WORDS) {
        if (u32[w + LF] !== size) fillSlot(u8, u32, w, i, filled, bufBase, bufSize, numBufs, tplAt, size);
      }
    }
    left -= seg;
    if (i === numSlots) i = 0;
  }
  return i;
}

function fillSlot(
  u8: Uint8Array, u32: Uint32Array, w: number, i: number, filled: Int32Array,
  bufBase: number, bufSize: number, numBufs: number, tplAt: number, size: number,
): void {
  let idx = u32[w + BUF]!;
  if (filled[i] !== idx) {
    filled[i] = idx;
    if (idx >= numBufs) idx = 0;
    const off = bufBase + idx * bufSize;
    u8.copyWithin(off, tplAt, tplAt + size);
  }
  u32[w + LF] = size;
}

/** Sum of the lengths of `k` slots from `from` (wrapping at `numSlots`). */
export function sumLengths(u16: Uint16Array, slotWord: number, numSlots: number, from: number, k: number): number {
  let i = from, left = k, sum = 0;
  while (left > 0) {
    const seg = numSlots - i < left ? numSlots - i : left;
    // p walks the len halves: one slot is 2 * SLOT_WORDS u16s.
    let p = 2 * (slotWord + SLOT_WORDS * i) + SLOT_LEN_HALF;
    const end = p + H1 * seg, end4 = end - H3;
    for (; p < end4; p += 4 * H1) sum += u16[p]! + u16[p + H1]! + u16[p + H2]! + u16[p + H3]!;
    for (; p < end; p += H1) sum += u16[p]!;
    left -= seg;
    i += seg;
    if (i === numSlots) i = 0;
  }
  return sum;
}

/** The slot `k` after `from` in a ring of `numSlots`. */
export function slotAfter(from: number, k: number, numSlots: number): number {
  const n = from + k;
  return n >= numSlots ? n - numSlots : n;
}
