/**
 * QFQ (Quick Fair Queueing; Checconi, Rizzo, Valente), with the semantics of FreeBSD's
 * dn_sched_qfq.c: O(1) per packet, service within a small constant of WF2Q+'s.
 *
 * Classes (flow queues) with the same slot size σ = lmax/weight rounded up to a power of two form
 * a group (at most QFQ_GROUPS). A group keeps its backlogged classes in a bucket list of
 * QFQ_MAX_SLOTS slots of that size, indexed by the class's start time rounded down to the slot,
 * and has its own timestamps: S = the rounded start of its first slot, F = S + 2 slots. Groups are
 * in one of four sets, kept as bitmaps indexed by group: ER (eligible, ready), IR (ineligible,
 * ready), EB (eligible, blocked), IB (ineligible, blocked); eligible means S ≤ V, blocked means a
 * lower-index eligible group finishes earlier. Dequeue serves the front class of the first slot of
 * the lowest group in ER, then moves groups between the sets with mask operations.
 *
 * Timestamps are fixed point with FRAC_BITS fractional bits, as in FreeBSD, held in float64
 * integers below 2^53: when V passes 2^51 every timestamp of the instance is moved down by the
 * same multiple of 2^42 (a multiple of every slot size and of the largest slot-index span), which
 * changes no comparison, rounding or bitmap operation. FreeBSD uses wrapping 64-bit integers.
 */

/** What QFQ keeps per class (FlowQueue has these fields). */
export interface QfqClass {
  /** Start and finish times (fixed point). */
  S: number;
  F: number;
  /** ONE_FP / weight. */
  qfqInvW: number;
  /** The approximated weight ONE_FP / qfqInvW (what wsum counts). */
  qfqW: number;
  /** Group index. */
  qfqGroup: number;
  /** Next class in the same slot. */
  qfqNext: QfqClass | null;
}

export const QFQ_FRAC_BITS = 30;
export const QFQ_ONE_FP = 2 ** QFQ_FRAC_BITS;
/** Largest group index (lmax ≤ 2^QFQ_MTU_SHIFT, weight ≥ 1). */
export const QFQ_MAX_INDEX = 19;
export const QFQ_GROUPS = QFQ_MAX_INDEX + 1;
export const QFQ_MAX_SLOTS = 32;
const QFQ_MTU_SHIFT = 11;
const QFQ_MIN_SLOT_SHIFT = QFQ_FRAC_BITS + QFQ_MTU_SHIFT - QFQ_MAX_INDEX; // 22
export const QFQ_MAX_WEIGHT = 1 << 16;
/** The sum of the weights of an instance's classes may not exceed this (FreeBSD: EINVAL). */
export const QFQ_MAX_WSUM = 2 * QFQ_MAX_WEIGHT;
const ER = 0, IR = 1, EB = 2, IB = 3;
const REBASE_AT = 2 ** 51;
const REBASE_UNIT = 2 ** (QFQ_MIN_SLOT_SHIFT + QFQ_MAX_INDEX + 1); // 2^42
const REBASE_KEEP = 2 ** 50;

const P2: number[] = [];
for (let i = 0; i < 64; i++) P2.push(2 ** i);

function roundDown(x: number, shift: number): number {
  return Math.floor(x / P2[shift]!) * P2[shift]!;
}

/** Index of the lowest set bit of a non-zero 32-bit mask. */
function ffs(mask: number): number {
  return 31 - Math.clz32(mask & -mask);
}

/** The bits of `bitmap` at `from` and above. */
function maskFrom(bitmap: number, from: number): number {
  return bitmap & ~((1 << from) - 1);
}

/** The group of a class: ⌈log2(lmax·invW)⌉ − QFQ_MIN_SLOT_SHIFT, at least 0 (qfq_calc_index). */
export function qfqIndex(invW: number, lmax: number): number {
  const slotSize = lmax * invW;
  const sizeMap = Math.floor(slotSize / P2[QFQ_MIN_SLOT_SHIFT]!);
  if (sizeMap === 0) return 0;
  let index = 31 - Math.clz32(sizeMap) + 1;
  if (slotSize === P2[index + QFQ_MIN_SLOT_SHIFT - 1]) index--;
  return index > QFQ_MAX_INDEX ? QFQ_MAX_INDEX : index;
}

/** QFQ's state of one scheduler instance. Allocated once per instance object, reset on reuse. */
export class QfqSched {
  V = 0;
  wsum = 0;
  iwsum = 0;
  /** ER, IR, EB, IB. */
  private readonly bitmaps = new Int32Array(4);
  private readonly gS = new Float64Array(QFQ_GROUPS);
  private readonly gF = new Float64Array(QFQ_GROUPS);
  private readonly front = new Int32Array(QFQ_GROUPS);
  /** Bit i: slot (front + i) mod QFQ_MAX_SLOTS holds classes. */
  private readonly full = new Uint32Array(QFQ_GROUPS);
  private readonly slots: Array<QfqClass | null> = new Array<QfqClass | null>(QFQ_GROUPS * QFQ_MAX_SLOTS).fill(null);
  /** Every class of the instance, for rebasing (set by the engine). */
  forEachClass: ((f: (c: QfqClass) => void) => void) | null = null;

  reset(): void {
    this.V = 0; this.wsum = 0; this.iwsum = 0;
    this.bitmaps.fill(0); this.gS.fill(0); this.gF.fill(0); this.front.fill(0); this.full.fill(0);
    this.slots.fill(null);
  }

  /** A new class of `weight` (1..QFQ_MAX_WEIGHT) and `lmax` bytes; false when the weight sum would pass QFQ_MAX_WSUM. */
  addClass(c: QfqClass, weight: number, lmax: number): boolean {
    const invW = Math.floor(QFQ_ONE_FP / weight);
    const w = Math.floor(QFQ_ONE_FP / invW);
    if (this.wsum + w > QFQ_MAX_WSUM) return false;
    c.qfqInvW = invW; c.qfqW = w;
    c.qfqGroup = qfqIndex(invW, lmax);
    c.S = 0; c.F = 0; c.qfqNext = null;
    this.wsum += w;
    this.iwsum = Math.floor(QFQ_ONE_FP / this.wsum);
    return true;
  }

  /** A class goes away (it holds no packet). */
  removeClass(c: QfqClass): void {
    if (c.qfqW === 0) return;
    this.wsum -= c.qfqW;
    c.qfqW = 0;
    this.iwsum = this.wsum > 0 ? Math.floor(QFQ_ONE_FP / this.wsum) : 0;
  }

  /** Class `c` was idle and now has a packet of `len` bytes at its head (qfq_enqueue). */
  activate(c: QfqClass, len: number): void {
    const g = c.qfqGroup, shift = g + QFQ_MIN_SLOT_SHIFT;
    this.updateStart(c, shift);
    c.F = c.S + len * c.qfqInvW;
    const roundedS = roundDown(c.S, shift);
    if (this.full[g]! !== 0) {
      if (this.gS[g]! > c.S) {
        // the group's start moves back: make room at the front of its bucket list
        this.slotRotate(g, roundedS, shift);
        // the group was surely ineligible
        this.bitmaps[IR] = this.bitmaps[IR]! & ~(1 << g);
        this.bitmaps[IB] = this.bitmaps[IB]! & ~(1 << g);
        this.setGroupStart(g, roundedS, shift);
      }
    } else {
      if (this.bitmaps[ER] === 0 && roundedS > this.V) this.V = roundedS;
      this.setGroupStart(g, roundedS, shift);
    }
    this.slotInsert(g, c, roundedS, shift);
  }

  private setGroupStart(g: number, roundedS: number, shift: number): void {
    this.gS[g] = roundedS;
    this.gF[g] = roundedS + 2 * P2[shift]!;
    const set = this.calcState(g);
    this.bitmaps[set] = this.bitmaps[set]! | (1 << g);
  }

  /** The class to serve next (the front class of the lowest eligible ready group), or null. */
  next(): QfqClass | null {
    let er = this.bitmaps[ER]!;
    if (er === 0) {
      // FreeBSD never gets here with backlogged groups (V jumps on enqueue and after each
      // dequeue); kept as a guard against a stall
      if ((this.bitmaps[IR]! | this.bitmaps[IB]!) === 0) return null;
      this.updateEligible(this.V);
      er = this.bitmaps[ER]!;
      if (er === 0) return null;
    }
    const g = ffs(er);
    return this.slots[g * QFQ_MAX_SLOTS + this.front[g]!]!;
  }

  /**
   * After next()'s class `c` sent a packet of `len` bytes; `headLen` is the length of its new head
   * packet, or -1 when it is empty (qfq_dequeue after dn_dequeue).
   */
  served(c: QfqClass, len: number, headLen: number): void {
    const g = c.qfqGroup, shift = g + QFQ_MIN_SLOT_SHIFT;
    const oldV = this.V;
    this.V += len * this.iwsum;
    if (this.updateClass(g, c, headLen, shift)) {
      const oldF = this.gF[g]!;
      const first = this.slotScan(g);
      if (first === null) {
        this.bitmaps[ER] = this.bitmaps[ER]! & ~(1 << g);
      } else {
        const roundedS = roundDown(first.S, shift);
        if (this.gS[g] === roundedS) { this.updateEligible(oldV); this.maybeRebase(); return; }
        this.bitmaps[ER] = this.bitmaps[ER]! & ~(1 << g);
        this.setGroupStart(g, roundedS, shift);
      }
      // unblock even when the group has gone away
      this.unblockGroups(g, oldF);
    }
    this.updateEligible(oldV);
    this.maybeRebase();
  }

  /** qfq_update_start: the start time of a class that becomes backlogged. */
  private updateStart(c: QfqClass, shift: number): void {
    const roundedF = roundDown(c.F, shift);
    const limit = roundDown(this.V, shift) + P2[shift]!;
    if (!(c.F > this.V) || roundedF > limit) {
      // stale timestamp
      const mask = maskFrom(this.bitmaps[ER]!, c.qfqGroup);
      if (mask !== 0) {
        const nextF = this.gF[ffs(mask)]!;
        if (roundedF > nextF) {
          c.S = limit > nextF ? nextF : limit;
          return;
        }
      }
      c.S = this.V;
    } else {
      c.S = c.F;
    }
  }

  /** qfq_update_class: true when the group's front slot changed. */
  private updateClass(g: number, c: QfqClass, headLen: number, shift: number): boolean {
    c.S = c.F;
    if (headLen < 0) {
      this.frontSlotRemove(g);
      return true;
    }
    c.F = c.S + headLen * c.qfqInvW;
    const roundedS = roundDown(c.S, shift);
    if (roundedS === this.gS[g]) return false;
    this.frontSlotRemove(g);
    this.slotInsert(g, c, roundedS, shift);
    return true;
  }

  /** ER if S ≤ V else IR; EB/IB when a lower eligible group (index above g's) finishes earlier. */
  private calcState(g: number): number {
    let state = this.gS[g]! > this.V ? 1 : 0;
    const mask = maskFrom(this.bitmaps[ER]!, g);
    if (mask !== 0 && this.gF[g]! > this.gF[ffs(mask)]!) state |= 2;
    return state;
  }

  private moveGroups(mask: number, src: number, dst: number): void {
    this.bitmaps[dst] = this.bitmaps[dst]! | (this.bitmaps[src]! & mask);
    this.bitmaps[src] = this.bitmaps[src]! & ~mask;
  }

  private unblockGroups(g: number, oldF: number): void {
    const mask = maskFrom(this.bitmaps[ER]!, g + 1);
    if (mask !== 0 && !(this.gF[ffs(mask)]! > oldF)) return;
    const below = (1 << g) - 1;
    this.moveGroups(below, EB, ER);
    this.moveGroups(below, IB, IR);
  }

  /** qfq_make_eligible: groups whose slot boundary V crossed become eligible. */
  private makeEligible(oldV: number): void {
    const unit = P2[QFQ_MIN_SLOT_SHIFT]!;
    let vslot = Math.floor(this.V / unit), old = Math.floor(oldV / unit);
    if (vslot === old) return;
    // 2^(fls(vslot ^ old) + 1) - 1: every group up to the highest bit in which they differ
    let k = 0;
    while (vslot !== old && k < 32) { vslot = Math.floor(vslot / 2); old = Math.floor(old / 2); k++; }
    const mask = k >= 31 ? -1 : (1 << k) - 1;
    this.moveGroups(mask, IR, ER);
    this.moveGroups(mask, IB, EB);
  }

  private updateEligible(oldV: number): void {
    const ineligible = this.bitmaps[IR]! | this.bitmaps[IB]!;
    if (ineligible === 0) return;
    if (this.bitmaps[ER] === 0) {
      const s = this.gS[ffs(ineligible)]!;
      if (s > this.V) this.V = s;
    }
    this.makeEligible(oldV);
  }

  private slotInsert(g: number, c: QfqClass, roundedS: number, shift: number): void {
    let slot = (roundedS - this.gS[g]!) / P2[shift]!;
    // QFQ's bounds keep slot < QFQ_MAX_SLOTS; clamped so that a broken invariant cannot corrupt the list
    if (slot > QFQ_MAX_SLOTS - 1) slot = QFQ_MAX_SLOTS - 1;
    const i = (this.front[g]! + slot) % QFQ_MAX_SLOTS;
    const at = g * QFQ_MAX_SLOTS + i;
    c.qfqNext = this.slots[at]!;
    this.slots[at] = c;
    this.full[g] = (this.full[g]! | (1 << slot)) >>> 0;
  }

  private frontSlotRemove(g: number): void {
    const at = g * QFQ_MAX_SLOTS + this.front[g]!;
    const c = this.slots[at]!;
    this.slots[at] = c.qfqNext;
    c.qfqNext = null;
    if (this.slots[at] === null) this.full[g] = (this.full[g]! & ~1) >>> 0;
  }

  /** The first non-empty slot's first class, moving the front there; null when the group is empty. */
  private slotScan(g: number): QfqClass | null {
    const full = this.full[g]!;
    if (full === 0) return null;
    const i = ffs(full);
    if (i > 0) {
      this.front[g] = (this.front[g]! + i) % QFQ_MAX_SLOTS;
      this.full[g] = full >>> i;
    }
    return this.slots[g * QFQ_MAX_SLOTS + this.front[g]!]!;
  }

  private slotRotate(g: number, roundedS: number, shift: number): void {
    const i = (this.gS[g]! - roundedS) / P2[shift]!;
    this.full[g] = i >= 32 ? 0 : (this.full[g]! << i) >>> 0;
    this.front[g] = (((this.front[g]! - i) % QFQ_MAX_SLOTS) + QFQ_MAX_SLOTS) % QFQ_MAX_SLOTS;
  }

  /** Keeps the timestamps below 2^53 (see the file comment). */
  private maybeRebase(): void {
    if (this.V < REBASE_AT) return;
    const d = Math.floor((this.V - REBASE_KEEP) / REBASE_UNIT) * REBASE_UNIT;
    this.V -= d;
    for (let g = 0; g < QFQ_GROUPS; g++) { this.gS[g] = this.gS[g]! - d; this.gF[g] = this.gF[g]! - d; }
    this.forEachClass?.((c) => { c.S -= d; c.F -= d; });
  }
}
