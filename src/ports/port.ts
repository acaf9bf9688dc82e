/**
 * Opening a port: resolve its name to a port of the registry (creating ephemeral ports, pipes
 * and switches on first use, as netmap does), bind the rings the mode selects, give the handle
 * its own netmap_if and extra buffers, and wrap the port type's sync functions.
 *
 * One Port object = one netmap file descriptor. Several handles on one port share its rings.
 */
import { NetmapError, assert, fail } from '../errors.js';
import { registry, Registry, writeLatin1 } from '../memory/registry.js';
import type { AddressSpace } from '../memory/space.js';
import { Ring } from '../rings/ring.js';
import * as sync from '../rings/sync.js';
import * as native from '../native/index.js';
import * as L from '../memory/layout.js';
import { parsePortSpec, type PortSpec } from './name.js';
import { ownerAlive, selfTid } from '../memory/lock.js';
import { tapsOf, type Taps } from '../monitor/tap.js';
import { spareCpu } from './spare-cpu.js';

export const POLLIN = L.POLLIN;
export const POLLOUT = L.POLLOUT;
export const POLLERR = L.POLLERR;

/** What a port type does on txsync/rxsync. One instance per handle. Return false on error. */
export interface PortAdapter {
  txsync(ring: Ring): boolean;
  rxsync(ring: Ring): boolean;
  /** Called when the handle closes, before the registry forgets it (optional). */
  close?(): void;
  /**
   * Called when a sleeper has announced itself on `ring` and read its wake word (optional): an
   * adapter whose progress comes from elsewhere (the kernel) arranges to be woken from then on.
   */
  armed?(ring: Ring): void;
  /** Called when a sleeper has left `ring` (after armed; optional). */
  disarmed?(ring: Ring): void;
  /**
   * The longest a sleeper may sleep at once before looking at the rings itself, in ms (optional;
   * asked after armed()): short while what would wake it is not running yet.
   */
  sleepCapMs?(): number;
  /**
   * Frames the kernel dropped on their way into this handle's RX rings, a running total
   * (optional; interfaces: an AF_XDP socket's drops for want of a buffer or of room, an AF_PACKET
   * socket's). A system call or two: read it at a run's start and end, not per batch.
   */
  kernelDrops?(): number;
  /** How the port reaches its data (interfaces: 'xdp native copy', 'packet', 'tap'; optional). */
  readonly backend?: string;
}

export type AdapterFactory = (port: Port) => PortAdapter;

/**
 * Resolves a name to a port-table index under the registry lock, creating the port if the
 * name's rules say so; returns -1 if the name is not of this resolver's kind.
 */
export type Resolver = (reg: Registry, spec: PortSpec, opts: OpenOptions) => number;

/** vale-ctl -a/-h/-d on a name that is not a VALE port: what the port type behind it does. */
export interface SwitchAttachRequest {
  op: 'attach' | 'detach';
  switchName: string;
  /** The port's name without the switch prefix (an interface name). */
  ifName: string;
  /** -h: attach the host stack too (a second port `ifName^`). */
  host: boolean;
}

/** The names a port type resolves: pipes (`X{N`, `X}N`), VALE ports (`valeX:P`), or the rest. */
export type NameFamily = 'pipe' | 'vale' | 'interface' | 'monitor';

/**
 * One port type (netmap's struct netmap_adapter, as a record): everything the ports layer and
 * the registry call for ports of one PORT_KIND_*. A new port type is one such record in its own
 * file plus one entry in the list given to registerPortTypes().
 */
export interface PortType {
  /** For messages: 'pipe', 'vale', 'interface'... */
  readonly name: string;
  /** The PORT_KIND_* its registry entries carry. */
  readonly kind: number;
  /**
   * The names it resolves, and how (under the registry lock: find or create the entry with
   * reg.createRegion/reg.createPort, return its index; -1 when the name is not one of its ports).
   * Absent for kinds only ever made by another type (a pipe's memory-only parent).
   */
  readonly family?: NameFamily;
  readonly resolve?: Resolver;
  /**
   * Resolves `spec.parentName` as the parent of a pipe (`netmap:NAME{N`), or -1 when it is not
   * one of its ports (interfaces can be pipe parents: lb).
   */
  readonly resolvePipeParent?: Resolver;
  /**
   * Attaches one of its ports to a VALE switch, or detaches it (netmap's bwrap: an interface on
   * a switch); throws NetmapError ENXIO when `ifName` is not one of its ports.
   */
  readonly switchAttach?: (req: SwitchAttachRequest) => void;
  /** The sync functions of one handle. */
  readonly adapter: AdapterFactory;
  /**
   * How its frames reach monitor ports (src/monitor): 'sync' (default) — Port copies what each
   * txsync handed over and each rxsync brought; 'self' — its data path feeds copy monitors
   * itself (VALE: the forwarder, for frames that never pass a ring of the port); 'none' — it
   * cannot be monitored. Zero-copy monitors are always served by Port's syncs.
   */
  readonly monitors?: 'sync' | 'self' | 'none';
  /** What happens when the port's last handle goes (ephemeral ports destroy themselves). */
  readonly lastUser?: (reg: Registry, index: number) => void;
  /** Cleanup before the port's registry entry goes (detach from a switch...). */
  readonly destroy?: (reg: Registry, index: number) => void;
}

const typesByKind = new Map<number, PortType>();
const typesByFamily = new Map<NameFamily, PortType>();

/**
 * Plugs in the port types of the build; called once, from the package's top (src/port-types.ts).
 * Registering the same record again does nothing; another record for a kind or name family
 * already taken is a programming error.
 */
export function registerPortTypes(types: readonly PortType[]): void {
  for (const type of types) {
    const known = typesByKind.get(type.kind);
    if (known === type) continue; // the same record again (two entry points in one thread)
    assert(known === undefined, `port kind ${type.kind} registered twice`);
    assert((type.family === undefined) === (type.resolve === undefined), `port type ${type.name}: a name family needs a resolver`);
    typesByKind.set(type.kind, type);
    if (type.family !== undefined) {
      assert(!typesByFamily.has(type.family), `names of family ${type.family} registered twice`);
      typesByFamily.set(type.family, type);
    }
    Registry.setKindOperations(type.kind, { lastUser: type.lastUser ?? null, destroy: type.destroy ?? null });
  }
}

/** The port type resolving names of `family`, if the build has one. */
export function portTypeOfFamily(family: NameFamily): PortType | undefined {
  return typesByFamily.get(family);
}

/**
 * Resolves `spec.parentName` as a pipe's parent through the port types that can be one; -1 when
 * none claims it (the pipe type then makes a memory-only parent).
 */
export function resolvePipeParent(reg: Registry, spec: PortSpec, opts: OpenOptions): number {
  for (const type of typesByKind.values()) {
    if (type.resolvePipeParent === undefined) continue;
    const index = type.resolvePipeParent(reg, spec, opts);
    if (index >= 0) return index;
  }
  return -1;
}

export interface OpenOptions {
  /** Extra buffers to request (netmap's nr_extra_bufs); also `@conf:extra-bufs=N` in the name. */
  extraBuffers?: number;
  /** Accept port names with any character but the separators (libnetmap's relaxed rule). */
  relaxedNames?: boolean;
  /** Do not flush TX rings on poll unless POLLOUT is asked (netmap's NR_NO_TX_POLL). */
  noTxPoll?: boolean;
  /** Allow opening a port owned by a switch daemon (used by the daemon itself). */
  owner?: boolean;
  /**
   * virtio-net header length of the port's frames, 0, 10 or 12 (netmap's NETMAP_REQ_PORT_HDR_SET);
   * also `@conf:vnet-hdr=N`. Set when the port is made (VALE ports, TAP ports); opening an
   * existing port with another length is EINVAL. Not given: whatever the port has.
   */
  vnetHdr?: number;
}

/** The virtio-net header length asked for by `opts` or the name (undefined: none asked). */
export function requestedVnetHdr(spec: PortSpec, opts: OpenOptions): number | undefined {
  const v = opts.vnetHdr ?? spec.conf.vnetHdr;
  if (v !== undefined && v !== 0 && v !== 10 && v !== 12) fail('EINVAL', `${spec.spec}: a virtio-net header is 0, 10 or 12 bytes, not ${String(v)}`);
  return v;
}

let openHandles = 0;
/** Port.pollSpinUs's default, µs: about two futex sleep/wake round trips on this VM's cores. */
const POLL_SPIN_US = 30;
/** futex_waitv's limit on words per wait. */
const MAX_WAIT_WORDS = 128;
const idleWord = new Int32Array(new SharedArrayBuffer(4));
const W_HWCUR = L.KR_HWCUR >>> 2, W_HWTAIL = L.KR_HWTAIL >>> 2;

export class Port {
  /** The name as given to openPort. */
  readonly spec: string;
  readonly parsed: PortSpec;
  /** Name of the port in the registry (netmap's nr_name). */
  readonly name: string;
  /** The shared views: every buffer of every port is inside mem.u8 (netmap's one memory region). */
  readonly mem: AddressSpace;
  readonly index: number;
  readonly kind: number;
  readonly memId: number;
  readonly token: number;
  /** Space offset of this handle's netmap_if. */
  readonly nifp: number;
  /** Bound rings, netmap order (NIC rings then host rings). */
  readonly txRings: Ring[];
  readonly rxRings: Ring[];
  /** Counts of the port's rings (bound or not), as in the netmap_if. */
  readonly numTxRings: number;
  readonly numRxRings: number;
  readonly numHostTxRings: number;
  readonly numHostRxRings: number;
  /** Extra buffers granted at open (may be fewer than requested). */
  readonly extraBuffers: number;
  readonly exclusive: boolean;
  readonly noTxPoll: boolean;
  /**
   * How long poll() keeps re-checking (one sync each time) before it sleeps on the futex, in
   * microseconds, when the machine has a CPU to spare (spare-cpu.ts: no more runnable threads
   * than CPUs); 0 sleeps at once. A peer busy on another core usually makes progress within
   * microseconds, sooner than a sleep and wake-up round trip (two processes on a pipe, 2 vCPUs:
   * ~15 Mpps sleeping at once, ~200 spinning); with more busy threads than cores the spinner would
   * take the CPU its peers need (pkt-gen tx, rx and a monitor on 2 cores: the receiver's CPU a
   * frame doubled), so then it sleeps at once. pkt-gen's --spin spins unconditionally.
   */
  pollSpinUs = POLL_SPIN_US;
  /** Length of the virtio-net header every frame of this port starts with (0: none). */
  readonly vnetHdrLen: number;
  readonly adapter: PortAdapter;
  private closed = false;
  /** Thread id of the thread that opened this handle; it marks the rings it is syncing. */
  private readonly me = selfTid();
  private readonly generation: number;
  private readonly waitAddrs: number[] = [];
  private readonly waitVals: number[] = [];
  /** The monitors of this port as this thread sees them; null for kinds that cannot have any. */
  private readonly taps: Taps | null;
  /** Whether syncs copy frames to copy monitors (else the port type's data path does). */
  private readonly copyInSync: boolean;

  /** @internal use openPort() */
  constructor(init: {
    spec: PortSpec; index: number; token: number; nifp: number; tx: Ring[]; rx: Ring[]; extra: number; noTxPoll: boolean;
  }) {
    const reg = registry();
    this.mem = reg.sp;
    this.spec = init.spec.spec;
    this.parsed = init.spec;
    this.index = init.index;
    this.name = reg.portName(init.index);
    this.kind = reg.portGet(init.index, L.PE_KIND);
    this.memId = reg.portGet(init.index, L.PE_MEM_ID);
    this.generation = reg.portGet(init.index, L.PE_GENERATION);
    this.numTxRings = reg.portGet(init.index, L.PE_NUM_TX);
    this.numRxRings = reg.portGet(init.index, L.PE_NUM_RX);
    this.numHostTxRings = reg.portGet(init.index, L.PE_NUM_HOST_TX);
    this.numHostRxRings = reg.portGet(init.index, L.PE_NUM_HOST_RX);
    this.token = init.token;
    this.nifp = init.nifp;
    this.txRings = init.tx;
    this.rxRings = init.rx;
    this.extraBuffers = init.extra;
    this.exclusive = init.spec.exclusive;
    this.noTxPoll = init.noTxPoll;
    this.vnetHdrLen = reg.portGet(init.index, L.PE_HDR_LEN);
    const type = typesByKind.get(this.kind);
    if (type === undefined) fail('EOPNOTSUPP', `ports of kind ${this.kind} (${this.name}) are not supported in this build`);
    this.adapter = type.adapter(this);
    this.taps = type.monitors === 'none' ? null : tapsOf(this.index);
    this.copyInSync = type.monitors !== 'self';
  }

  /**
   * The backend of an interface port's NIC rings: 'xdp native copy' (AF_XDP: program mode, bind
   * mode), 'packet' (AF_PACKET), 'tap'; null for other kinds of ports.
   */
  get backend(): string | null {
    this.checkOpen(); // an interface's backend reads its shared state, unmapped once closed
    return this.adapter.backend ?? null;
  }

  /** Head of this handle's extra-buffer list (ni_bufs_head); 0 when empty. */
  get bufsHead(): number {
    return this.mem.u32[(this.nifp + L.NIFP_BUFS_HEAD) >>> 2]!;
  }
  set bufsHead(idx: number) {
    this.mem.u32[(this.nifp + L.NIFP_BUFS_HEAD) >>> 2] = idx;
  }

  /** Space offset of buffer `idx` of this port's allocator. */
  bufOffset(idx: number): number {
    const r = this.txRings[0] ?? this.rxRings[0];
    assert(r !== undefined, 'port without rings');
    return r.bufOffset(idx);
  }

  /** NIOCTXSYNC: hands [hwcur, head) of every bound TX ring to the port. Never blocks. */
  txsync(): void {
    this.checkOpen();
    const rings = this.txRings;
    for (let i = 0; i < rings.length; i++) this.syncRing(rings[i]!, true);
  }

  /** NIOCRXSYNC: releases [hwcur, head) of every bound RX ring and fetches new packets. */
  rxsync(): void {
    this.checkOpen();
    const rings = this.rxRings;
    for (let i = 0; i < rings.length; i++) this.syncRing(rings[i]!, false);
  }

  /**
   * One ring's txsync or rxsync. When several handles bind the ring it runs under the ring's busy
   * word (netmap's nm_kr_tryget): a ring that another handle's thread is syncing at this moment
   * is skipped, as netmap skips a busy ring, so two syncs never interleave on one ring's state; a
   * busy word left by a thread that died in the middle of a sync is taken over. Returns the
   * adapter's verdict (true for a skipped ring).
   */
  private syncRing(ring: Ring, tx: boolean): boolean {
    const i32 = this.mem.i32;
    // The common case, one handle on the ring: nobody else can be syncing it, so no atomic
    // operations (two of them cost ~40 ns a sync in V8). A second handle that binds the ring
    // while this one is in a sync can overlap that one sync; the prologues repair whatever that
    // leaves, as they repair a user's scribbles.
    if (i32[(ring.offset + L.KR_USERS) >>> 2]! <= 1) return this.runSync(ring, tx);
    const w = (ring.offset + L.KR_BUSY) >>> 2;
    const me = this.me;
    const owner = Atomics.compareExchange(i32, w, 0, me);
    if (owner !== 0 && owner !== me && (ownerAlive(owner) || Atomics.compareExchange(i32, w, owner, me) !== owner)) return true;
    try {
      return this.runSync(ring, tx);
    } finally {
      Atomics.store(i32, w, 0);
    }
  }

  /** The adapter's sync; with monitors watching the port, and what they are owed around it. */
  private runSync(ring: Ring, tx: boolean): boolean {
    const taps = this.taps;
    if (taps === null || !taps.present()) return tx ? this.adapter.txsync(ring) : this.adapter.rxsync(ring);
    const u32 = this.mem.u32, w = ring.offset >>> 2, n = ring.numSlots;
    const zcopy = taps.zcopyTarget(ring.dir, ring.id) >= 0;
    if (tx) {
      const hwcur = u32[w + W_HWCUR]!, tail = u32[w + W_HWTAIL]!;
      const ok = this.adapter.txsync(ring);
      const newHwcur = u32[w + W_HWCUR]!, newTail = u32[w + W_HWTAIL]!;
      if (hwcur < n && newHwcur < n && this.copyInSync) taps.copySlots(ring, hwcur, newHwcur);
      // zero copy: the slots the port finished with ([old tail + 1, new tail + 1)) go to the monitor
      if (zcopy && tail < n && newTail < n) taps.swapSlots(ring, tail + 1 === n ? 0 : tail + 1, newTail + 1 === n ? 0 : newTail + 1);
      return ok;
    }
    const hwtail = u32[w + W_HWTAIL]!;
    if (zcopy) {
      // zero copy: the slots the user released ([hwcur, head)) go to the monitor before the port
      // takes them back (a pipe then hands the monitor's buffers to the sender)
      const hwcur = u32[w + W_HWCUR]!, head = ring.head;
      if (hwcur < n && head < n && hwtail < n && (hwcur <= hwtail ? hwcur <= head && head <= hwtail : head >= hwcur || head <= hwtail)) taps.swapSlots(ring, hwcur, head);
    }
    const ok = this.adapter.rxsync(ring);
    const newHwtail = u32[w + W_HWTAIL]!;
    if (hwtail < n && newHwtail < n && this.copyInSync) taps.copySlots(ring, hwtail, newHwtail);
    return ok;
  }

  /**
   * Frames lost before they reached this handle's RX rings' readers, counted since the rings and
   * sockets were made: the rings' drops and, on an interface, the kernel's (PortAdapter.kernelDrops:
   * a system call or two). Callers take differences (a run's start and end, a capture's open).
   */
  rxDrops(): number {
    let drops = this.adapter.kernelDrops?.() ?? 0;
    for (const r of this.rxRings) drops += r.drops;
    return drops;
  }

  /** One pass of netmap_poll without sleeping: returns the ready events (and POLLERR). */
  pollOnce(events: number): number {
    this.checkOpen();
    let revents = 0;
    const wantTx = (events & POLLOUT) !== 0;
    if (wantTx || !this.noTxPoll) {
      const rings = this.txRings;
      for (let i = 0; i < rings.length; i++) {
        const r = rings[i]!;
        if (!this.syncRing(r, true)) revents |= POLLERR;
        if (wantTx && r.cur !== r.tail) revents |= POLLOUT;
      }
    }
    if ((events & POLLIN) !== 0) {
      const rings = this.rxRings;
      for (let i = 0; i < rings.length; i++) {
        const r = rings[i]!;
        if (!this.syncRing(r, false)) revents |= POLLERR;
        if (r.cur !== r.tail) revents |= POLLIN;
      }
    }
    return revents;
  }

  /**
   * netmap's poll(): syncs, and if nothing asked for is ready sleeps (futex on the rings' wake
   * words, no spinning) until a peer makes progress or `timeoutMs` passes (negative: forever).
   * Blocks the calling thread: use wait() on the main thread.
   */
  poll(events: number, timeoutMs: number): number {
    let revents = this.pollOnce(events);
    if ((revents & (events | POLLERR)) !== 0 || timeoutMs === 0) return revents;
    // Spin before sleeping (pollSpinUs) while a CPU is to spare: bounded, so an idle poller still
    // sleeps.
    if (this.pollSpinUs > 0 && (native.readClock(), spareCpu(native.clock[0]!))) {
      // (times a double: `/ 1000` let V8 speculate an integer quotient when the first spins
      // it saw had whole milliseconds, and deoptimize poll when pollSpinUs later became 30)
      const spinUntil = native.clock[0]! + this.pollSpinUs * 1e-3;
      for (let k = 1; ; k++) {
        revents = this.pollOnce(events);
        if ((revents & (events | POLLERR)) !== 0) return revents;
        if ((k & 7) === 0 && (native.readClock(), native.clock[0]! > spinUntil)) break;
      }
    }
    const deadline = timeoutMs < 0 ? Infinity : native.monotonicMs() + timeoutMs;
    for (;;) {
      const n = this.armWait(events);
      revents = this.pollOnce(events);
      if ((revents & (events | POLLERR)) === 0) {
        const left = deadline === Infinity ? -1 : deadline - native.monotonicMs();
        if (left > 0 || left === -1) {
          const cap = this.adapter.sleepCapMs?.() ?? 1000;
          const slice = left === -1 ? cap : Math.min(left, cap);
          // No ring to watch (POLLOUT on an RX-only binding...): nothing can wake us, wait it out
          // (futex_waitv with no words fails at once and would spin). Beyond futex_waitv's 128
          // words, rings past the first 128 are only seen by short re-polls.
          if (n === 0) Atomics.wait(idleWord, 0, 0, slice);
          else native.futexWaitAny(this.waitAddrs, this.waitVals, n, n > MAX_WAIT_WORDS ? Math.min(slice, 2) : slice);
        }
      }
      this.disarmWait(events);
      if ((revents & (events | POLLERR)) !== 0) return revents;
      revents = this.pollOnce(events);
      if ((revents & (events | POLLERR)) !== 0 || native.monotonicMs() >= deadline) return revents;
    }
  }

  /**
   * Announces this thread as a sleeper on the rings `events` concerns and records their wake
   * words and current values; returns how many. Always pair with disarmWait().
   */
  armWait(events: number): number {
    // plain loops, no closure: sleepers run in data-path loops, which allocate nothing
    let n = 0;
    const a = this.waitAddrs, v = this.waitVals, mem = this.mem;
    for (let pass = 0; pass < 2; pass++) {
      if ((events & (pass === 0 ? POLLOUT : POLLIN)) === 0) continue;
      const rings = pass === 0 ? this.txRings : this.rxRings;
      for (let i = 0; i < rings.length; i++) {
        const r = rings[i]!;
        sync.addWaiter(mem, r.offset, 1);
        a[n] = mem.absolute(r.offset + L.KR_WAKE);
        v[n] = sync.wakeSeq(mem, r.offset);
        n++;
        this.adapter.armed?.(r);
      }
    }
    a.length = n;
    v.length = n;
    return n;
  }

  disarmWait(events: number): void {
    for (let pass = 0; pass < 2; pass++) {
      if ((events & (pass === 0 ? POLLOUT : POLLIN)) === 0) continue;
      const rings = pass === 0 ? this.txRings : this.rxRings;
      for (let i = 0; i < rings.length; i++) {
        sync.addWaiter(this.mem, rings[i]!.offset, -1);
        this.adapter.disarmed?.(rings[i]!);
      }
    }
  }

  /**
   * Appends the absolute addresses and values of the wake words armWait() armed to `addresses`
   * and `values` (for a caller that sleeps on several ports at once). Allocates nothing once the
   * caller's arrays have grown to their working size: sleepers run in data-path loops.
   */
  appendArmedWords(addresses: number[], values: number[]): void {
    const a = this.waitAddrs, v = this.waitVals;
    for (let i = 0; i < a.length; i++) { addresses.push(a[i]!); values.push(v[i]!); }
  }

  /**
   * Copies `len` bytes from `src` (an offset in mem.u8) into the next free slot of the first bound
   * TX ring with room, splitting into NS_MOREFRAG fragments if needed (nmport_inject). Returns
   * len, or 0 when no ring has room. Does not sync.
   */
  inject(src: Uint8Array, start: number, len: number): number {
    const u8 = this.mem.u8;
    for (const r of this.txRings) {
      const frags = Math.max(1, Math.ceil(len / r.bufSize));
      if (r.space() < frags) continue;
      let i = r.head, done = 0;
      for (let f = 0; f < frags; f++) {
        const chunk = Math.min(r.bufSize, len - done);
        u8.set(src.subarray(start + done, start + done + chunk), r.slotBufOffset(i));
        r.setSlotLen(i, chunk);
        r.setSlotFlags(i, f + 1 < frags ? L.NS_MOREFRAG : 0);
        done += chunk;
        i = r.next(i);
      }
      r.advance(i);
      return len;
    }
    return 0;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private checkOpen(): void {
    if (this.closed) fail('ENXIO', `port ${this.spec} is closed`);
  }

  /** Unbinds the rings, frees the extra buffers on the list, destroys ephemeral ports. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    openHandles--;
    try { this.adapter.close?.(); } catch { /* the port's teardown must not stop the release */ }
    const reg = registry();
    reg.locked(() => {
      if (!reg.portLive(this.index) || reg.portGet(this.index, L.PE_GENERATION) !== this.generation) return;
      const slot = reg.findHandle(this.index, this.token);
      if (slot < 0) return;
      reg.releaseHandle(this.index, slot);
      if (reg.portGet(this.index, L.PE_USERS) === 0) reg.lastUserGone(this.index);
    });
  }
}

// ---- open ---------------------------------------------------------------------------------------

interface Binding { tx: [number, number]; rx: [number, number] }

/** Rings selected by the mode (netmap_interp_ringid), as index ranges in the ring table. */
function bindRings(reg: Registry, index: number, spec: PortSpec): Binding {
  const ntx = reg.portGet(index, L.PE_NUM_TX), nrx = reg.portGet(index, L.PE_NUM_RX);
  const nhtx = reg.portGet(index, L.PE_NUM_HOST_TX), nhrx = reg.portGet(index, L.PE_NUM_HOST_RX);
  let tx: [number, number], rx: [number, number];
  const name = spec.spec;
  switch (spec.mode) {
    case 'ALL_NIC': tx = [0, ntx]; rx = [0, nrx]; break;
    case 'SW':
      if (nhtx === 0 && nhrx === 0) fail('EINVAL', `${name}: port ${reg.portName(index)} has no host rings`);
      tx = [ntx, ntx + nhtx]; rx = [nrx, nrx + nhrx]; break;
    case 'NIC_SW':
      if (nhtx === 0 && nhrx === 0) fail('EINVAL', `${name}: port ${reg.portName(index)} has no host rings`);
      tx = [0, ntx + nhtx]; rx = [0, nrx + nhrx]; break;
    case 'ONE_NIC': {
      const id = spec.ringId;
      if (id >= ntx && id >= nrx) fail('EINVAL', `${name}: ring ${id} out of range (port has ${ntx} tx and ${nrx} rx rings)`);
      const t = id < ntx ? id : 0, r = id < nrx ? id : 0;
      tx = [t, t + 1]; rx = [r, r + 1]; break;
    }
    case 'ONE_SW': {
      const id = spec.ringId;
      if (nhtx === 0 && nhrx === 0) fail('EINVAL', `${name}: port ${reg.portName(index)} has no host rings`);
      if (id >= nhtx && id >= nhrx) fail('EINVAL', `${name}: host ring ${id} out of range (port has ${nhtx} host tx and ${nhrx} host rx rings)`);
      const t = ntx + (id < nhtx ? id : 0), r = nrx + (id < nhrx ? id : 0);
      tx = [t, t + 1]; rx = [r, r + 1]; break;
    }
  }
  if (spec.rxRingsOnly) tx = [0, 0];
  if (spec.txRingsOnly) rx = [0, 0];
  return { tx, rx };
}

/**
 * @conf: keys the named kind of port cannot honour are refused (EINVAL), never ignored: host
 * rings exist only on interfaces (VALE ports and pipes have none: netmap's are a fake pair),
 * backend= picks an interface's sockets. (Monitors refuse every key but slots= and extra-bufs=
 * themselves; vnet-hdr= on a pipe is refused by openPort, on an existing port compared.)
 */
function refuseConf(name: string, spec: PortSpec): void {
  if (spec.zcopyMonitor || spec.monitorTx || spec.monitorRx) return;
  const c = spec.conf;
  const what = spec.pipe !== null ? 'a pipe' : spec.subsystem === 'vale' ? 'a VALE port' : null;
  if (what === null) return;
  if (c.hostTxRings !== undefined || c.hostRxRings !== undefined) {
    fail('EINVAL', `${name}: ${what} has no host rings; @conf:host-rings (host-tx-rings, host-rx-rings) applies to interfaces (netmap:IF)`);
  }
  if (c.backend !== undefined) {
    fail('EINVAL', `${name}: ${what} has no sockets to choose; @conf:backend=xdp|packet applies to interfaces (netmap:IF)`);
  }
}

/**
 * Opens a port by its netmap name (`netmap:IF`, `valeX:P`, `NAME{N`, `NAME}N`, with `-N ^ * /flags
 * @memid @conf:...`). Errors are NetmapErrors with netmap's errno names.
 */
export function openPort(name: string, opts: OpenOptions = {}): Port {
  if (typeof name !== 'string') fail('EINVAL', 'the port name must be a string');
  const parsed = parsePortSpec(name, { strictNames: opts.relaxedNames !== true });
  const reg = registry();
  reg.collectGarbage();
  const init = reg.locked(() => {
    const spec = parsed.share === null ? parsed : sharing(reg, parsed, opts);
    let index = -1;
    const vnetHdr = requestedVnetHdr(spec, opts);
    refuseConf(name, spec);
    if (spec.zcopyMonitor || spec.monitorTx || spec.monitorRx) {
      // as netmap_get_na: the monitor flags come first, whatever the rest of the name is
      const monitors = typesByFamily.get('monitor');
      if (monitors === undefined) fail('EOPNOTSUPP', `${name}: monitor ports are not available in this build`);
      index = monitors.resolve!(reg, spec, opts);
    } else if (spec.pipe !== null) {
      if (vnetHdr !== undefined && vnetHdr !== 0) fail('EINVAL', `${name}: pipes carry no virtio-net header`);
      const pipes = typesByFamily.get('pipe');
      if (pipes === undefined) fail('EOPNOTSUPP', 'pipes are not available in this build');
      index = pipes.resolve!(reg, spec, opts);
    } else if (spec.subsystem === 'vale') {
      const vale = typesByFamily.get('vale');
      if (vale === undefined) fail('EOPNOTSUPP', 'VALE switches are not available in this build');
      index = vale.resolve!(reg, spec, opts);
    } else {
      // (the interface resolver finds existing entries itself: it checks their namespace)
      const interfaces = typesByFamily.get('interface');
      index = interfaces !== undefined ? interfaces.resolve!(reg, spec, opts) : reg.findPort(spec.name);
      if (index < 0) fail('ENXIO', `${name}: no such interface '${spec.name}'`);
    }
    assert(reg.portLive(index), 'resolver returned a dead port');
    // a persistent VALE port opened by its own name (netmap:vp0) is known only now; it existed
    // before this open, so nothing made here is left behind by the refusal
    const kind = reg.portGet(index, L.PE_KIND);
    if (kind === L.PORT_KIND_VALE && spec.subsystem === 'netmap' && spec.pipe === null) refuseConf(name, { ...spec, subsystem: 'vale' });
    if ((reg.portGet(index, L.PE_FLAGS) & L.PORT_FLAG_ATTACHED) !== 0 && opts.owner !== true) {
      fail('EBUSY', `${name}: port ${reg.portName(index)} is attached to a switch and owned by it`);
    }
    if (vnetHdr !== undefined && vnetHdr !== reg.portGet(index, L.PE_HDR_LEN)) {
      fail('EINVAL', `${name}: port ${reg.portName(index)} has a virtio-net header of ${reg.portGet(index, L.PE_HDR_LEN)} bytes, not ${vnetHdr}`);
    }
    if (spec.memId !== 0 && spec.memId !== reg.portGet(index, L.PE_MEM_ID)) {
      fail('EINVAL', `${name}: port ${reg.portName(index)} uses memory region ${reg.portGet(index, L.PE_MEM_ID)}, not ${spec.memId}`);
    }
    return register(reg, index, spec, opts);
  });
  openHandles++;
  try {
    return new Port(init);
  } catch (e) {
    reg.locked(() => {
      const slot = reg.findHandle(init.index, init.token);
      if (slot >= 0) reg.releaseHandle(init.index, slot);
      if (reg.portLive(init.index) && reg.portGet(init.index, L.PE_USERS) === 0) reg.lastUserGone(init.index);
    });
    openHandles--;
    throw e;
  }
}

function register(reg: Registry, index: number, spec: PortSpec, opts: OpenOptions) {
  const u32 = reg.sp.u32;
  // Map the port's region in this thread before touching its rings (a thread or process that did
  // not create the port has not mapped it yet).
  const region = reg.region(reg.portGet(index, L.PE_MEM_ID));
  const b = bindRings(reg, index, spec);
  const numTxAll = reg.portGet(index, L.PE_NUM_TX) + reg.portGet(index, L.PE_NUM_HOST_TX);
  const bound: number[] = [];
  for (let k = b.tx[0]; k < b.tx[1]; k++) bound.push(k);
  for (let k = b.rx[0]; k < b.rx[1]; k++) bound.push(numTxAll + k);
  for (const k of bound) {
    const ring = reg.ringOffset(index, k);
    const excl = u32[(ring + L.KR_EXCLUSIVE) >>> 2]!;
    if (excl !== 0) fail('EBUSY', `${spec.spec}: ring ${k} of ${reg.portName(index)} is held exclusively by another user`);
    if (spec.exclusive && u32[(ring + L.KR_USERS) >>> 2]! > 0) fail('EBUSY', `${spec.spec}: ring ${k} of ${reg.portName(index)} is in use, cannot open it exclusively`);
  }
  const token = reg.nextToken();
  const slot = reg.addHandle(index, token);
  const total = reg.totalRings(index);
  let nifp = 0;
  try {
    nifp = region.allocObject(L.nifpBytes(total));
  } catch (e) {
    reg.dropHandle(index, slot);
    throw e;
  }
  u32[reg.handleField(index, slot, L.HR_NIFP)] = nifp;
  u32[reg.handleField(index, slot, L.HR_RING_MASK_TX)] = b.tx[0] | (b.tx[1] << 16);
  u32[reg.handleField(index, slot, L.HR_RING_MASK_RX)] = b.rx[0] | (b.rx[1] << 16);
  u32[reg.handleField(index, slot, L.HR_FLAGS)] = spec.exclusive ? 1 : 0;
  for (const k of bound) {
    const ring = reg.ringOffset(index, k);
    u32[(ring + L.KR_USERS) >>> 2] = u32[(ring + L.KR_USERS) >>> 2]! + 1;
    if (spec.exclusive) u32[(ring + L.KR_EXCLUSIVE) >>> 2] = token;
  }
  // netmap_if
  const sp = reg.sp;
  writeLatin1(sp.u8, nifp + L.NIFP_NAME, reg.portName(index), 15);
  u32[(nifp + L.NIFP_VERSION) >>> 2] = L.NETMAP_API;
  u32[(nifp + L.NIFP_FLAGS) >>> 2] = L.NI_PRIV_MEM;
  u32[(nifp + L.NIFP_TX_RINGS) >>> 2] = reg.portGet(index, L.PE_NUM_TX);
  u32[(nifp + L.NIFP_RX_RINGS) >>> 2] = reg.portGet(index, L.PE_NUM_RX);
  u32[(nifp + L.NIFP_HOST_TX_RINGS) >>> 2] = reg.portGet(index, L.PE_NUM_HOST_TX);
  u32[(nifp + L.NIFP_HOST_RX_RINGS) >>> 2] = reg.portGet(index, L.PE_NUM_HOST_RX);
  for (const k of bound) sp.view.setBigInt64(nifp + L.NIFP_RING_OFS + 8 * k, BigInt(reg.ringOffset(index, k) - nifp), true);
  // extra buffers: a list linked through the first word of each buffer, LIFO, 0-terminated
  const want = Math.max(0, Math.min(opts.extraBuffers ?? spec.conf.extraBufs ?? 0, region.numBufs));
  let head = 0, granted = 0;
  for (; granted < want; granted++) {
    const idx = region.allocBuf();
    if (idx === 0) break;
    u32[region.bufOffset(idx) >>> 2] = head;
    head = idx;
  }
  u32[(nifp + L.NIFP_BUFS_HEAD) >>> 2] = head;
  const numBufs = region.numBufs;
  const numTx = reg.portGet(index, L.PE_NUM_TX), numRx = reg.portGet(index, L.PE_NUM_RX);
  const tx: Ring[] = [], rx: Ring[] = [];
  for (let k = b.tx[0]; k < b.tx[1]; k++) tx.push(new Ring(sp, reg.ringOffset(index, k), numBufs, k >= numTx));
  for (let k = b.rx[0]; k < b.rx[1]; k++) rx.push(new Ring(sp, reg.ringOffset(index, numTxAll + k), numBufs, k >= numRx));
  return { spec, index, token, nifp, tx, rx, extra: granted, noTxPoll: opts.noTxPoll === true };
}

/**
 * `@share=PORT` (libnetmap): the memory region of the open port PORT, as if `@N` had named it
 * (a conflicting `@N` is EINVAL). A port created by the open (a VALE port, a pipe's memory-only
 * parent is not) is made in that region; an existing port must already be in it.
 */
function sharing(reg: Registry, spec: PortSpec, opts: OpenOptions): PortSpec {
  const other = parsePortSpec(spec.share!, { strictNames: opts.relaxedNames !== true });
  let index = reg.findPort(other.name);
  if (index < 0 && other.subsystem === 'vale') index = reg.findPort(other.portName); // a persistent port
  if (index < 0) fail('ENXIO', `${spec.spec}: @share names ${other.name}, which is not an open port`);
  const memId = reg.portGet(index, L.PE_MEM_ID);
  if (spec.memId !== 0 && spec.memId !== memId) fail('EINVAL', `${spec.spec}: @${spec.memId} conflicts with @share=${spec.share} (memory region ${memId})`);
  if (spec.zcopyMonitor || spec.monitorTx || spec.monitorRx) fail('EINVAL', `${spec.spec}: @share does not apply to a monitor (a copy monitor has its own memory, /z the watched port's)`);
  return { ...spec, memId };
}

/** Handles open in this thread (for tests and leak checks). */
export function openHandleCount(): number {
  return openHandles;
}

export { NetmapError };
