/**
 * Child process for the VALE tests (spawned with VALE_HELPER=1; does nothing otherwise, since
 * node --test also loads every file under test/).
 *   send PORT COUNT LEN ID DSTMAC   send COUNT frames (id, seq in the payload) to DSTMAC
 *   recv PORT EXPECT TIMEOUT_MS     announce our MAC by a broadcast, then count frames per sender
 *   hang PORT DESTPORT              take a lease on DESTPORT's RX ring and never complete it
 * Prints "ready" when set up and one JSON line with the result at the end.
 */
import { openPort } from '../../../src/ports/index.js';
import { registry } from '../../../src/memory/registry.js';
import { LeaseOps, Lease } from '../../../src/switch/lease.js';
import { loadLookup, portCounters } from '../../../src/switch/index.js';
import * as L from '../../../src/memory/layout.js';

function mac(id: number): number[] { return [2, 0, 0, 0, (id >> 8) & 0xff, id & 0xff]; }

function writeFrame(u8: Uint8Array, o: number, dst: number[], src: number[], id: number, seq: number, len: number): void {
  for (let j = 0; j < 6; j++) { u8[o + j] = dst[j]!; u8[o + 6 + j] = src[j]!; }
  u8[o + 12] = 0x88; u8[o + 13] = 0xb5;
  u8[o + 14] = id & 0xff; u8[o + 15] = (id >> 8) & 0xff;
  u8[o + 16] = seq & 0xff; u8[o + 17] = (seq >>> 8) & 0xff; u8[o + 18] = (seq >>> 16) & 0xff; u8[o + 19] = (seq >>> 24) & 0xff;
  for (let j = 20; j < len; j++) u8[o + j] = (j + seq) & 0xff;
}

async function main(): Promise<void> {
  const [role, portName, a1, a2, a3, a4] = process.argv.slice(2);
  if (role === 'send') {
    const count = Number(a1), len = Number(a2), id = Number(a3);
    const dst = a4!.split(':').map((x) => parseInt(x, 16));
    const port = openPort(portName!);
    await loadLookup(portName!.slice(0, portName!.indexOf(':'))); // a plugged-in lookup, if any
    const r = port.txRings[0]!;
    const u8 = port.mem.u8;
    const src = mac(id);
    process.stdout.write('ready\n');
    let seq = 0;
    while (seq < count) {
      let i = r.head;
      const burst = Math.min(r.space(), count - seq, 64);
      for (let k = 0; k < burst; k++) {
        writeFrame(u8, r.slotBufOffset(i), dst, src, id, seq++, len);
        r.setSlotLen(i, len);
        r.setSlotFlags(i, 0);
        i = r.next(i);
      }
      r.advance(i);
      port.txsync();
    }
    process.stdout.write(JSON.stringify({ sent: count }) + '\n');
    port.close();
  } else if (role === 'recv') {
    const expect = Number(a1), timeout = Number(a2);
    const port = openPort(portName!);
    const u8 = port.mem.u8;
    // announce our MAC so that senders' unicast frames are forwarded to us only
    const t = port.txRings[0]!;
    writeFrame(u8, t.slotBufOffset(t.head), [255, 255, 255, 255, 255, 255], mac(0xfff), 0xfff, 0, 60);
    t.setSlotLen(t.head, 60);
    t.advance(t.next(t.head));
    port.txsync();
    process.stdout.write('ready\n');
    const last = new Map<number, number>();
    const per: Record<string, number> = {};
    let received = 0, orderErrors = 0, empty = 0;
    const r = port.rxRings[0]!;
    const deadline = Date.now() + timeout;
    let lastProgress = Date.now();
    while (received < expect && Date.now() < deadline) {
      // idle: the senders are done. Generous, because on a loaded machine a sender process may start
      // seconds after another has finished; the cut-off only shortens a run that already lost frames.
      if (received > 0 && Date.now() - lastProgress > 5000) break;
      port.poll(L.POLLIN, 50);
      if (r.head !== r.tail) lastProgress = Date.now();
      let i = r.head;
      while (i !== r.tail) {
        const o = r.slotBufOffset(i);
        const len = r.slotLen(i);
        if (len === 0) { empty++; } else {
          const id = u8[o + 14]! | (u8[o + 15]! << 8);
          const seq = (u8[o + 16]! | (u8[o + 17]! << 8) | (u8[o + 18]! << 16) | (u8[o + 19]! << 24)) >>> 0;
          const prev = last.get(id) ?? -1;
          if (seq <= prev) orderErrors++;
          last.set(id, seq);
          per[id] = (per[id] ?? 0) + 1;
          received++;
        }
        i = r.next(i);
      }
      r.advance(i);
    }
    port.rxsync();
    const counters = portCounters(portName!.replace(/[@/].*$/, ''));
    process.stdout.write(JSON.stringify({ received, per, orderErrors, empty, counters }) + '\n');
    port.close();
  } else if (role === 'hang') {
    const port = openPort(portName!);
    const reg = registry();
    const dest = reg.locked(() => reg.findPort(a1!));
    const numTx = reg.portGet(dest, L.PE_NUM_TX);
    reg.region(reg.portGet(dest, L.PE_MEM_ID));
    const ring = reg.ringOffset(dest, numTx);
    const n = reg.sp.u32[(ring + L.RING_NUM_SLOTS) >>> 2]!;
    const ops = new LeaseOps(reg.sp);
    const lease = new Lease();
    ops.reserve(ring, n, 32, lease);
    process.stdout.write(`ready ${lease.count}\n`);
    // mid-copy: write a few slots, then wait to be killed
    setInterval(() => { void port; }, 1000);
  }
}

if (process.env.VALE_HELPER === '1') {
  main().catch((e: unknown) => { process.stderr.write(`${(e as Error).stack ?? String(e)}\n`); process.exit(2); });
}
