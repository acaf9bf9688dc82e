/**
 * The vhost-user protocol's numbers (the subset a QEMU virtio-net device uses) and the virtio
 * feature bits this backend offers. A message is a 12-byte header (request u32, flags u32, size
 * u32) and `size` bytes of payload, with descriptors alongside (SCM_RIGHTS).
 */

export const VHOST_USER_GET_FEATURES = 1;
export const VHOST_USER_SET_FEATURES = 2;
export const VHOST_USER_SET_OWNER = 3;
export const VHOST_USER_RESET_OWNER = 4;
export const VHOST_USER_SET_MEM_TABLE = 5;
export const VHOST_USER_SET_LOG_BASE = 6;
export const VHOST_USER_SET_LOG_FD = 7;
export const VHOST_USER_SET_VRING_NUM = 8;
export const VHOST_USER_SET_VRING_ADDR = 9;
export const VHOST_USER_SET_VRING_BASE = 10;
export const VHOST_USER_GET_VRING_BASE = 11;
export const VHOST_USER_SET_VRING_KICK = 12;
export const VHOST_USER_SET_VRING_CALL = 13;
export const VHOST_USER_SET_VRING_ERR = 14;
export const VHOST_USER_GET_PROTOCOL_FEATURES = 15;
export const VHOST_USER_SET_PROTOCOL_FEATURES = 16;
export const VHOST_USER_GET_QUEUE_NUM = 17;
export const VHOST_USER_SET_VRING_ENABLE = 18;
export const VHOST_USER_SEND_RARP = 19;

/** Header flags: protocol version 1 in the low two bits, a reply, a reply wanted (REPLY_ACK). */
export const VHOST_USER_VERSION = 1, VHOST_USER_REPLY = 0x4, VHOST_USER_NEED_REPLY = 0x8;
export const HEADER_SIZE = 12;
/** Largest payload accepted (a memory table of 8 regions is 8 + 8 * 32 bytes). */
export const MAX_PAYLOAD = 4096;
/** Memory regions a table may have (VHOST_MEMORY_BASELINE_NREGIONS). */
export const MAX_REGIONS = 8;
/** SET_VRING_KICK/CALL/ERR: the ring index is in the low byte; this bit says no descriptor came. */
export const VRING_INDEX_MASK = 0xff, VRING_NOFD = 0x100;

/** virtio-net feature bits (low word) and VERSION_1 (bit 32). */
export const F_CSUM = 0, F_GUEST_CSUM = 1, F_GUEST_TSO4 = 7, F_GUEST_TSO6 = 8, F_HOST_TSO4 = 11, F_HOST_TSO6 = 12;
export const F_MRG_RXBUF = 15, F_PROTOCOL_FEATURES = 30, F_VERSION_1 = 32;

/** The features offered: the offloads the switch's virtio-net header ports carry, MRG_RXBUF, VERSION_1. */
export const OFFERED_FEATURES = [F_CSUM, F_GUEST_CSUM, F_GUEST_TSO4, F_GUEST_TSO6, F_HOST_TSO4, F_HOST_TSO6, F_MRG_RXBUF, F_PROTOCOL_FEATURES, F_VERSION_1]
  .reduce((acc, bit) => acc | (1n << BigInt(bit)), 0n);
/** Protocol features offered: none (no REPLY_ACK, no multiqueue, no migration log). */
export const OFFERED_PROTOCOL_FEATURES = 0n;

export function hasFeature(features: bigint, bit: number): boolean {
  return (features & (1n << BigInt(bit))) !== 0n;
}

/**
 * The virtio-net header length a device with `features` puts before every frame: 12 with
 * VERSION_1 or MRG_RXBUF (num_buffers), else 10. This is the VALE port's header length
 * (netmap's nr_hdr_len) when the guest takes the offloads.
 */
export function vnetHeaderLength(features: bigint): number {
  return hasFeature(features, F_VERSION_1) || hasFeature(features, F_MRG_RXBUF) ? 12 : 10;
}

/**
 * Whether frames may reach the guest as the switch carries them between header ports (GSO
 * super-frames, partial checksums): the guest accepted GUEST_CSUM, GUEST_TSO4 and GUEST_TSO6.
 * Otherwise the port takes no header and the switch cuts and completes them for it.
 */
export function guestTakesOffloads(features: bigint): boolean {
  return hasFeature(features, F_GUEST_CSUM) && hasFeature(features, F_GUEST_TSO4) && hasFeature(features, F_GUEST_TSO6);
}

const NAMES: Record<number, string> = {
  1: 'GET_FEATURES', 2: 'SET_FEATURES', 3: 'SET_OWNER', 4: 'RESET_OWNER', 5: 'SET_MEM_TABLE', 6: 'SET_LOG_BASE',
  7: 'SET_LOG_FD', 8: 'SET_VRING_NUM', 9: 'SET_VRING_ADDR', 10: 'SET_VRING_BASE', 11: 'GET_VRING_BASE',
  12: 'SET_VRING_KICK', 13: 'SET_VRING_CALL', 14: 'SET_VRING_ERR', 15: 'GET_PROTOCOL_FEATURES',
  16: 'SET_PROTOCOL_FEATURES', 17: 'GET_QUEUE_NUM', 18: 'SET_VRING_ENABLE', 19: 'SEND_RARP',
};

export function requestName(request: number): string {
  return NAMES[request] ?? `request ${request}`;
}
