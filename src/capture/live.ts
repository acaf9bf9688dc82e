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

/** Packet callback: bytes [offset, offset + caplen) of u8; valid until the next dispatch. */
export type PacketHandler = (u8: Uint8Array, offset: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number) => void;

/** loop(): dispatches that found packets in a row before the event loop gets a turn. */
const LOOP_BURST = 64;
/** loop(): at most this long (ms) between turns of the event loop while packets flow. */
const LOOP_YIELD_MS = 20;

/**
 * loop(): after a dispatch that found fewer packets than this, wait COALESCE_MS before the next
 * (interrupt moderation): at high rates dump otherwise spent its CPU on a poll, a futex wait
 * and a wake-up per packet or two, and the writer a futex wake per batch.
 */
const COALESCE_BELOW = 32;
const COALESCE_MS = 0.2;
const pause = new Int32Array(new SharedArrayBuffer(4));

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
  /** Drops reported by the port's RX rings. */
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
  private breakRequested = false;
  private closed = false;
  /** NS_TXMON: the slot flag value dropped by the direction (-1: none dropped). */
  private readonly skipDirection: number;
  /**
   * Direction of the packet being handed to the callback: 1 in, 2 out (a monitor's NS_TXMON),
   * as pcapng's epb_flags; valid during the callback.
   */
  direction: 1 | 2 = 1;

  private constructor(port: Port, name: string, options: LiveOptions) {
    this.port = port;
    this.name = name;
    this.snaplen = options.snaplen ?? MAXIMUM_SNAPLEN;
    this.timeoutMs = options.timeoutMs ?? 1000;
    const d = options.direction ?? 'inout';
    this.skipDirection = d === 'in' ? L.NS_TXMON : d === 'out' ? 0 : -1;
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
    this.checkOpen();
    if (this.breakRequested) {
      this.breakRequested = false;
      return -2;
    }
    let n = this.drain(max, handler);
    if (n > 0) return n;
    // (the poll's rxsync also hands back the slots read by the previous dispatch)
    this.port.poll(POLLIN, this.timeoutMs);
    n = this.drain(max, handler);
    return n;
  }

  private drain(max: number, handler: PacketHandler): number {
    const limit = max <= 0 ? Infinity : max;
    const u8 = this.port.mem.u8;
    const rings = this.port.rxRings;
    const filter = this.filter;
    const snaplen = this.snaplen;
    let seen = 0;
    for (let r = 0; r < rings.length && seen < limit; r++) {
      const ring = rings[r]!;
      if (ring.empty()) continue;
      let tsSec = ring.tsSec, tsNsec = ring.tsUsec * 1000;
      if (tsSec === 0) {
        const now = Date.now();
        tsSec = Math.floor(now / 1000);
        tsNsec = (now % 1000) * 1e6;
      }
      let i = ring.head;
      const tail = ring.tail;
      while (i !== tail && seen < limit) {
        const off = ring.slotBufOffset(i);
        const len = ring.slotLen(i);
        const dirFlag = ring.slotFlags(i) & L.NS_TXMON;
        if (dirFlag === this.skipDirection) { i = ring.next(i); continue; }
        this.direction = dirFlag !== 0 ? 2 : 1;
        seen++;
        let cap = len < snaplen ? len : snaplen;
        if (filter !== null) {
          const keep = filter(u8, off, cap, len);
          if (keep === 0) { i = ring.next(i); continue; }
          if (keep < cap) cap = keep;
        }
        this.accepted++;
        handler(u8, off, cap, len, tsSec, tsNsec);
        i = ring.next(i);
      }
      ring.head = ring.cur = i;
    }
    this.received += seen;
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
    try {
      // the event loop gets a turn (signal handlers, breakloop) every LOOP_BURST busy dispatches
      // or ~LOOP_YIELD_MS, and after every poll that timed out: a turn costs microseconds, in
      // which a ring at 10 Mpps takes hundreds of frames
      let busy = 0, since = Date.now();
      for (;;) {
        const want = count > 0 ? count - (this.accepted - start) : 0;
        if (count > 0 && want <= 0) return this.accepted - start;
        const r = this.dispatch(want, handler);
        if (r === -2) return -2;
        const now = Date.now();
        if (now >= deadlineMs) return this.accepted - start;
        // a short batch: let frames gather for a moment rather than poll for each one (while we
        // are not armed, writers skip the wake-up too); the monitor ring holds what comes meanwhile
        if (r > 0 && r < COALESCE_BELOW) Atomics.wait(pause, 0, 0, COALESCE_MS);
        if (r > 0 && ++busy < LOOP_BURST && now - since < LOOP_YIELD_MS) continue;
        busy = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
        since = Date.now();
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
    let dropped = 0;
    for (const r of this.port.rxRings) dropped += r.drops;
    return { received: this.received, accepted: this.accepted, dropped };
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
