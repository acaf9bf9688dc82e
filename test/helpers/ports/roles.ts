/**
 * What the child processes and worker threads of the ports, rings, pipes and memory tests do, selected by argv-like
 * arguments. `emit` reports a JSON-able object to the test (a stdout line or a worker message).
 * Every loop is bounded in time.
 */
import { openPort, POLLIN, POLLOUT, waitPort } from './lib.js';
import { registry } from '../../../src/memory/registry.js';
import * as L from '../../../src/memory/layout.js';
import type { Port } from '../../../src/ports/port.js';

export type Emit = (o: Record<string, unknown>) => void;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Packet k: length 60 + k % 64, first 4 bytes = k, byte 4 = k & 0xff. */
export function packetLen(k: number): number {
  return 60 + (k % 64);
}

export function sendPackets(port: Port, count: number, batch: number, deadlineMs: number): number {
  const tx = port.txRings[0]!;
  const u8 = port.mem.u8, view = port.mem.view;
  let k = 0;
  const deadline = Date.now() + deadlineMs;
  while (k < count && Date.now() < deadline) {
    let room = tx.space();
    if (room === 0) { port.poll(POLLOUT, 100); room = tx.space(); if (room === 0) continue; }
    let i = tx.head;
    for (let j = 0; j < room && j < batch && k < count; j++, k++) {
      const off = tx.slotBufOffset(i);
      view.setUint32(off, k, true);
      u8[off + 4] = k & 0xff;
      tx.setSlotLen(i, packetLen(k));
      tx.setSlotFlags(i, 0);
      i = tx.next(i);
    }
    tx.advance(i);
    port.txsync();
  }
  return k;
}

/** Receives `count` packets checking order, lengths and payload; returns [received, errors]. */
export function receivePackets(port: Port, count: number, deadlineMs: number): { got: number; errors: number } {
  const rx = port.rxRings[0]!;
  const u8 = port.mem.u8, view = port.mem.view;
  let got = 0, errors = 0;
  const deadline = Date.now() + deadlineMs;
  while (got < count && Date.now() < deadline) {
    port.rxsync();
    if (rx.empty()) { port.poll(POLLIN, 100); continue; }
    let i = rx.head;
    while (i !== rx.tail && got < count) {
      const off = rx.slotBufOffset(i);
      if (rx.slotLen(i) !== packetLen(got) || view.getUint32(off, true) !== got || u8[off + 4] !== (got & 0xff)) errors++;
      got++;
      i = rx.next(i);
    }
    rx.advance(i);
  }
  port.rxsync();
  return { got, errors };
}

export async function runRole(args: string[], emit: Emit): Promise<void> {
  const [cmd, name, a1, a2] = args;
  switch (cmd) {
    case 'send': {
      const port = openPort(name!);
      emit({ ready: true });
      const sent = sendPackets(port, Number(a1), Number(a2 ?? 64), 20000);
      // wait until the receiver released everything, so the close does not race it
      const t0 = Date.now();
      while (port.txRings[0]!.txPending() && Date.now() - t0 < 10000) port.poll(POLLOUT, 50);
      port.close();
      emit({ sent });
      return;
    }
    case 'recv': {
      const port = openPort(name!);
      emit({ ready: true });
      const r = receivePackets(port, Number(a1), 20000);
      port.close();
      emit(r);
      return;
    }
    case 'hold': {
      const port = openPort(name!, { extraBuffers: Number(a1 ?? 0) });
      emit({ ready: true, extra: port.extraBuffers });
      sleepSync(60000);
      return;
    }
    case 'hold-both': {
      // both ends of a pipe, with extra buffers and packets in flight, then sleep (to be killed)
      const m = openPort(`${name!}{1`, { extraBuffers: 100 });
      const s = openPort(`${name!}}1`, { extraBuffers: 100 });
      sendPackets(m, 50, 50, 2000);
      emit({ ready: true });
      sleepSync(60000);
      void s;
      return;
    }
    case 'open': {
      try {
        const p = openPort(name!);
        p.close();
        emit({ ok: true });
      } catch (e) {
        emit({ ok: false, code: (e as { code?: string }).code, message: (e as Error).message, type: (e as Error).name });
      }
      return;
    }
    case 'half-port': {
      // killed in the middle of createPort, in a region that survives (the memory of port
      // `name`): every ring and buffer taken, the entry never marked live
      const reg = registry();
      reg.locked(() => {
        const parent = reg.findPort(name!);
        const memId = reg.portGet(parent, L.PE_MEM_ID);
        const index = reg.createPort({ name: 'halfmade', kind: L.PORT_KIND_PARENT, memId, flags: 0, numTx: 2, numRx: 2, numHostTx: 0, numHostRx: 0, txSlots: 64, rxSlots: 64 });
        // as if killed just before createPort's last two steps (the region's reference, "live")
        (reg as unknown as { regionRef(m: number, d: number): void }).regionRef(memId, -1);
        reg.portSet(index, L.PE_STATE, L.PORT_STATE_CREATING);
        emit({ created: true, free: reg.region(memId).freeBuffers() });
        sleepSync(60000);
      });
      return;
    }
    case 'half-create': {
      // killed in the middle of a control operation: a region made, its port never finished
      const reg = registry();
      reg.locked(() => {
        reg.createRegion({ numBufs: 1024, numPages: 64, bufSize: 2048 });
        emit({ created: true });
        sleepSync(60000);
      });
      return;
    }
    case 'lock': {
      const reg = registry();
      reg.locked(() => {
        emit({ locked: true });
        sleepSync(60000);
      });
      return;
    }
    case 'idle-poll': {
      // A blocking poll with nothing to receive must sleep, not spin.
      const port = openPort(name!);
      const before = process.cpuUsage();
      const t0 = Date.now();
      const revents = port.poll(POLLIN, Number(a1));
      const cpu = process.cpuUsage(before);
      emit({ revents, elapsed: Date.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 });
      port.close();
      return;
    }
    case 'send-one': {
      const port = openPort(name!);
      emit({ ready: true });
      sleepSync(Number(a1 ?? 200));
      const tx = port.txRings[0]!;
      tx.setSlotLen(tx.head, 60);
      tx.advance(tx.next(tx.head));
      const sentAt = Date.now();
      port.txsync();
      emit({ sentAt });
      sleepSync(300);
      port.close();
      return;
    }
    case 'wait-then-exit': {
      // The event-loop waiter must not keep the process alive once nothing is pending.
      const port = openPort(name!);
      const t0 = Date.now();
      const revents = await waitPort(port, POLLIN, Number(a1 ?? 100));
      emit({ revents, waited: Date.now() - t0, t: Date.now() });
      return; // port left open on purpose: an open port must not keep the process alive either
    }
    case 'ready-when-armed': {
      // A wait whose port is found ready by the waiter's own first look (a peer's packet landed
      // between waitPort's check and the waiter's): the waiter's thread is made, never needed.
      // It must not keep the process alive (it did: its message listener, added after unref(),
      // ref'd the thread's port for good; nodejs/node#53036).
      const tx = openPort(a1!), rx = openPort(name!);
      const ring = tx.txRings[0]!;
      ring.setSlotLen(ring.head, 60);
      ring.advance(ring.next(ring.head));
      tx.txsync();
      let first = true;
      const realPoll = rx.pollOnce.bind(rx);
      rx.pollOnce = (events: number): number => { if (first) { first = false; return 0; } return realPoll(events); };
      const revents = await waitPort(rx, POLLIN, -1);
      emit({ revents, t: Date.now() });
      return;
    }
    case 'wait-pending': {
      // A pending wait without timeout keeps the process alive until a packet arrives.
      const port = openPort(name!);
      emit({ ready: true });
      const revents = await waitPort(port, POLLIN, -1);
      emit({ revents, t: Date.now() });
      port.close();
      return;
    }
    case 'rogue': {
      await rogue(name!, Number(a1 ?? 1000), Number(a2 ?? 1), emit);
      return;
    }
    default:
      throw new Error(`unknown role ${cmd}`);
  }
}

/** A deterministic PRNG (xorshift32). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

/**
 * A misbehaving user: writes random head/cur/tail and random slot contents into the rings of its
 * port, then syncs and polls, for `ms` milliseconds. Must only ever see clean errors.
 */
async function rogue(name: string, ms: number, seed: number, emit: Emit): Promise<void> {
  const port = openPort(name);
  const rand = rng(seed);
  const u32 = port.mem.u32, u16 = port.mem.u16;
  const deadline = Date.now() + ms;
  let syncs = 0, errs = 0, thrown = 0;
  while (Date.now() < deadline) {
    for (const r of [...port.txRings, ...port.rxRings]) {
      const n = r.numSlots;
      const pick = (): number => { const v = rand(); return (v & 3) === 0 ? v : v % (n + 2); };
      const what = rand() % 6;
      if (what === 0) r.head = pick();
      else if (what === 1) r.cur = pick();
      else if (what === 2) { r.head = pick(); r.cur = pick(); }
      else if (what === 3) u32[(r.offset + 28) >>> 2] = pick(); // tail
      else {
        // random slot contents
        for (let k = 0; k < 4; k++) {
          const i = rand() % n;
          const sw = (r.offset + 256 + 16 * i) >>> 2;
          const v = rand();
          if ((v & 3) === 0) u32[sw] = rand();
          else if ((v & 3) === 1) u32[sw] = rand() % (r.numBufs + 4);
          u16[2 * sw + 2] = rand() & 0xffff;
          u16[2 * sw + 3] = rand() & 0xffff;
        }
        // sometimes a legal advance, so data does flow
        if ((rand() & 1) === 0) { const s = r.space(); if (s > 0) r.advance((r.head + (rand() % s)) % n); }
      }
    }
    try {
      const rev = port.pollOnce(POLLIN | POLLOUT);
      if ((rev & 8) !== 0) errs++;
      port.txsync();
      port.rxsync();
    } catch {
      thrown++;
    }
    syncs++;
  }
  port.close();
  emit({ syncs, errs, thrown });
}
