/**
 * libpcap-style capture on a netmap port (pipes, VALE ports, interfaces: any openPort name),
 * as netmap-libpcap provides: open by netmap name, setFilter, dispatch/loop/next, inject,
 * stats, breakloop. Packets are handed to the callback zero-copy (a view into the port's
 * buffers, valid until the next dispatch); the filter runs in user space on the same bytes.
 *
 * Semantics follow pcap-netmap.c: `received` counts packets seen before the filter, `dropped`
 * is what the port's rings report; every packet of one RX sync shares the ring's timestamp.
 */
import { fail } from '../errors.js';
import { openPort, POLLIN, POLLOUT, type Port } from '../ports/index.js';
import { type BpfProgram, type PacketFilter, MAXIMUM_SNAPLEN } from './bpf.js';
import { programFromText, type FilterMode } from './filter.js';
import { compileProgram } from './jit.js';
import { interpretProgram } from './interp.js';
import * as L from '../memory/layout.js';
import { clock, readClock, realtimeUs, schedYield } from '../native/index.js';
import { SLOT_WORDS, SLOT_WORD_BUF_IDX, SLOT_WORD_LEN_FLAGS } from '../rings/slot.js';

/** Packet callback: bytes [offset, offset + caplen) of u8; valid until the next dispatch. */
export type PacketHandler = (u8: Uint8Array, offset: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number) => void;

/** loop(): at most this long (ms) between turns of the event loop while packets flow. */
const LOOP_YIELD_MS = 20;

/**
 * loop(): after a dispatch that found fewer packets than this, or none while packets came within
 * the last IDLE_ARM_MS, wait PAUSE_MS before looking again (interrupt moderation): at high rates
 * dump otherwise spent its CPU on a poll, a futex wait and a wake-up per packet or two. The pause
 * is a sleep on a private word, not on the rings: the port's writers (a switch's senders) see no
 * sleeper and make no wake-up system call per batch. After IDLE_ARM_MS without packets, loop()
 * sleeps in poll() (armed: the first packet wakes it).
 */
const COALESCE_BELOW = 32;
const PAUSE_MS = 0.2;
const IDLE_ARM_MS = 10;
const pause = new Int32Array(new SharedArrayBuffer(4));
/**
 * loop(): packets a dispatch at most, each followed by sched_yield(): a capture on a CPU it
 * shares with the watched port's receiver (2 cores, pkt-gen tx, rx and dump) otherwise held it
 * for a whole ring's worth (16384 frames, about 1 ms) while the receiver's 1024-slot ring
 * overflowed; the yield returns at once when nobody else waits for the CPU.
 */
const LOOP_BATCH = 1024;

export interface LiveOptions {
  /** Bytes kept of each packet (default 262144). */
  snaplen?: number;
  /** How long dispatch() waits for packets before returning 0 (ms, default 1000; -1 forever). */
  timeoutMs?: number;
  /**
   * pcap_setdirection (tcpdump -Q) on a monitor port: 'in' keeps what the watched port
   * received, 'out' what it sent (slots with NS_TXMON), 'inout' both (the default).
   */
  direction?: 'in' | 'out' | 'inout';
}

export interface CaptureStats {
  /** Packets seen (before the filter), pcap's ps_recv. */
  received: number;
  /** Packets the filter accepted and the callback got. */
  accepted: number;
  /**
   * Frames lost before the callback saw them (pcap's ps_drop): the RX rings' drops, and on an
   * interface the frames the kernel had no room for (no buffer lent, a full AF_XDP or AF_PACKET
   * ring: PortAdapter.kernelDrops), since the capture opened.
   */
  dropped: number;
}

export class LiveCapture {
  readonly port: Port;
  readonly name: string;
  readonly snaplen: number;
  timeoutMs: number;
  private filter: PacketFilter | null = null;
  private received = 0;
  private accepted = 0;
  /** Port.rxDrops() when the capture opened. */
  private readonly drops0: number;
  private breakRequested = false;
  private closed = false;
  /** NS_TXMON: the slot flag value dropped by the direction (-1: none dropped). */
  private readonly skipDirection: number;
  /**
   * Direction of the packet being handed to the callback: 1 in, 2 out (a monitor's NS_TXMON),
   * as pcapng's epb_flags; valid during the callback.
   */
  direction: 1 | 2 = 1;
  /** realtimeUs() output for rings without a timestamp: seconds, microseconds. */
  private readonly now = new Uint32Array(2);

  private constructor(port: Port, name: string, options: LiveOptions) {
    this.port = port;
    this.name = name;
    this.snaplen = options.snaplen ?? MAXIMUM_SNAPLEN;
    this.timeoutMs = options.timeoutMs ?? 1000;
    const d = options.direction ?? 'inout';
    this.skipDirection = d === 'in' ? L.NS_TXMON : d === 'out' ? 0 : -1;
    this.drops0 = port.rxDrops();
  }

  /** Opens `name` (e.g. `netmap:p{1`, `vale0:a`, `netmap:eth1`). Link type is always Ethernet. */
  static open(name: string, options: LiveOptions = {}): LiveCapture {
    const snaplen = options.snaplen ?? MAXIMUM_SNAPLEN;
    if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > MAXIMUM_SNAPLEN) fail('EINVAL', `snapshot length ${snaplen} must be 1..${MAXIMUM_SNAPLEN}`);
    if (options.direction !== undefined && !['in', 'out', 'inout'].includes(options.direction)) fail('EINVAL', `direction '${String(options.direction)}' must be in, out or inout`);
    return new LiveCapture(openPort(name), name, options);
  }

  get linktype(): number {
    return 1;
  }

  /** Installs a filter: an expression, a -ddd program text, or a program. null removes it. */
  setFilter(filter: string | BpfProgram | null, mode: FilterMode = 'compiled'): void {
    if (filter === null) {
      this.filter = null;
      return;
    }
    const prog = typeof filter === 'string' ? programFromText(filter, { snaplen: this.snaplen }) : filter;
    this.filter = mode === 'interpreted' ? interpretProgram(prog) : compileProgram(prog);
  }

  /**
   * Processes the packets waiting on the RX rings, up to `max` (<= 0: all), waiting up to
   * timeoutMs for the first one. Returns how many were seen (filtered-out ones included, as
   * pcap_dispatch), 0 on timeout, -2 if breakloop() was called.
   */
  dispatch(max: number, handler: PacketHandler): number {
    return this.take(max, handler, false);
  }

  /**
   * dispatch(); with `now` it never sleeps: what the rings hold, else one rxsync and what it
   * brought (loop()'s own pacing decides when to sleep).
   */
  private take(max: number, handler: PacketHandler, now: boolean): number {
    this.checkOpen();
    if (this.breakRequested) {
      this.breakRequested = false;
      return -2;
    }
    const n = this.drain(max, handler);
    if (n > 0) return n;
    // (the sync also hands back the slots read by the previous dispatch)
    if (now) this.port.rxsync();
    else this.port.poll(POLLIN, this.timeoutMs);
    return this.drain(max, handler);
  }

  private drain(max: number, handler: PacketHandler): number {
    const limit = max <= 0 ? Infinity : max;
    const mem = this.port.mem;
    const u8 = mem.u8, u32 = mem.u32;
    const rings = this.port.rxRings;
    const filter = this.filter;
    const snaplen = this.snaplen;
    const skip = this.skipDirection;
    let seen = 0, accepted = 0;
    for (let r = 0; r < rings.length && seen < limit; r++) {
      const ring = rings[r]!;
      if (ring.empty()) continue;
      let tsSec = ring.tsSec, tsNsec = ring.tsUsec * 1000;
      if (tsSec === 0) {
        realtimeUs(this.now);
        tsSec = this.now[0]!;
        tsNsec = this.now[1]! * 1000;
      }
      // slots read as words (buf_idx, len | flags << 16): no accessor call per packet
      const slots = ring.slotWord, n = ring.numSlots, bufBase = ring.bufBase, bufSize = ring.bufSize, numBufs = ring.numBufs;
      let i = ring.head;
      const tail = ring.tail;
      while (i !== tail && seen < limit) {
        const w = slots + SLOT_WORDS * i;
        i = i + 1 === n ? 0 : i + 1;
        const lf = u32[w + SLOT_WORD_LEN_FLAGS]!;
        const dirFlag = (lf >>> 16) & L.NS_TXMON;
        if (dirFlag === skip) continue;
        const idx = u32[w + SLOT_WORD_BUF_IDX]!;
        const off = bufBase + (idx < numBufs ? idx : 0) * bufSize;
        const len = lf & 0xffff;
        seen++;
        let cap = len < snaplen ? len : snaplen;
        if (filter !== null) {
          const keep = filter(u8, off, cap, len);
          if (keep === 0) continue;
          if (keep < cap) cap = keep;
        }
        accepted++;
        this.direction = dirFlag !== 0 ? 2 : 1;
        handler(u8, off, cap, len, tsSec, tsNsec);
      }
      ring.head = ring.cur = i;
    }
    this.received += seen;
    this.accepted += accepted;
    return seen;
  }

  /**
   * Calls dispatch until `count` packets were accepted (<= 0: until breakloop or close),
   * yielding to the event loop between batches so that signal handlers can call breakloop().
   * Resolves to the number accepted, or -2 when broken off.
   */
  async loop(count: number, handler: PacketHandler, deadlineMs = Infinity): Promise<number> {
    const start = this.accepted;
    const saved = this.timeoutMs;
    this.timeoutMs = Math.min(saved < 0 ? 100 : saved, 100);
    // the caller's deadline (Date.now() time) on the monotonic clock, which reading allocates nothing
    readClock();
    const deadline = deadlineMs === Infinity ? Infinity : clock[0]! + (deadlineMs - Date.now());
    try {
      // the event loop gets a turn (signal handlers, breakloop) every ~LOOP_YIELD_MS while packets
      // flow and after every poll that timed out: a turn costs microseconds, in which a ring at
      // 10 Mpps takes hundreds of frames
      let since = clock[0]!, lastPacket = -Infinity;
      for (;;) {
        const want = count > 0 ? count - (this.accepted - start) : 0;
        if (count > 0 && want <= 0) return this.accepted - start;
        let r = this.take(want === 0 || want > LOOP_BATCH ? LOOP_BATCH : want, handler, true);
        if (r === -2) return -2;
        readClock();
        let now = clock[0]!;
        if (r > 0) lastPacket = now;
        else if (now - lastPacket >= IDLE_ARM_MS) {
          // idle: sleep in poll until packets come (armed: the first one wakes us) or the timeout
          r = this.dispatch(want, handler);
          if (r === -2) return -2;
          readClock();
          now = clock[0]!;
          if (r > 0) lastPacket = now;
        }
        if (now >= deadline) return this.accepted - start;
        if (r === 0 && now - lastPacket >= IDLE_ARM_MS) {
          // the poll timed out: let the event loop run
          await new Promise<void>((resolve) => setImmediate(resolve));
          readClock();
          since = clock[0]!;
          if (this.closed) return this.accepted - start;
          continue;
        }
        // a short batch, or none for a moment while packets flow: let frames gather rather than
        // look for each one; the monitor ring holds what comes meanwhile
        if (r < COALESCE_BELOW) Atomics.wait(pause, 0, 0, PAUSE_MS);
        else schedYield();
        if (now - since < LOOP_YIELD_MS) continue;
        await new Promise<void>((resolve) => setImmediate(resolve));
        readClock();
        since = clock[0]!;
        if (this.closed) return this.accepted - start;
      }
    } finally {
      this.timeoutMs = saved;
    }
  }

  /** The next accepted packet, copied, or null on timeout (pcap_next). */
  next(): { data: Uint8Array; caplen: number; wirelen: number; tsSec: number; tsNsec: number } | null {
    let out: { data: Uint8Array; caplen: number; wirelen: number; tsSec: number; tsNsec: number } | null = null;
    const deadline = this.timeoutMs < 0 ? Infinity : Date.now() + this.timeoutMs;
    while (out === null) {
      const n = this.dispatch(1, (u8, o, c, w, s, ns) => {
        out = { data: u8.slice(o, o + c), caplen: c, wirelen: w, tsSec: s, tsNsec: ns };
      });
      if (n === -2 || Date.now() >= deadline) break;
    }
    return out;
  }

  /** Sends one frame (copied into the next TX slot) and syncs; returns len, or 0 if no room. */
  inject(u8: Uint8Array, offset: number, len: number): number {
    this.checkOpen();
    let n = this.port.inject(u8, offset, len);
    if (n === 0) {
      this.port.poll(POLLOUT, this.timeoutMs < 0 ? 1000 : this.timeoutMs);
      n = this.port.inject(u8, offset, len);
    }
    if (n > 0) this.port.txsync();
    return n;
  }

  stats(): CaptureStats {
    return { received: this.received, accepted: this.accepted, dropped: this.port.rxDrops() - this.drops0 };
  }

  /** Makes the current or next dispatch/loop return -2 (pcap_breakloop). */
  breakloop(): void {
    this.breakRequested = true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.port.close();
  }

  private checkOpen(): void {
    if (this.closed) fail('ENXIO', `capture on ${this.name} is closed`);
  }
}

/** Opens a live capture (pcap_open_live). */
export function openLive(name: string, options?: LiveOptions): LiveCapture {
  return LiveCapture.open(name, options);
}
