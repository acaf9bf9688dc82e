/**
 * Receive hooks (netmap's bwrap, receive side): what a NIC RX ring of an interface port receives
 * goes to a hook where it lies in the kernel's ring, instead of into the ring's slots, so that a
 * forwarder that needs no slots (the attach daemon, into its switch) saves a copy and a pass.
 * Plugged into the interface port as the ring's RingDiverter (interfaces/port.ts).
 */
import { fail } from '../errors.js';
import { space } from '../memory/space.js';
import type { Ring } from '../rings/ring.js';
import * as sync from '../rings/sync.js';
import type { Port } from '../ports/port.js';
import { setRingDiverter, divertedFrames, type RingDiverter } from '../interfaces/port.js';
import { mapScratch, VNET_HDR_LEN, RX_VLAN_VALID, RX_CSUM_NOT_READY, type PacketReceiver } from '../interfaces/packet.js';
import type { GsoSplitter } from '../interfaces/gso.js';

/**
 * Takes frames received on a NIC RX ring where they lie: `n` frames at address-space offsets
 * `offs[0..n)` with lengths `lens[0..n)` (any alignment; readable 64 bytes past their end), valid
 * during the call only.
 */
export type ReceiveHook = (offs: Float64Array, lens: Uint16Array, n: number) => void;
/**
 * Offered a GSO super-frame whole (`len` bytes at space offset `at`, its virtio-net header at
 * `hdrAt`) before it is cut; returns true if it took it.
 */
export type WholeFrameHook = (at: number, len: number, hdrAt: number) => boolean;
/** Frames a hook gets per call, at most. */
export const HOOK_BATCH = 256;
/** Scratch buffers (2 KiB) for frames a hook gets after a fix-up: the segments of a GSO frame. */
const HOOK_FIX_SLOTS = 64, HOOK_FIX_SIZE = 2048;

/** The diverter of one hooked ring. */
class HookDiverter implements RingDiverter {
  drops = 0;
  private readonly hook: ReceiveHook;
  private readonly whole: WholeFrameHook | undefined;
  private readonly burst: number;
  /** Scratch for frames the hook gets after a fix-up (HOOK_FIX_SLOTS buffers; -1 not made yet). */
  private scratch = -1;
  private readonly offs = new Float64Array(Math.max(HOOK_BATCH, HOOK_FIX_SLOTS));
  private readonly lens = new Uint16Array(Math.max(HOOK_BATCH, HOOK_FIX_SLOTS));

  constructor(hook: ReceiveHook, whole: WholeFrameHook | undefined, burst: number) {
    this.hook = hook;
    this.whole = whole;
    this.burst = burst;
  }

  /**
   * Up to `burst` frames go to the hook where they lie in the kernel's ring, in batches, without
   * becoming slots; those needing a fix-up (VLAN tag, partial checksum, GSO cut) are made in the
   * scratch area first, after what came before them was handed over (order is kept). Counted on
   * the ring as received. Returns the frames handed over.
   */
  divert(ring: Ring, rx: PacketReceiver, gso: GsoSplitter): number {
    if (!rx.perFrame) return 0;
    if (this.scratch < 0) this.scratch = mapScratch(HOOK_FIX_SLOTS * HOOK_FIX_SIZE);
    const hook = this.hook, whole = this.whole, burst = this.burst;
    const offs = this.offs, lens = this.lens, scratch = this.scratch;
    const u8 = ring.sp.u8;
    const bufSize = ring.bufSize;
    let n = 0, packets = 0, bytes = 0, drops = 0;
    for (let taken = 0; taken < burst; taken++) {
      const at = rx.nextKept();
      if (at < 0) break;
      const len = rx.length;
      if ((rx.gsoType & 0x7f) === 0 && (rx.status & (RX_VLAN_VALID | RX_CSUM_NOT_READY)) === 0 && !rx.fromQueue) {
        if (len < rx.wireLength || len > bufSize) { drops++; continue; }
        offs[n] = at;
        lens[n] = len;
        n++;
        packets++;
        bytes += len;
        if (n === HOOK_BATCH) { hook(offs, lens, n); n = 0; rx.release(); }
        continue;
      }
      // a fix-up: first what came before it
      if (n > 0) { hook(offs, lens, n); n = 0; }
      if ((rx.gsoType & 0x7f) !== 0) {
        if (len !== rx.wireLength || (rx.status & RX_VLAN_VALID) !== 0) { drops++; continue; }
        // whole, if the hook can pass it on with its virtio-net header (just before the frame)
        if (whole !== undefined && whole(at, len, at - VNET_HDR_LEN)) { packets++; bytes += len; continue; }
        if (!gso.begin(u8, at, len, rx.gsoType, rx.gsoSize)) { drops++; continue; }
        let m = 0;
        for (let segment = 0; segment < gso.count; segment++) {
          const segmentLength = gso.segmentLength(segment);
          if (segmentLength > HOOK_FIX_SIZE || segmentLength > bufSize) { drops++; continue; }
          offs[m] = scratch + m * HOOK_FIX_SIZE;
          lens[m] = gso.emit(segment, offs[m]!);
          packets++;
          bytes += lens[m]!;
          if (++m === HOOK_FIX_SLOTS) { hook(offs, lens, m); m = 0; }
        }
        if (m > 0) hook(offs, lens, m);
      } else if (len < rx.wireLength || len > bufSize) {
        drops++;
      } else {
        offs[0] = scratch;
        lens[0] = rx.copyFrame(scratch, HOOK_FIX_SIZE);
        packets++;
        bytes += lens[0]!;
        hook(offs, lens, 1);
      }
    }
    if (n > 0) hook(offs, lens, n);
    rx.release();
    this.drops += drops;
    if (packets > 0 || drops > 0) sync.count(ring.sp, ring.offset, packets, bytes, drops);
    return packets;
  }

  close(): void {
    if (this.scratch >= 0) space().unmapLocal(this.scratch, HOOK_FIX_SLOTS * HOOK_FIX_SIZE);
    this.scratch = -1;
  }
}

/**
 * Sends what NIC RX ring `k` of `port` receives to `hook` instead of into the ring's slots. The
 * port's rxsync (poll, pollOnce) then calls the hook with up to `burst` frames (so that a busy
 * ring leaves time for the rest); the ring stays empty. `whole`, if given, is offered GSO
 * super-frames before they are cut. Needs a per-frame receiver, as netmap:IF ports have. `null`
 * gives the frames back to the ring. `hookedFrames(port)` counts what hooks of that handle took.
 */
export function setReceiveHook(port: Port, k: number, hook: ReceiveHook | null, burst = 1024, whole: WholeFrameHook | null = null): void {
  if (!Number.isInteger(burst) || burst < 1 || burst > 65536) fail('EINVAL', `burst must be 1 to 65536, not ${burst}`);
  setRingDiverter(port, k, hook === null ? null : new HookDiverter(hook, whole ?? undefined, burst));
}

/** Frames the receive hooks of `port` (this handle) have taken so far. */
export function hookedFrames(port: Port): number {
  return divertedFrames(port);
}
