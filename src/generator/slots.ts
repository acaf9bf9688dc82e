/**
 * The per-slot work of pkt-gen's tx and rx when the frames do not change from one packet to the
 * next (no -z/-Z, no ranges, no sequence number): as netmap's pkt-gen, the sender writes each
 * frame into a buffer once and afterwards only checks that the slot still holds it (its
 * len|flags word unchanged), and the receiver only adds up slot lengths. Both walk the slot words
 * directly, a ring segment at a time (no wrap test per slot) and eight slots a step, in small
 * loops with no call inside (firstDiffering, sumStrided): in V8 a loop's own overhead costs
 * more than a slot's load, and at pipe speed (over 100 Mpps) these loops are most of pkt-gen's
 * time. Measured with bench/pktgen-callgrind.sh: the sender's check 9 instructions a slot (20
 * before, when the slow path was called from inside the loop and the ring's words were read
 * through an imported constant and a Uint32Array), the receiver's sum 8 (about 12).
 *
 * Slot i of a ring is the SLOT_WORDS u32 words from `slotWord + SLOT_WORDS * i` (rings/slot.ts):
 * buf_idx, len | flags << 16, ptr (two words). These loops index the words with slot.ts's named
 * offsets instead of calling its accessors: the sender tests and sets len and flags as one 32-bit
 * word (the accessors would make it two 16-bit ones), and the receiver strides over the len
 * halves; the accessors were measured not to inline in VALE's loops of the same shape
 * (switch/forward.ts), and these are pkt-gen's hottest.
 */
import { SLOT_WORDS, SLOT_WORD_BUF_IDX, SLOT_WORD_LEN_FLAGS, SLOT_LEN_HALF } from '../rings/slot.js';

// Module constants (V8 folds these into the code; an imported binding is loaded and checked
// for the temporal dead zone at every use, in the middle of the loops).
/** Words per slot, and the words of a slot holding buf_idx and len | flags << 16. */
const SW = SLOT_WORDS, BUF = SLOT_WORD_BUF_IDX, LF = SLOT_WORD_LEN_FLAGS;
/** u16s per slot, and the u16 of a slot holding len. */
const SH = 2 * SLOT_WORDS, LEN = SLOT_LEN_HALF;
if (SW !== 4) throw new Error('slots.ts: a slot of 4 words is assumed (slot index = word offset >> 2)');

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
 * one word per slot and writes nothing (`firstDiffering`); only the slots it stops at are looked
 * at further, outside its loop.
 */
export function fillConstant(
  u8: Uint8Array, i32: Int32Array, slotWord: number, numSlots: number, from: number, k: number,
  filled: Int32Array, bufBase: number, bufSize: number, numBufs: number, tplAt: number, size: number,
  firstLap: boolean,
): number {
  let i = from;
  let left = k;
  while (left > 0) {
    const seg = numSlots - i < left ? numSlots - i : left;
    const w0 = slotWord + SW * i, end = w0 + SW * seg;
    if (firstLap) {
      for (let w = w0, j = i; w < end; w += SW, j++) fillSlot(u8, i32, w, j, filled, bufBase, bufSize, numBufs, tplAt, size);
    } else {
      for (let w = firstDiffering(i32, w0 + LF, end + LF, size) - LF; w < end; w = firstDiffering(i32, w + SW + LF, end + LF, size) - LF) {
        fillSlot(u8, i32, w, i + ((w - w0) >> 2), filled, bufBase, bufSize, numBufs, tplAt, size);
      }
    }
    left -= seg;
    i += seg;
    if (i === numSlots) i = 0;
  }
  return i;
}

/**
 * The first of the words `w`, `w + SW`, ... before `end` that is not `value`, or `end`: the
 * sender's per-slot test, eight slots a step. One load, one XOR and one OR a slot: an Int32Array
 * (a Uint32Array's values need a check that they fit in 31 bits before V8 computes with them) and
 * no call inside the loop (after a call V8 reloads the array's base and length and spills the
 * loop's variables).
 */
function firstDiffering(i32: Int32Array, from: number, to: number, value: number): number {
  // (the masks change nothing, word indices are below 2^29: they tell V8 that w + 7 * SW cannot
  // overflow, which saves an overflow test a load)
  let w = from & 0x3fffffff;
  const end = to & 0x3fffffff, end8 = end - 7 * SW;
  for (; w < end8; w += 8 * SW) {
    if (((i32[w]! ^ value) | (i32[w + SW]! ^ value) | (i32[w + 2 * SW]! ^ value) | (i32[w + 3 * SW]! ^ value) |
         (i32[w + 4 * SW]! ^ value) | (i32[w + 5 * SW]! ^ value) | (i32[w + 6 * SW]! ^ value) | (i32[w + 7 * SW]! ^ value)) !== 0) break;
  }
  for (; w < end; w += SW) if (i32[w] !== value) return w;
  return end;
}

function fillSlot(
  u8: Uint8Array, i32: Int32Array, w: number, i: number, filled: Int32Array,
  bufBase: number, bufSize: number, numBufs: number, tplAt: number, size: number,
): void {
  const idx = i32[w + BUF]!;
  if (filled[i] !== idx) {
    filled[i] = idx;
    // (as unsigned: an index of 2^31 or more is out of range too)
    const off = bufBase + ((idx >>> 0) < numBufs ? idx : 0) * bufSize;
    u8.copyWithin(off, tplAt, tplAt + size);
  }
  i32[w + LF] = size;
}

/**
 * Sum of the lengths of `k` slots from `from` (wrapping at `numSlots`): the receiver's per-slot
 * work, eight slots a step (u16 loads, which V8 adds without a range check).
 */
export function sumLengths(u16: Uint16Array, slotWord: number, numSlots: number, from: number, k: number): number {
  let i = from, left = k, sum = 0;
  while (left > 0) {
    const seg = numSlots - i < left ? numSlots - i : left;
    const p = 2 * (slotWord + SW * i) + LEN;
    sum += sumStrided(u16, p, p + SH * seg);
    left -= seg;
    i += seg;
    if (i === numSlots) i = 0;
  }
  return sum;
}

/** u16[p] + u16[p + SH] + ... before `end`. */
function sumStrided(u16: Uint16Array, from: number, to: number): number {
  let sum = 0;
  let p = from & 0x3fffffff;
  const end = to & 0x3fffffff, end8 = end - 7 * SH;
  for (; p < end8; p += 8 * SH) {
    sum += u16[p]! + u16[p + SH]! + u16[p + 2 * SH]! + u16[p + 3 * SH]! + u16[p + 4 * SH]! + u16[p + 5 * SH]! + u16[p + 6 * SH]! + u16[p + 7 * SH]!;
  }
  for (; p < end; p += SH) sum += u16[p]!;
  return sum;
}

/** The slot `k` after `from` in a ring of `numSlots`. */
export function slotAfter(from: number, k: number, numSlots: number): number {
  const n = from + k;
  return n >= numSlots ? n - numSlots : n;
}
