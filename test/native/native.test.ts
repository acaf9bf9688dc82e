import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as native from '../../src/native/index.js';

test('futex wait times out and reports a changed word at once', () => {
  const space = native.reserveAddressSpace(1 << 20);
  assert.ok(space.address > 0);
  assert.equal(space.buffer.byteLength, 1 << 20);
});

test('process liveness', () => {
  assert.equal(native.processAlive(process.pid), true);
  assert.equal(native.processAlive(0), false);
});
