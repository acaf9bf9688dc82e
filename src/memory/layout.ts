/**
 * Byte layout of everything netmap-ts keeps in shared memory. One place for every offset, so the
 * registry, the allocator, the rings and the switch agree, and so the layout version below changes
 * whenever any of them does.
 *
 * The netmap_if, netmap_ring and netmap_slot layouts are netmap's own (NETMAP_API 14, LP64):
 * a C program's offsets work here unchanged. The registry, the region header and the hidden
 * per-ring state ("kring", kept in the ring's opaque `sem` area) are ours.
 */

/** netmap's API version, reported as is. */
export const NETMAP_API = 14;
/** Version of the netmap-ts shared-memory layout; bump on any change below. */
export const LAYOUT_VERSION = 9;
export const MAGIC_REGISTRY = 0x4e4d5452; // 'NMTR'
export const MAGIC_REGION = 0x4e4d544d; // 'NMTM'

// ---- address space of one thread -------------------------------------------------------------
// Every thread reserves one range of address space and maps the shared files into it at offsets
// assigned by the registry, so that one ArrayBuffer covers the memory of every port: buffers of
// different ports are copied with one memmove, and every offset means the same thing in every
// process. Offsets of shared regions stay below 2^31 (32-bit integer arithmetic on them).
// What the data paths touch first lies below 2^30: V8 keeps integers up to that as small integers,
// and a larger offset handed to a builtin (copyWithin, in every frame copy of more than a few
// words) made a heap number per call — garbage per packet. So regions (the global one of netmap:IF
// ports among them) are placed first-fit from the bottom, and a thread's first private mappings
// (AF_PACKET rings: 18 MiB for a one-queue interface) just below 2^30. Beyond about 0.8 GiB of
// regions, or 128 MiB of private mappings in a thread, offsets pass 2^30 (correct, only boxed).
export const SPACE_REGISTRY_OFFSET = 0;
export const REGISTRY_SIZE = 16 << 20;
export const SPACE_SMI_LIMIT = 1 << 30;
export const SPACE_REGIONS_START = 32 << 20;
export const SPACE_REGIONS_END = 0x80000000; // 2 GiB
/** Private per-thread mappings (AF_PACKET rings and the like): first here, a hole in the shared range... */
export const SPACE_LOCAL_LOW_START = SPACE_SMI_LIMIT - (128 << 20);
export const SPACE_LOCAL_LOW_END = SPACE_SMI_LIMIT;
/** ...then above the shared range. */
export const SPACE_LOCAL_START = 0x80000000;
export const SPACE_LOCAL_END = 0xc0000000; // 3 GiB
export const SPACE_SIZE = SPACE_LOCAL_END;
/** Regions are placed in the space on this granularity. */
export const SPACE_GRANULE = 2 << 20;

// ---- registry file ---------------------------------------------------------------------------
export const REG_MAGIC = 0;
export const REG_LAYOUT = 4;
export const REG_API = 8;
export const REG_SIZE = 12;
export const REG_LOCK = 16; // robust lock: 16 owner pid, 20 owner tid, 24 futex word
export const REG_GENERATION = 32; // bumped whenever a region is created (u32)
export const REG_NEXT_TOKEN = 36; // handle tokens
/** 1 + the highest port index ever taken (never lowered): scans of the port table stop there. */
export const REG_PORTS_HIGH = 40;
export const REG_HEADER_SIZE = 4096;

export const MAX_REGIONS = 1024;
export const REGION_ENTRY_SIZE = 64;
export const REGIONS_TABLE = REG_HEADER_SIZE;
// region entry fields
export const RE_STATE = 0; // REGION_STATE_*
export const RE_SPACE_OFFSET = 4;
export const RE_SIZE = 8;
export const RE_GENERATION = 12;
export const RE_PORTS = 16; // ports living in the region (its refcount)
export const RE_FLAGS = 20;
export const REGION_STATE_FREE = 0;
export const REGION_STATE_LIVE = 1;

export const MAX_PORTS = 2048;
export const PORT_ENTRY_SIZE = 1024;
export const PORTS_TABLE = REGIONS_TABLE + MAX_REGIONS * REGION_ENTRY_SIZE;
// port entry fields
export const PE_STATE = 0; // PORT_STATE_*
/** A free entry of the port table. */
export const PORT_STATE_FREE = 0;
/** A port that exists: it can be opened, its rings are made. */
export const PORT_STATE_LIVE = 1;
/**
 * Being created, under the registry lock: an entry still in this state outside a locked section
 * was left by a creator that died (collectGarbage reclaims it). Transitions: FREE -> CREATING ->
 * LIVE -> FREE, and CREATING -> FREE when creation fails or its creator died.
 */
export const PORT_STATE_CREATING = 2;
export const PE_KIND = 4;
export const PE_MEM_ID = 8;
export const PE_FLAGS = 12;
export const PE_NUM_TX = 16; // NIC tx rings
export const PE_NUM_RX = 20;
export const PE_NUM_HOST_TX = 24;
export const PE_NUM_HOST_RX = 28;
export const PE_TX_SLOTS = 32;
export const PE_RX_SLOTS = 36;
export const PE_RINGS_TABLE = 40; // space offset of this port's ring table (u32 offsets of each ring)
export const PE_SWITCH = 44; // switch index + 1, 0 none
export const PE_SWITCH_PORT = 48; // index on its switch
export const PE_PEER = 52; // pipes: port index + 1 of the other end; 0 none
export const PE_PARENT = 56; // pipes: port index + 1 of the parent
export const PE_PIPES = 60; // parents: number of pipe pairs hanging on this port
export const PE_USERS = 64; // live handles
export const PE_GENERATION = 68; // bumped on create and destroy: stale handles notice
export const PE_HDR_LEN = 72; // virtio-net header length (VALE)
export const PE_MFS = 76; // max frame size (VALE)
export const PE_EXTRA = 80; // kind-specific words 80..119, one overlay per kind (below); 120..127 every kind
/**
 * VALE port of an attached interface's wire side (set by its attach daemon): the interface's
 * ifindex and network namespace id. A forwarding daemon in that namespace may then transmit
 * straight onto the interface instead of through the port's RX ring (src/bwrap/direct.ts).
 */
export const PE_VALE_DIRECT_IF = PE_EXTRA;
export const PE_VALE_DIRECT_NETNS = PE_EXTRA + 4;
/**
 * VALE port of an attached TAP (a virtio-net header port): the attach daemon's pid and its TAP
 * descriptor. Another forwarding daemon may take a copy of the descriptor (pidfd_getfd) and write
 * frames for that port straight into the TAP (src/bwrap/direct.ts).
 */
export const PE_VALE_DIRECT_TAP_PID = PE_EXTRA + 8;
export const PE_VALE_DIRECT_TAP_FD = PE_EXTRA + 12;
/** Interface ports: the interface's index and network namespace id (the entry is per namespace). */
export const PE_IF_IFINDEX = PE_EXTRA;
export const PE_IF_NETNS = PE_EXTRA + 4;
/** Interface ports: the pid of the process holding the split, 0 none. */
export const PE_IF_OWNER = PE_EXTRA + 8;
/** Interface ports: 1 when the interface is a TAP device (no split, the TAP itself). */
export const PE_IF_TAP = PE_EXTRA + 12;
/**
 * Interface ports, for the process holding the split: its open adapters over all its threads,
 * the descriptors of the split's two TAPs, and the RX fanout group (+1, 0 none yet).
 */
export const PE_IF_USERS = PE_EXTRA + 16;
export const PE_IF_SINK_FD = PE_EXTRA + 20;
export const PE_IF_HOST_FD = PE_EXTRA + 24;
export const PE_IF_FANOUT = PE_EXTRA + 28;
/**
 * Interface ports, for the process holding the split: its cut (nft: the nf_tables socket's
 * descriptor | NFT_CUT_FLAG of src/interfaces/split.ts; tcx: the ingress link) and its egress
 * link (tcx: the egress program's; nft: the host TX turnaround, once made); 0 with tc.
 */
export const PE_IF_INGRESS_LINK_FD = PE_EXTRA + 32;
export const PE_IF_EGRESS_LINK_FD = PE_EXTRA + 36;
/**
 * Monitor ports (src/monitor): what they watch. Bit 0 TX, bit 1 RX, bit 2 zero-copy; the
 * monitored rings as a range of the monitor's own RX rings (first | end << 16: monitor RX ring k
 * mirrors the parent's TX and RX ring k, NIC rings then host rings); the parent's PE_GENERATION
 * when the monitor was made (a parent entry reused by another port is not the parent any more).
 */
export const PE_MON_FLAGS = PE_EXTRA;
export const PE_MON_RANGE = PE_EXTRA + 4;
export const PE_MON_PARENT_GEN = PE_EXTRA + 8;
export const MON_FLAG_TX = 1;
export const MON_FLAG_RX = 2;
export const MON_FLAG_ZCOPY = 4;
/**
 * Every kind (after the overlays, 120..127): monitors watching this port, and a generation set
 * to a new registry token whenever one comes or goes. The data path loads PE_MONITORS once per
 * batch; nothing else is done while it is 0.
 */
export const PE_MONITORS = 120;
export const PE_MON_GEN = 124;
export const PE_NAME = 128; // 64 bytes, NUL padded
export const PE_NAME_MAX = 64;
export const PE_HANDLES = 192; // handle records
export const HANDLE_SIZE = 32;
export const MAX_HANDLES = 25; // (992 - 192) / 32
// The host RX ring's slot count: an interface's is smaller than its NIC RX rings (the NIC rings'
// depth is what absorbs a receiver's stalls; see src/interfaces/port.ts geometry()).
export const PE_HOST_RX_SLOTS = 992; // 996..1023 free
// handle record fields
export const HR_PID = 0;
export const HR_TID = 4;
export const HR_TOKEN = 8;
export const HR_NIFP = 12; // space offset of this handle's netmap_if
export const HR_RING_MASK_TX = 16; // rings bound: first, last (exclusive) packed as u16 pairs
export const HR_RING_MASK_RX = 20;
export const HR_FLAGS = 24; // bit 0 exclusive
export const HR_NIFP_SIZE = 28;

export const PORT_FLAG_PERSISTENT = 1;
export const PORT_FLAG_AUTODELETE = 2; // created as a pipe parent, gone with its last pipe
export const PORT_FLAG_ATTACHED = 4; // owned by a switch daemon: users may not register it

export const PORT_KIND_VALE = 1;
export const PORT_KIND_PIPE = 2;
export const PORT_KIND_PARENT = 3; // a memory-only parent for pipes of a name that is no port
export const PORT_KIND_INTERFACE = 4;
export const PORT_KIND_HOST = 5;
export const PORT_KIND_MONITOR = 6;

export const MAX_SWITCHES = 16;
export const SWITCH_ENTRY_SIZE = 16384;
export const SWITCHES_TABLE = PORTS_TABLE + MAX_PORTS * PORT_ENTRY_SIZE;
// switch entry fields
export const SW_STATE = 0; // SWITCH_STATE_*
export const SWITCH_STATE_FREE = 0;
export const SWITCH_STATE_LIVE = 1;
export const SW_NUM_PORTS = 4;
export const SW_LOCK = 8; // robust lock (owner pid, tid, futex) at 8..19
export const SW_GENERATION = 20; // bumped on every attach/detach: senders refresh their port lists
export const SW_FLAGS = 24;
export const SW_NAME = 32; // 16 bytes
export const SW_LOOKUP = 48; // name of the lookup function, 32 bytes
export const SW_PORTS = 128; // MAX_SWITCH_PORTS x u32: port table index + 1, 0 = free
export const MAX_SWITCH_PORTS = 254;
export const SW_HASH = 2048; // learning table: 1024 entries x 8 bytes (port+1 | MAC bytes 4-5 LE << 16, MAC bytes 0-3 LE); see switch/lookup.ts
export const SW_HASH_ENTRIES = 1024;
export const SW_LAST_SRC = 10240; // per port last learnt source MAC cache: 254 x 8
export const SW_LOOKUP_GEN = 12284; // bumped whenever the lookup module or its config changes
export const SW_LOOKUP_MODULE = 12288; // module specifier of a pluggable lookup, 1024 bytes, NUL padded
export const SW_LOOKUP_MODULE_MAX = 1024;
export const SW_LOOKUP_CONFIG = 13312; // its configuration text, 3072 bytes, NUL padded
export const SW_LOOKUP_CONFIG_MAX = 3072;
export const SWITCHES_END = SWITCHES_TABLE + MAX_SWITCHES * SWITCH_ENTRY_SIZE;

// ---- region file (one allocator: netmap's mem_id) ---------------------------------------------
export const RH_MAGIC = 0;
export const RH_LAYOUT = 4;
export const RH_MEM_ID = 8;
export const RH_SIZE = 12;
export const RH_PAGES_OFFSET = 16; // object area (netmap_if and rings), 4 KiB pages
export const RH_NUM_PAGES = 20;
export const RH_BUF_OFFSET = 24; // buffer pool: buffer i at RH_BUF_OFFSET + i * bufSize
export const RH_NUM_BUFS = 28;
export const RH_BUF_SIZE = 32;
export const RH_FREE_TOP = 36; // number of indices on the free stack
export const RH_FREE_STACK = 40; // offset of the free stack (u32 per buffer)
export const RH_PAGE_MAP = 44; // offset of the page map (u8 per page: 0 free, else used)
export const RH_LOCK = 48; // robust lock 48..59
export const RH_FREE_BITS = 64; // offset of the free bitmap (1 bit per buffer: set = free), guards double frees
export const RH_HEADER_SIZE = 4096;
export const PAGE_SIZE = 4096;
export const DEFAULT_BUF_SIZE = 2048;

// ---- netmap_if (netmap's) ----------------------------------------------------------------------
export const NIFP_NAME = 0; // 16 bytes
export const NIFP_VERSION = 16;
export const NIFP_FLAGS = 20;
export const NIFP_TX_RINGS = 24;
export const NIFP_RX_RINGS = 28;
export const NIFP_BUFS_HEAD = 32;
export const NIFP_HOST_TX_RINGS = 36;
export const NIFP_HOST_RX_RINGS = 40;
export const NIFP_RING_OFS = 56; // i64 per ring, relative to the netmap_if, 0 when not bound
export const NI_PRIV_MEM = 1;

// ---- netmap_ring (netmap's) ---------------------------------------------------------------------
export const RING_BUF_OFS = 0; // i64
export const RING_NUM_SLOTS = 8;
export const RING_BUF_SIZE = 12;
export const RING_ID = 16; // u16
export const RING_DIR = 18; // u16, 0 tx 1 rx
export const RING_HEAD = 20;
export const RING_CUR = 24;
export const RING_TAIL = 28;
export const RING_FLAGS = 32;
export const RING_TS_SEC = 40; // struct timeval: i64 sec, i64 usec
export const RING_TS_USEC = 48;
export const RING_OFFSET_MASK = 56;
export const RING_BUF_ALIGN = 64;
export const RING_SEM = 128; // opaque area: our kring (hidden per-ring state), 128 bytes
export const RING_SLOTS = 256;
export const SLOT_SIZE = 16;
export const SLOT_BUF_IDX = 0;
export const SLOT_LEN = 4; // u16
export const SLOT_FLAGS = 6; // u16
export const SLOT_PTR = 8; // u64

// kring fields, relative to the ring (inside RING_SEM). The first part is common to every port
// kind; 180..191 and 216..231 are overlays, each offset with one meaning per kind (below).
export const KR_HWCUR = 128;
export const KR_HWTAIL = 132;
export const KR_RHEAD = 136;
export const KR_RCUR = 140;
export const KR_RTAIL = 144;
export const KR_BUSY = 148; // ring-level sync exclusion: owner tid, 0 free
export const KR_BUSY_PID = 152;
export const KR_WAKE = 156; // futex word: bumped each time this ring's owner has something new
export const KR_WAITERS = 160; // threads sleeping on KR_WAKE
export const KR_PEER = 164; // pipes: space offset of the peer ring (tx <-> rx)
export const KR_SHADOW_TAIL = 168; // published by the peer / forwarder: where tail may move to
export const KR_USERS = 172; // handles binding this ring
export const KR_EXCLUSIVE = 176; // handle token of an exclusive user, 0 none
export const KR_PKTS = 192; // f64 packet counter (tx: sent, rx: received)
export const KR_BYTES = 200; // f64
export const KR_DROPS = 208; // f64
export const KR_FLAGS = 220;

// Overlay of VALE RX rings: the lease protocol (see src/switch/lease.ts). KR_SHADOW_TAIL is where
// senders publish hwtail.
/** Next slot to lease (netmap's nkr_hwlease). */
export const KR_LEASE = 180;
/** Lease lock word: owner tid, 0 free. */
export const KR_LEASE_LOCK = 184;
/** Threads sleeping on KR_LEASE_LOCK (unlock wakes one when not 0). */
export const KR_LEASE_SLEEPERS = 188;
/** Index of the oldest outstanding lease record. */
export const KR_LEASE_FIRST = 216;
/** Index of the next lease record to hand out. */
export const KR_LEASE_NEXT = 224;
/** Space offset of the ring's table of lease records. */
export const KR_LEASE_TABLE = 228;

// Overlay of interface RX rings (see src/interfaces/port.ts).
/**
 * Thread id of the thread whose packet socket feeds the ring, 0 none: one socket per RX ring,
 * or frames would be received twice.
 */
export const KR_RX_SERVER = 180;
/**
 * NIC RX ring 0 of an interface port with the AF_XDP backend, for the process holding the split:
 * the XSKMAP's descriptor (0: AF_PACKET; threads of the owner update the map through it), and the
 * XDP link's descriptor with IF_XDP_SKB (SKB mode) and IF_XDP_ZEROCOPY (a socket bound zero-copy)
 * above it.
 */
export const KR_IF_XDP_MAP_FD = 184;
export const KR_IF_XDP_LINK = 188;
export const IF_XDP_FD_MASK = 0x3fffffff, IF_XDP_SKB = 0x40000000, IF_XDP_ZEROCOPY = 0x80000000;

// Overlay of monitor RX rings (see src/monitor/tap.ts). KR_SHADOW_TAIL is the next slot the
// monitored side fills, KR_HWCUR what the monitor's user released.
/** Lock of the monitored side's writers (several threads may feed one monitor ring): owner tid, 0 free. */
export const KR_MON_LOCK = 180;

export const KR_END = 256;

export const RING_DIR_TX = 0;
export const RING_DIR_RX = 1;

// ---- slot and ring flags (netmap's values) ------------------------------------------------------
export const NS_BUF_CHANGED = 0x0001;
export const NS_REPORT = 0x0002;
export const NS_FORWARD = 0x0004;
export const NS_NO_LEARN = 0x0008;
export const NS_INDIRECT = 0x0010;
export const NS_MOREFRAG = 0x0020;
export const NS_TXMON = 0x0040;
export const NS_PORT_SHIFT = 8;
export const NS_PORT_MASK = 0xff00;
export const NR_TIMESTAMP = 0x0002;
export const NR_FORWARD = 0x0004;
export const NETMAP_MAX_FRAGS = 64;

export const POLLIN = 0x001;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;

/** Size in bytes of a ring object with `numSlots` slots. */
export function ringBytes(numSlots: number): number {
  return RING_SLOTS + numSlots * SLOT_SIZE;
}

/** Size in bytes of a netmap_if describing `totalRings` rings. */
export function nifpBytes(totalRings: number): number {
  return NIFP_RING_OFS + 8 * totalRings;
}
