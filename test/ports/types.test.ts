/**
 * Port types: one record per kind, registered once; the same record again is a no-op, another
 * record for a kind or name family already taken is refused; the registry runs the kind's
 * lastUser operation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

const dir = fs.mkdtempSync('/dev/shm/nmts-types-');
process.env.NETMAP_TS_DIR = dir;
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const { registerPortTypes, portTypeOfFamily } = await import('../../src/ports/port.js');
const { registry } = await import('../../src/memory/registry.js');
type PortType = import('../../src/ports/port.js').PortType;

const adapter = (): never => { throw new Error('not opened in this test'); };

test('a record registers once; another record for the same kind or family is refused', () => {
  const first: PortType = { name: 'test-a', kind: 97, adapter };
  registerPortTypes([first]);
  registerPortTypes([first]); // the same record again: nothing happens
  assert.throws(() => registerPortTypes([{ name: 'test-b', kind: 97, adapter }]), /port kind 97 registered twice/);
  const withFamily: PortType = { name: 'test-c', kind: 98, family: 'vale', resolve: () => -1, adapter };
  registerPortTypes([withFamily]);
  assert.equal(portTypeOfFamily('vale'), withFamily);
  assert.throws(() => registerPortTypes([{ name: 'test-d', kind: 96, family: 'vale', resolve: () => -1, adapter }]), /family vale registered twice/);
  assert.throws(() => registerPortTypes([{ name: 'test-e', kind: 95, family: 'pipe', adapter }]), /needs a resolver/);
});

test('the registry runs the lastUser operation of the port\'s kind', () => {
  const seen: number[] = [];
  registerPortTypes([{ name: 'test-f', kind: 99, adapter, lastUser: (_reg, index) => { seen.push(index); } }]);
  const reg = registry();
  const index = reg.locked(() => {
    const memId = reg.createRegion({ numBufs: 64, numPages: 16, bufSize: 2048 });
    return reg.createPort({ name: 'types-test', kind: 99, memId, flags: 0, numTx: 1, numRx: 1, numHostTx: 0, numHostRx: 0, txSlots: 8, rxSlots: 8 });
  });
  reg.locked(() => reg.lastUserGone(index));
  assert.deepEqual(seen, [index]);
  reg.locked(() => reg.destroyPort(index));
  assert.equal(reg.portLive(index), false);
});
