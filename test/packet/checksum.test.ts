/**
 * Internet checksum: the wide (32-bit word) sum agrees with the plain 16-bit word sum for every
 * alignment, length and content, including the all-ones and all-zero edge cases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sum16, fold } from '../../src/packet/checksum.js';
import { rng } from '../helpers/prng.js';

function reference(u8: Uint8Array, from: number, to: number): number {
  let s = 0, i = from;
  for (; i + 1 < to; i += 2) s += (u8[i]! << 8) | u8[i + 1]!;
  if (i < to) s += u8[i]! << 8;
  return s;
}

test('sum16 equals the word-by-word sum at every alignment and length', () => {
  const rand = rng(777);
  const buf = new ArrayBuffer(1 << 14);
  for (const offset of [0, 1, 2, 3, 4, 6]) {
    const u8 = new Uint8Array(buf, offset, 8192);
    for (let k = 0; k < u8.length; k++) u8[k] = rand() & 0xff;
    for (let t = 0; t < 3000; t++) {
      const from = rand() % 4000, len = rand() % 3000;
      assert.equal(fold(sum16(u8, from, from + len)), fold(reference(u8, from, from + len)), `offset ${offset} from ${from} len ${len}`);
    }
    for (const fill of [0, 0xff]) {
      u8.fill(fill, 0, 4096);
      for (const len of [64, 65, 1480, 1481]) assert.equal(fold(sum16(u8, 2, 2 + len)), fold(reference(u8, 2, 2 + len)), `fill ${fill} len ${len}`);
    }
  }
});
