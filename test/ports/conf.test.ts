/**
 * @conf: keys a kind of port cannot honour are refused with EINVAL and a sentence, never
 * silently ignored: host rings on VALE ports and pipes (they have none), backend= (an interface's
 * sockets) on them, any key but slots= and extra-bufs= on a monitor. What the kinds do honour
 * still opens.
 */
import '../helpers/ports/env.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/port-types.js'; // every port type, plugged into openPort
import { openPort } from '../../src/ports/index.js';
import { NetmapError } from '../../src/errors.js';

const refused = (name: string, re: RegExp): void => {
  assert.throws(() => openPort(name).close(), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL' && re.test(e.message), name);
};

test('VALE ports and pipes refuse host-rings and backend; monitors every key but slots and extra-bufs', async () => {
  for (const key of ['host-rings=1', 'host-tx-rings=1', 'host_rx_rings=2']) {
    refused(`vale0:s@conf:${key}`, /a VALE port has no host rings; @conf:host-rings .*applies to interfaces/);
    refused(`netmap:cp{1@conf:${key}`, /a pipe has no host rings/);
    refused(`vale0:s{2@conf:${key}`, /a pipe has no host rings/);
  }
  refused('vale0:s@conf:backend=xdp', /a VALE port has no sockets to choose; @conf:backend=xdp\|packet applies to interfaces/);
  refused('netmap:cp}1@conf:backend=packet', /a pipe has no sockets to choose/);
  // a persistent VALE port opened by its own name
  const { createPersistentPort, removePersistentPort } = await import('../../src/switch/index.js');
  createPersistentPort('cvp0', {});
  try {
    refused('netmap:cvp0@conf:host-rings=1', /a VALE port has no host rings/);
    refused('netmap:cvp0@conf:backend=xdp', /a VALE port has no sockets to choose/);
    openPort('netmap:cvp0@conf:slots=1024').close();
  } finally {
    removePersistentPort('cvp0');
  }
  // nothing was made by a refused open: the names are free, and what the kinds honour opens
  const a = openPort('vale0:s@conf:rings=2,slots=64,extra-bufs=4');
  const b = openPort('netmap:cp{1@conf:slots=128');
  try {
    assert.deepEqual([a.txRings.length, a.rxRings.length, a.txRings[0]!.numSlots], [2, 2, 64]);
    assert.equal(b.txRings[0]!.numSlots, 128);
    for (const key of ['host-rings=1', 'backend=xdp', 'vnet-hdr=12', 'rings=2']) {
      refused(`vale0:s/rt@conf:${key}`, /a monitor's rings follow the watched port; only slots= and extra-bufs= apply/);
    }
    const m = openPort('vale0:s/rt@conf:slots=32');
    assert.equal(m.rxRings[0]!.numSlots, 32);
    m.close();
  } finally {
    a.close();
    b.close();
  }
});
