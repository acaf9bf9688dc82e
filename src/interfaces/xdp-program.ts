/**
 * The XDP side of the AF_XDP backend: an XSKMAP with one entry per queue, the redirect program
 * (five instructions: send the frame to the socket of its RX queue; when that queue has none,
 * XDP_PASS, or XDP_DROP where the program is also the wire cut of netmap's split), and its attachment with BPF_LINK_CREATE — a link, so it goes away with its last
 * descriptor, including when the process dies (an IFLA_XDP netlink attach would stay behind).
 * Native (driver) mode where the driver has it, SKB (generic) mode otherwise.
 */
import { NetmapError, fail } from '../errors.js';
import * as native from '../native/index.js';
import {
  Asm, bpf, bpfAttr, createLinkTry, loadProgram, BPF_MAP_CREATE, BPF_MAP_UPDATE_ELEM, BPF_MAP_TYPE_XSKMAP,
  BPF_PROG_TYPE_XDP, BPF_XDP, BPF_FUNC_redirect_map, BPF_F_XDP_HAS_FRAGS,
} from '../native/bpf.js';
import { koffi } from '../native/index.js';

export const XDP_FLAGS_SKB_MODE = 2, XDP_FLAGS_DRV_MODE = 4;
export const XDP_DROP = 1, XDP_PASS = 2;
/** Offset of rx_queue_index in `struct xdp_md`. */
const XDP_MD_RX_QUEUE = 16;
const ERRNO_EBUSY = 16, ERRNO_EEXIST = 17, ERRNO_EPERM = 1;

/**
 * The redirect program for XSKMAP `mapFd`: redirect_map(map, ctx->rx_queue_index, unbound), where
 * `unbound` (the verdict for a queue without a socket) is XDP_PASS or XDP_DROP.
 */
export function redirectProgram(mapFd: number, unbound: number = XDP_PASS): Buffer {
  if (unbound !== XDP_PASS && unbound !== XDP_DROP) fail('EINVAL', `the verdict for a queue without a socket is XDP_PASS or XDP_DROP, not ${unbound}`);
  return new Asm()
    .load(4, 2, 1, XDP_MD_RX_QUEUE)
    .ldImm64(1, mapFd, true)
    .movImm(3, unbound)
    .call(BPF_FUNC_redirect_map)
    .exit()
    .build();
}

/**
 * What attachXdp made: two descriptors (close both, or let the process end). The program's own
 * descriptor is closed once linked: the link holds the program, the program the map.
 */
export interface XdpAttachment {
  mapFd: number;
  linkFd: number;
  /** 'native' (driver mode) or 'skb' (generic mode). */
  mode: 'native' | 'skb';
  /** Whether the program accepts multi-buffer frames (loaded with BPF_F_XDP_HAS_FRAGS). */
  frags: boolean;
  /** Whether frames of queues without a socket are dropped (XDP_DROP) rather than passed on. */
  dropsUnbound: boolean;
}

export interface AttachOptions {
  /**
   * Drop the frames of queues that have no socket instead of passing them to the stack — netmap's
   * wire cut, with no tc program of its own — where the program runs in the driver (native
   * mode). In SKB mode the program is a pass-through one whatever this says (frames turned into
   * ingress by the split might meet a generic-mode program there), and `dropsUnbound` is false.
   */
  dropUnbound?: boolean;
}

/**
 * Creates the XSKMAP (`queues` entries), loads the program and links it to interface `ifindex`.
 * EBUSY when another XDP program holds the interface's hook; EOPNOTSUPP when XDP cannot be
 * attached at all; EPERM when not root. Undoes its work on failure.
 */
export function attachXdp(ifname: string, ifindex: number, queues: number, opts: AttachOptions = {}): XdpAttachment {
  const fds: number[] = [];
  const drop = opts.dropUnbound === true;
  try {
    const attr = bpfAttr();
    attr.writeUInt32LE(BPF_MAP_TYPE_XSKMAP, 0);
    attr.writeUInt32LE(4, 4);
    attr.writeUInt32LE(4, 8);
    attr.writeUInt32LE(queues, 12);
    attr.write('nmts_xsks', 28, 15, 'latin1');
    const mapFd = bpf(BPF_MAP_CREATE, attr, 'BPF_MAP_CREATE (XSKMAP)');
    fds.push(mapFd);
    let frags = true;
    const load = (unbound: number): number => {
      const insns = redirectProgram(mapFd, unbound);
      if (frags) {
        try {
          return loadProgram({ type: BPF_PROG_TYPE_XDP, insns, name: 'nmts_xsk', expectedAttachType: BPF_XDP, flags: BPF_F_XDP_HAS_FRAGS });
        } catch (e) {
          if (!(e instanceof NetmapError) || e.code !== 'EINVAL') throw e;
          frags = false; // a kernel before multi-buffer XDP (5.18)
        }
      }
      return loadProgram({ type: BPF_PROG_TYPE_XDP, insns, name: 'nmts_xsk', expectedAttachType: BPF_XDP });
    };
    let progFd = load(drop ? XDP_DROP : XDP_PASS);
    fds.push(progFd);
    let mode: 'native' | 'skb' = 'native';
    let linkFd = createLinkTry(progFd, ifindex, BPF_XDP, XDP_FLAGS_DRV_MODE);
    if (linkFd === -ERRNO_EBUSY || linkFd === -ERRNO_EEXIST) {
      fail('EBUSY', `${ifname}: another XDP program is attached to the interface`);
    }
    if (linkFd === -ERRNO_EPERM) fail('EPERM', `${ifname}: attaching an XDP program needs root (CAP_NET_ADMIN, CAP_BPF)`);
    const nativeErr = linkFd;
    if (linkFd < 0) {
      mode = 'skb';
      if (drop) {
        native.closeFd(fds.pop()!);
        progFd = load(XDP_PASS);
        fds.push(progFd);
      }
      linkFd = createLinkTry(progFd, ifindex, BPF_XDP, XDP_FLAGS_SKB_MODE);
      if (linkFd === -ERRNO_EBUSY || linkFd === -ERRNO_EEXIST) fail('EBUSY', `${ifname}: another XDP program is attached to the interface`);
      if (linkFd < 0) {
        fail('EOPNOTSUPP', `${ifname}: cannot attach an XDP program (driver mode: errno ${-nativeErr}, generic mode: errno ${-linkFd})`);
      }
    }
    native.closeFd(progFd);
    return { mapFd, linkFd, mode, frags, dropsUnbound: drop && mode === 'native' };
  } catch (e) {
    for (const fd of fds) native.closeFd(fd);
    throw e;
  }
}

const updateAttr = bpfAttr();
const keyBuf = Buffer.alloc(4), valueBuf = Buffer.alloc(4);

/** Points entry `queue` of the XSKMAP at socket `sockFd` (after the socket's bind). */
export function setQueueSocket(mapFd: number, queue: number, sockFd: number): void {
  keyBuf.writeUInt32LE(queue, 0);
  valueBuf.writeUInt32LE(sockFd, 0);
  updateAttr.fill(0);
  updateAttr.writeUInt32LE(mapFd, 0);
  updateAttr.writeBigUInt64LE(BigInt(koffi.address(keyBuf) as unknown as number), 8);
  updateAttr.writeBigUInt64LE(BigInt(koffi.address(valueBuf) as unknown as number), 16);
  bpf(BPF_MAP_UPDATE_ELEM, updateAttr, `XSKMAP update (queue ${queue})`);
}

/** Closes what attachXdp made (the link first: the hook is free at once). */
export function detachXdp(a: { mapFd: number; linkFd: number }): void {
  for (const fd of [a.linkFd, a.mapFd]) if (fd > 0) native.closeFd(fd);
}
