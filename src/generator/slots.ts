/**
 * The per-slot work of pkt-gen's tx and rx when the frames do not change from one packet to the
 * next (no -z/-Z, no ranges, no sequence number): as netmap's pkt-gen, the sender writes each
 * frame into a buffer once and afterwards only sets slot lengths, and the receiver only adds up
 * slot lengths. Both walk the slot words directly, a ring segment at a time (no wrap test per
 * slot) and four slots per iteration: in V8 a loop's own overhead costs more than a slot's load
 * or store, and at pipe speed (over 100 Mpps) these loops are most of pkt-gen's time.
 *
 * Slot i of a ring is the four u32 words from `slotWord + 4 * i`: buf_idx, len | flags << 16,
 * ptr (two words).
 */

/**
 * Makes `k` slots from `from` (wrapping at `numSlots`) carry the template frame: a slot whose
 * buffer index differs from `filled[slot]` (first use, or a buffer that changed hands) gets the
 * template copied in (u8[tplAt, tplAt + size)) and is remembered; every slot gets length `size`
 * and no flags. Returns the slot after the last one. Buffer indices out of range are written
 * through buffer 0 (the port's txsync turns such a slot into an empty one).
 */
export function fillConstant(
  u8: Uint8Array, u32: Uint32Array, slotWord: number, numSlots: number, from: number, k: number,
  filled: Int32Array, bufBase: number, bufSize: number, numBufs: number, tplAt: number, size: number,
): number {
  let i = from;
  let left = k;
  while (left > 0) {
    const seg = numSlots - i < left ? numSlots - i : left;
    const end = i + seg, end4 = end - 3;
    let w = slotWord + 4 * i;
    // Common case: the four slots hold the buffers filled last time round (one test for four).
    for (; i < end4; i += 4, w += 16) {
      if (((u32[w]! ^ filled[i]!) | (u32[w + 4]! ^ filled[i + 1]!) | (u32[w + 8]! ^ filled[i + 2]!) | (u32[w + 12]! ^ filled[i + 3]!)) === 0) {
        u32[w + 1] = size; u32[w + 5] = size; u32[w + 9] = size; u32[w + 13] = size;
        continue;
      }
      for (let j = 0; j < 4; j++) fillSlot(u8, u32, w + 4 * j, i + j, filled, bufBase, bufSize, numBufs, tplAt, size);
    }
    for (; i < end; i++, w += 4) {
      if (u32[w] === filled[i]) u32[w + 1] = size;
      else fillSlot(u8, u32, w, i, filled, bufBase, bufSize, numBufs, tplAt, size);
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
  let idx = u32[w]!;
  if (filled[i] !== idx) {
    filled[i] = idx;
    if (idx >= numBufs) idx = 0;
    const off = bufBase + idx * bufSize;
    u8.copyWithin(off, tplAt, tplAt + size);
  }
  u32[w + 1] = size;
}

/** Sum of the lengths of `k` slots from `from` (wrapping at `numSlots`). */
export function sumLengths(u16: Uint16Array, slotWord: number, numSlots: number, from: number, k: number): number {
  let i = from, left = k, sum = 0;
  while (left > 0) {
    const seg = numSlots - i < left ? numSlots - i : left;
    let p = (slotWord + 4 * i) * 2 + 2;
    const end = p + 8 * seg, end4 = end - 24;
    for (; p < end4; p += 32) sum += u16[p]! + u16[p + 8]! + u16[p + 16]! + u16[p + 24]!;
    for (; p < end; p += 8) sum += u16[p]!;
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
