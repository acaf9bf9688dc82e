import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PerformanceObserver, constants } from 'node:perf_hooks';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-layout-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { openPort } = await import('../../src/index.js');
const { space } = await import('../../src/memory/space.js');
const { registry } = await import('../../src/memory/registry.js');
const { mapScratch } = await import('../../src/interfaces/packet.js');
const L = await import('../../src/memory/layout.js');

/** Minor GCs while `fn` runs (the 'gc' performance entries of kind minor). */
async function minorGcsDuring(fn: () => void): Promise<number> {
  let n = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) n++;
  });
  obs.observe({ entryTypes: ['gc'] });
  fn();
  await new Promise((r) => setTimeout(r, 50)); // entries are delivered asynchronously
  obs.disconnect();
  return n;
}

test('layout: regions (the global one too) and a thread\'s first private mappings lie below 2^30, so frame copies between them make no garbage', async () => {
  const vale = openPort('valeL1:a');
  const reg = registry();
  const globalId = reg.locked(() => reg.globalRegion({ numBufs: 1024, numPages: 64, bufSize: L.DEFAULT_BUF_SIZE }));
  const scratch = mapScratch(1 << 20);
  const sp = space();
  try {
    const src = vale.txRings[0]!.slotBufOffset(0);
    const g = reg.region(globalId);
    const globalEnd = g.bufBase + g.numBufs * g.bufSize;
    for (const [what, at] of [['a VALE buffer', src], ['the global region\'s end', globalEnd], ['a private mapping', scratch]] as const) {
      assert.ok(at + 2048 < L.SPACE_SMI_LIMIT, `${what} at ${at} lies below 2^30`);
    }
    // copies of 1000 bytes (copyWithin) both ways: optimized first, then counted
    const copies = (n: number): void => {
      for (let i = 0; i < n; i++) {
        const s = scratch + (i & 255) * 2048;
        sp.copy(s, src, 1000, 2048);
        sp.copy(src, s, 1000, 2048);
      }
    };
    copies(100_000);
    // with a private mapping above 2^30 (the old layout) each copyWithin made a heap number:
    // 24 MB of garbage here, several minor GCs
    assert.equal(await minorGcsDuring(() => copies(1_000_000)), 0, 'no minor GC during 2 M frame copies');
  } finally {
    sp.unmapLocal(scratch, 1 << 20);
    vale.close();
  }
});
