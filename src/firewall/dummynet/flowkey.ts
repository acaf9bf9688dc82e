/**
 * The flow identifier dummynet classifies on (FreeBSD's struct ipfw_flow_id): protocol, IPv4 or
 * IPv6 addresses, ports, the IPv6 flow label and the `extra` word (the queue number when a mask
 * says `queue`). The caller fills ONE FlowKey per packet and passes it in; dummynet copies the
 * masked fields into its own keys, so nothing is allocated per packet.
 */
export class FlowKey {
  proto = 0;
  /** IPv4 addresses as unsigned 32-bit numbers in host order (198.18.0.1 = 0xc6120001). */
  srcIp = 0;
  dstIp = 0;
  srcPort = 0;
  dstPort = 0;
  /** IPv6: the four 32-bit words of each address, most significant first. */
  readonly src6 = new Uint32Array(4);
  readonly dst6 = new Uint32Array(4);
  /** IPv6 flow label (20 bits). */
  flowId6 = 0;
  /** Queue number when masked with `mask queue`; 0 otherwise. */
  extra = 0;
  isV6 = false;

  /** Sets every field of an IPv4 flow at once (convenient for callers and tests). */
  setV4(proto: number, srcIp: number, srcPort: number, dstIp: number, dstPort: number): this {
    this.isV6 = false;
    this.proto = proto & 0xff;
    this.srcIp = srcIp >>> 0;
    this.dstIp = dstIp >>> 0;
    this.srcPort = srcPort & 0xffff;
    this.dstPort = dstPort & 0xffff;
    // element stores, not fill(): a builtin call per array cost kipfw ~6% of its CPU per packet
    const s6 = this.src6, d6 = this.dst6;
    s6[0] = 0; s6[1] = 0; s6[2] = 0; s6[3] = 0;
    d6[0] = 0; d6[1] = 0; d6[2] = 0; d6[3] = 0;
    this.flowId6 = 0;
    this.extra = 0;
    return this;
  }

  copyFrom(other: FlowKey): void {
    this.proto = other.proto;
    this.srcIp = other.srcIp;
    this.dstIp = other.dstIp;
    this.srcPort = other.srcPort;
    this.dstPort = other.dstPort;
    this.src6.set(other.src6);
    this.dst6.set(other.dst6);
    this.flowId6 = other.flowId6;
    this.extra = other.extra;
    this.isV6 = other.isV6;
  }

  /** this = id & mask, as FreeBSD's flow_id_mask (the address family comes from id). */
  setMasked(id: FlowKey, mask: FlowKey): void {
    this.isV6 = id.isV6;
    this.proto = id.proto & mask.proto;
    this.srcPort = id.srcPort & mask.srcPort;
    this.dstPort = id.dstPort & mask.dstPort;
    this.extra = (id.extra & mask.extra) >>> 0;
    if (id.isV6) {
      this.srcIp = 0;
      this.dstIp = 0;
      for (let i = 0; i < 4; i++) {
        this.src6[i] = id.src6[i]! & mask.src6[i]!;
        this.dst6[i] = id.dst6[i]! & mask.dst6[i]!;
      }
      this.flowId6 = (id.flowId6 & mask.flowId6) >>> 0;
    } else {
      this.srcIp = (id.srcIp & mask.srcIp) >>> 0;
      this.dstIp = (id.dstIp & mask.dstIp) >>> 0;
      this.src6.fill(0);
      this.dst6.fill(0);
      this.flowId6 = 0;
    }
  }

  /** Equality of this (already masked) key with id & mask, computed without building id & mask. */
  equalsMasked(id: FlowKey, mask: FlowKey): boolean {
    if (this.isV6 !== id.isV6) return false;
    if (this.proto !== (id.proto & mask.proto)) return false;
    if (this.srcPort !== (id.srcPort & mask.srcPort)) return false;
    if (this.dstPort !== (id.dstPort & mask.dstPort)) return false;
    if (this.extra !== ((id.extra & mask.extra) >>> 0)) return false;
    if (!id.isV6) {
      return this.srcIp === ((id.srcIp & mask.srcIp) >>> 0) && this.dstIp === ((id.dstIp & mask.dstIp) >>> 0);
    }
    if (this.flowId6 !== ((id.flowId6 & mask.flowId6) >>> 0)) return false;
    for (let i = 0; i < 4; i++) {
      if (this.src6[i] !== ((id.src6[i]! & mask.src6[i]!) >>> 0)) return false;
      if (this.dst6[i] !== ((id.dst6[i]! & mask.dst6[i]!) >>> 0)) return false;
    }
    return true;
  }

  /** True when any bit of the mask is set (FreeBSD's DN_HAVE_MASK). */
  isNonZero(): boolean {
    if (this.proto | this.srcIp | this.dstIp | this.srcPort | this.dstPort | this.flowId6 | this.extra) return true;
    for (let i = 0; i < 4; i++) if (this.src6[i]! | this.dst6[i]!) return true;
    return false;
  }

  clear(): void {
    this.setV4(0, 0, 0, 0, 0);
  }
}

/**
 * FreeBSD's flow_id_hash of (id & mask), computed on the fly, returned as an int32. The listing prints its low byte as the
 * BKT column, and the hash tables use it (modulo the bucket count) to find an instance or a queue.
 */
export function maskedFlowHash(id: FlowKey, mask: FlowKey): number {
  const proto = id.proto & mask.proto;
  const sp = id.srcPort & mask.srcPort;
  const dp = id.dstPort & mask.dstPort;
  const extra = id.extra & mask.extra;
  let h: number;
  if (id.isV6) {
    h = (dp << 1) ^ sp ^ extra ^ proto ^ (id.flowId6 & mask.flowId6);
    for (let i = 0; i < 4; i++) {
      const d = (id.dst6[i]! & mask.dst6[i]!) >>> 0;
      const s = (id.src6[i]! & mask.src6[i]!) >>> 0;
      h ^= d ^ (d >>> 15) ^ (s << 1) ^ (s << 16);
    }
  } else {
    const d = (id.dstIp & mask.dstIp) >>> 0;
    const s = (id.srcIp & mask.srcIp) >>> 0;
    h = d ^ (d >>> 15) ^ (s << 1) ^ (s >>> 16) ^ extra ^ (dp << 1) ^ sp ^ proto;
  }
  // As an int32 (same bits as FreeBSD's uint32): a uint32 above 2^31 would be boxed on return.
  return h | 0;
}

/** A mask value as it travels in the JSON configuration. */
export interface MaskJSON {
  proto: number; srcIp: number; dstIp: number; srcPort: number; dstPort: number;
  src6: number[]; dst6: number[]; flowId6: number; extra: number;
  /** FreeBSD's addr_type: 6 when an IPv6 field (src-ip6, dst-ip6, flow-id) was given. */
  v6: boolean;
}

export function emptyMask(): MaskJSON {
  return { proto: 0, srcIp: 0, dstIp: 0, srcPort: 0, dstPort: 0, src6: [0, 0, 0, 0], dst6: [0, 0, 0, 0], flowId6: 0, extra: 0, v6: false };
}

export function maskFromJSON(m: MaskJSON): FlowKey {
  const k = new FlowKey();
  k.proto = m.proto; k.srcIp = m.srcIp >>> 0; k.dstIp = m.dstIp >>> 0; k.srcPort = m.srcPort; k.dstPort = m.dstPort;
  k.src6.set(m.src6); k.dst6.set(m.dst6); k.flowId6 = m.flowId6 >>> 0; k.extra = m.extra >>> 0; k.isV6 = m.v6;
  return k;
}

/**
 * Fills `key` from an Ethernet frame (one optional 802.1Q tag; IPv4 or IPv6 with its extension
 * headers; TCP/UDP/SCTP/UDP-Lite ports; ICMP and fragments past the first have ports 0, as ipfw's
 * flow id). Returns false for a non-IP or truncated frame, leaving key zeroed (such frames share
 * the all-zero flow). Never throws, allocates nothing.
 */
export function flowKeyFromFrame(buf: Uint8Array, offset: number, length: number, key: FlowKey): boolean {
  key.clear();
  const end = offset + length;
  if (length < 14 || end > buf.length) return false;
  let p = offset + 12;
  let type = (buf[p]! << 8) | buf[p + 1]!;
  p += 2;
  if (type === 0x8100 || type === 0x88a8) {
    if (p + 4 > end) return false;
    type = (buf[p + 2]! << 8) | buf[p + 3]!;
    p += 4;
  }
  let proto: number;
  let l4 = -1;
  if (type === 0x0800) {
    if (p + 20 > end) return false;
    const ihl = (buf[p]! & 0x0f) * 4;
    if ((buf[p]! >> 4) !== 4 || ihl < 20 || p + ihl > end) return false;
    proto = buf[p + 9]!;
    key.proto = proto;
    key.srcIp = ((buf[p + 12]! << 24) | (buf[p + 13]! << 16) | (buf[p + 14]! << 8) | buf[p + 15]!) >>> 0;
    key.dstIp = ((buf[p + 16]! << 24) | (buf[p + 17]! << 16) | (buf[p + 18]! << 8) | buf[p + 19]!) >>> 0;
    const fragOffset = ((buf[p + 6]! & 0x1f) << 8) | buf[p + 7]!;
    if (fragOffset === 0) l4 = p + ihl;
  } else if (type === 0x86dd) {
    if (p + 40 > end) return false;
    if ((buf[p]! >> 4) !== 6) return false;
    key.isV6 = true;
    key.flowId6 = ((buf[p + 1]! & 0x0f) << 16) | (buf[p + 2]! << 8) | buf[p + 3]!;
    for (let i = 0; i < 4; i++) {
      const s = p + 8 + 4 * i, d = p + 24 + 4 * i;
      key.src6[i] = ((buf[s]! << 24) | (buf[s + 1]! << 16) | (buf[s + 2]! << 8) | buf[s + 3]!) >>> 0;
      key.dst6[i] = ((buf[d]! << 24) | (buf[d + 1]! << 16) | (buf[d + 2]! << 8) | buf[d + 3]!) >>> 0;
    }
    proto = buf[p + 6]!;
    let q = p + 40;
    // Extension headers, a bounded number of them.
    for (let hops = 0; hops < 8; hops++) {
      if (proto === 0 || proto === 43 || proto === 60) {
        if (q + 8 > end) { proto = -1; break; }
        proto = buf[q]!;
        q += (buf[q + 1]! + 1) * 8;
      } else if (proto === 44) {
        if (q + 8 > end) { proto = -1; break; }
        const nextProto = buf[q]!;
        const fragOff = ((buf[q + 2]! << 8) | buf[q + 3]!) & 0xfff8;
        proto = nextProto;
        q += 8;
        if (fragOff !== 0) { q = -1; break; }
      } else break;
    }
    if (proto < 0) { key.proto = 0; return true; }
    key.proto = proto;
    l4 = q;
  } else {
    return false;
  }
  if (l4 >= 0 && (proto === 6 || proto === 17 || proto === 132 || proto === 136) && l4 + 4 <= end) {
    key.srcPort = (buf[l4]! << 8) | buf[l4 + 1]!;
    key.dstPort = (buf[l4 + 2]! << 8) | buf[l4 + 3]!;
  }
  return true;
}
