/** The per-slot loops of pkt-gen's constant-frame tx and its rx (slots.ts), on plain memory. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fillConstant, slotAfter, sumLengths } from '../../src/generator/slots.js';
import { rng } from '../helpers/prng.js';
import * as L from '../../src/memory/layout.js';

const NUM_SLOTS = 13; // odd, so that the four-at-a-time loop leaves remainders
const BUF_SIZE = 64, NUM_BUFS = 40, SIZE = 60;

/** A ring of NUM_SLOTS slots at word 16 and NUM_BUFS buffers after it, in one buffer. */
function memory(): { u8: Uint8Array; u16: Uint16Array; u32: Uint32Array; i32: Int32Array; slotWord: number; bufBase: number; tplAt: number } {
  const ab = new ArrayBuffer(4096 + NUM_BUFS * BUF_SIZE + BUF_SIZE);
  const slotWord = 16, bufBase = 4096, tplAt = 4096 + NUM_BUFS * BUF_SIZE;
  const u8 = new Uint8Array(ab);
  for (let i = 0; i < SIZE; i++) u8[tplAt + i] = 0xa0 + (i % 16);
  return { u8, u16: new Uint16Array(ab), u32: new Uint32Array(ab), i32: new Int32Array(ab), slotWord, bufBase, tplAt };
}

function frameIn(u8: Uint8Array, at: number, tplAt: number): boolean {
  for (let i = 0; i < SIZE; i++) if (u8[at + i] !== u8[tplAt + i]) return false;
  return true;
}

test('fillConstant: every slot gets the frame once, its length and no flags; a changed buffer is filled again; wrap-around', () => {
  const m = memory();
  const { u8, u32, i32, slotWord, bufBase, tplAt } = m;
  // what an earlier holder left: slot 11 already has len SIZE and no flags, its buffer another frame
  for (let i = 0; i < NUM_SLOTS; i++) { u32[slotWord + 4 * i] = 2 + i; u32[slotWord + 4 * i + 1] = i === 11 ? SIZE : 0xffff0000; }
  const filled = new Int32Array(NUM_SLOTS).fill(-1);
  // first lap, 6 slots from slot 10: 10, 11, 12, 0, 1, 2
  const next = fillConstant(u8, i32, slotWord, NUM_SLOTS, 10, 6, filled, bufBase, BUF_SIZE, NUM_BUFS, tplAt, SIZE, true);
  assert.equal(next, 3);
  for (let i = 0; i < NUM_SLOTS; i++) {
    const inRange = i >= 10 || i < 3;
    assert.equal(frameIn(u8, bufBase + (2 + i) * BUF_SIZE, tplAt), inRange, `slot ${i}`);
    assert.equal(u32[slotWord + 4 * i + 1], inRange ? SIZE : 0xffff0000, `slot ${i} len|flags`);
  }
  // the rest of the first lap, then the whole ring again: filled buffers are not rewritten
  fillConstant(u8, i32, slotWord, NUM_SLOTS, 3, 7, filled, bufBase, BUF_SIZE, NUM_BUFS, tplAt, SIZE, true);
  for (let i = 0; i < NUM_SLOTS; i++) assert.ok(frameIn(u8, bufBase + (2 + i) * BUF_SIZE, tplAt), `slot ${i} after the first lap`);
  u8[bufBase + 5 * BUF_SIZE] = 0; // slot 3's buffer, scribbled on
  // slot 4 now holds another buffer, as a pipe's receiver that swapped it hands it back (flagged)
  u32[slotWord + 4 * 4] = 30;
  u32[slotWord + 4 * 4 + 1] = SIZE | (L.NS_BUF_CHANGED << 16);
  // slot 7: a sync repaired a bad slot (buffer 0, length 0): written through buffer 0, not beyond
  u32[slotWord + 4 * 7] = 0;
  u32[slotWord + 4 * 7 + 1] = 0;
  // slot 9: a length the loop did not write sends it to the careful path, same buffer: no copy
  u32[slotWord + 4 * 9 + 1] = 61;
  u8[bufBase + 11 * BUF_SIZE] = 1;
  const after = fillConstant(u8, i32, slotWord, NUM_SLOTS, 3, NUM_SLOTS, filled, bufBase, BUF_SIZE, NUM_BUFS, tplAt, SIZE, false);
  assert.equal(after, 3);
  assert.equal(u8[bufBase + 5 * BUF_SIZE], 0, 'a buffer filled before is not copied again (netmap pkt-gen fills once)');
  assert.equal(u8[bufBase + 11 * BUF_SIZE], 1, 'nor one whose slot only had another length');
  assert.ok(frameIn(u8, bufBase + 30 * BUF_SIZE, tplAt), 'the swapped-in buffer got the frame');
  assert.ok(frameIn(u8, bufBase, tplAt), 'the repaired slot is written through buffer 0');
  for (let i = 0; i < NUM_SLOTS; i++) assert.equal(u32[slotWord + 4 * i + 1], SIZE, `slot ${i}: len ${SIZE}, no flags`);
  assert.equal(filled[4], 30);
  // out-of-range index on the first lap: through buffer 0 as well
  const m2 = memory();
  m2.u32[m2.slotWord] = NUM_BUFS + 5;
  fillConstant(m2.u8, m2.i32, m2.slotWord, NUM_SLOTS, 0, 1, new Int32Array(NUM_SLOTS).fill(-1), m2.bufBase, BUF_SIZE, NUM_BUFS, m2.tplAt, SIZE, true);
  assert.ok(frameIn(m2.u8, m2.bufBase, m2.tplAt), 'an out-of-range index goes to buffer 0');
  // one of 2^31 or more (negative as a 32-bit signed word) too, on a later lap
  const m3 = memory();
  const filled3 = new Int32Array(NUM_SLOTS).fill(-1);
  for (let i = 0; i < NUM_SLOTS; i++) m3.u32[m3.slotWord + 4 * i] = 2 + i;
  fillConstant(m3.u8, m3.i32, m3.slotWord, NUM_SLOTS, 0, NUM_SLOTS, filled3, m3.bufBase, BUF_SIZE, NUM_BUFS, m3.tplAt, SIZE, true);
  m3.u32[m3.slotWord + 4 * 5] = 0x80000003;
  m3.u32[m3.slotWord + 4 * 5 + 1] = SIZE | (L.NS_BUF_CHANGED << 16);
  fillConstant(m3.u8, m3.i32, m3.slotWord, NUM_SLOTS, 0, NUM_SLOTS, filled3, m3.bufBase, BUF_SIZE, NUM_BUFS, m3.tplAt, SIZE, false);
  assert.ok(frameIn(m3.u8, m3.bufBase, m3.tplAt), 'index 0x80000003 goes to buffer 0');
  assert.equal(m3.u32[m3.slotWord + 4 * 5 + 1], SIZE);
});

test('sumLengths and slotAfter agree with a slot-by-slot walk, wrapping anywhere', () => {
  const m = memory();
  const { u16, slotWord } = m;
  const next = rng(18);
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < NUM_SLOTS; i++) u16[(slotWord + 4 * i) * 2 + 2] = int(0, 2048);
    const from = int(0, NUM_SLOTS - 1), k = int(0, NUM_SLOTS - 1);
    let sum = 0, j = from;
    for (let c = 0; c < k; c++) { sum += u16[(slotWord + 4 * j) * 2 + 2]!; j = j + 1 === NUM_SLOTS ? 0 : j + 1; }
    assert.equal(sumLengths(u16, slotWord, NUM_SLOTS, from, k), sum, `from ${from}, ${k} slots`);
    assert.equal(slotAfter(from, k, NUM_SLOTS), j);
  }
});

test('fillConstant after the first lap: any mix of changed slots, in and out of eight-slot steps, is found and repaired', () => {
  const slots = 70, bufs = 200, bufSize = 64;
  const ab = new ArrayBuffer(4096 + bufs * bufSize + bufSize);
  const u8 = new Uint8Array(ab), u32 = new Uint32Array(ab), i32 = new Int32Array(ab);
  const slotWord = 16, bufBase = 4096, tplAt = 4096 + bufs * bufSize;
  for (let i = 0; i < SIZE; i++) u8[tplAt + i] = 0x40 + (i % 32);
  for (let i = 0; i < slots; i++) u32[slotWord + 4 * i] = 2 + i;
  const filled = new Int32Array(slots).fill(-1);
  fillConstant(u8, i32, slotWord, slots, 0, slots, filled, bufBase, bufSize, bufs, tplAt, SIZE, true);
  const next = rng(1818);
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  let spare = 2 + slots;
  for (let round = 0; round < 300; round++) {
    // swap the buffers of a few slots (a receiver handing back others, flagged), scribble on
    // the lengths of a few more
    const changed = new Map<number, number>();
    for (let c = int(0, 4); c > 0; c--) {
      const s = int(0, slots - 1);
      const idx = spare;
      spare = spare + 1 >= bufs ? 2 + slots : spare + 1;
      u8.fill(0, bufBase + idx * bufSize, bufBase + (idx + 1) * bufSize);
      u32[slotWord + 4 * s] = idx;
      u32[slotWord + 4 * s + 1] = SIZE | (L.NS_BUF_CHANGED << 16);
      changed.set(s, idx);
    }
    for (let c = int(0, 2); c > 0; c--) u32[slotWord + 4 * int(0, slots - 1) + 1] = int(0, 0xffff);
    const from = int(0, slots - 1);
    assert.equal(fillConstant(u8, i32, slotWord, slots, from, slots, filled, bufBase, bufSize, bufs, tplAt, SIZE, false), from);
    for (let s = 0; s < slots; s++) assert.equal(u32[slotWord + 4 * s + 1], SIZE, `round ${round}: slot ${s} len|flags`);
    for (const [s, idx] of changed) {
      assert.ok(frameIn(u8, bufBase + idx * bufSize, tplAt), `round ${round}: slot ${s}'s new buffer ${idx} got the frame`);
      assert.equal(filled[s], u32[slotWord + 4 * s]);
    }
  }
});
