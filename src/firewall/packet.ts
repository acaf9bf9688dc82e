/**
 * Decoding of one Ethernet frame into the flat record the firewall evaluates (ipfw_chk's local
 * variables: proto, addresses, ports, offset, ulp, ext_hd, ...). One PacketInfo is reused for
 * every packet of a thread: decode() only writes numeric fields and two preallocated Uint32Arrays,
 * so the data path allocates nothing.
 *
 * What is decoded, as ipfw does at layer 2 (ipfw_check_frame strips the 14-byte Ethernet header
 * and calls ipfw_chk):
 * - IPv4 when the ethertype is 0x0800, at least 20 bytes follow the Ethernet header and the
 *   version nibble is 4. IPv6 when the ethertype is 0x86dd, at least 40 bytes follow and the
 *   version is 6; extension headers are walked as ipfw does (hop-by-hop, routing, fragment,
 *   destination options, AH, ESP, none).
 * - Anything else (ARP, VLAN-tagged 0x8100, too short) is "not IP": `ip from any to any` and the
 *   layer-2 options match it, every option that needs an IP field does not.
 * - L4 (ports, TCP flags/seq/ack/win, ICMP type) only for the first fragment (offset 0).
 * - A truncated TCP (< 20 bytes), UDP (< 8), ICMP (< 4) or ICMPv6 (< 8) header, or a truncated
 *   IPv6 extension header, is ipfw's "pullup failed": `pullupFailed` is set and the evaluator
 *   denies the packet before any rule, as ipfw_chk returns IP_FW_DENY.
 * - An IPv4 header length below 20 or beyond the bytes present ("bad IHL"): the fixed header's
 *   fields (addresses, proto, ttl...) are kept, but there is no L4 (`l4 = -1`): rules that need
 *   ports or flags do not match. (FreeBSD's ip_input would have dropped such a packet before
 *   ipfw; at layer 2, ipfw reads L4 at the bogus offset. Reading nothing is the safe choice.)
 * - `pktlen`, the byte-counter value: the IP datagram for IPv4, min(ip_len, bytes present) as
 *   ipfw; for IPv6 min(40 + payload length, bytes present) (FreeBSD counts the whole buffer,
 *   Ethernet padding included); for a non-IP frame the frame minus its 14-byte Ethernet header
 *   (what m_pkthdr.len is once the header is stripped), 0 below 14 bytes.
 */

export const ETH_HLEN = 14;
export const ETHERTYPE_IP = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

/** `ext6hdr` bits, the values of rule.ts EXT6_HEADERS. */
export const EXT_FRAGMENT = 0x01, EXT_HOPOPTS = 0x02, EXT_ROUTING = 0x04, EXT_DSTOPTS = 0x08;
export const EXT_AH = 0x10, EXT_ESP = 0x20, EXT_RTHDR0 = 0x40, EXT_RTHDR2 = 0x80;

/** More IPv6 extension headers than this is treated as a pullup failure (bounds the walk). */
const MAX_EXT_HEADERS = 16;

// Byte reads are unchecked (`u8[i]!`): decode() first clamps len to the array, and every read
// sits behind the length check of the header it belongs to.
export class PacketInfo {
  /** The frame: bytes u8[off .. off+len). */
  u8: Uint8Array = new Uint8Array(0);
  off = 0;
  len = 0;
  /** Ethertype at bytes 12..13, 0 when the frame is shorter than 14 bytes. */
  etype = 0;
  /** 4, 6, or 0 for a non-IP frame (is_ipv4 / is_ipv6). */
  ipVersion = 0;
  /** Absolute offset of the IP header in u8. */
  l3 = 0;
  /** Bytes present from the IP header to the end of the frame. */
  l3len = 0;
  /** IPv4 header length / IPv6 header plus extension headers (ipfw hlen). */
  hlen = 0;
  /** Upper-layer protocol (after IPv6 extension headers); 0 when not IP. */
  proto = 0;
  /** Absolute offset of the TCP/UDP/ICMP header, -1 when absent (ipfw ulp == NULL). */
  l4 = -1;
  /** Fragment offset field (non-zero: not the first fragment); IPv6: the raw offset bits. */
  fragOffset = 0;
  /** More-fragments bit. */
  moreFrags = false;
  pullupFailed = false;
  /** IPv4 addresses, unsigned host order. */
  src4 = 0;
  dst4 = 0;
  /** IPv6 addresses, 4 unsigned words most significant first. */
  readonly src6 = new Uint32Array(4);
  readonly dst6 = new Uint32Array(4);
  srcPort = 0;
  dstPort = 0;
  /** IPv4 ip_len (0 for IPv6, as ipfw's iplen). */
  ipLen = 0;
  ttl = 0;
  /** IPv4 TOS byte / IPv6 traffic class. */
  tos = 0;
  ipId = 0;
  /** IPv6 flow label (20 bits). */
  flow6 = 0;
  /** IPv6 extension headers seen (EXT_* bits). */
  ext6 = 0;
  tcpFlags = 0;
  tcpSeq = 0;
  tcpAck = 0;
  tcpWin = 0;
  /** TCP data offset in bytes (th_off * 4). */
  tcpHlen = 0;
  icmpType = 0;
  /** Byte-counter value (see the header comment). */
  pktlen = 0;

  /**
   * The least a ruleset of only "cheap" commands needs (see runtime.ts basicDecodeSuffices):
   * ethertype, IP version, protocol, fragment offset, header length, pktlen and the pullup check
   * of ipfw (which decides the verdict of a truncated packet whatever the rules), addresses,
   * ports, TCP flags and ack (for the states) and the ICMP type. IPv6 takes the
   * full decode (its extension headers must be walked for the same answers). Fields other than
   * these keep stale values: only commands that do not read them may run.
   */
  decodeBasic(u8: Uint8Array, off: number, len: number): void {
    if (len < 34 || off < 0 || off + len > u8.length || u8[off + 12] !== 0x08 || u8[off + 13] !== 0x00 || (u8[off + 14]! >> 4) !== 4) {
      this.decode(u8, off, len);
      return;
    }
    this.u8 = u8; this.off = off; this.len = len;
    this.etype = ETHERTYPE_IP; this.ipVersion = 4;
    const l3 = off + ETH_HLEN, avail = len - ETH_HLEN;
    this.l3 = l3; this.l3len = avail;
    const hlen = (u8[l3]! & 0x0f) << 2;
    this.hlen = hlen;
    const ipLen = (u8[l3 + 2]! << 8) | u8[l3 + 3]!;
    this.ipLen = ipLen;
    this.pktlen = ipLen < avail ? ipLen : avail;
    const fragOffset = ((u8[l3 + 6]! << 8) | u8[l3 + 7]!) & 0x1fff;
    this.fragOffset = fragOffset;
    const proto = u8[l3 + 9]!;
    this.proto = proto;
    this.src4 = ((u8[l3 + 12]! << 24) | (u8[l3 + 13]! << 16) | (u8[l3 + 14]! << 8) | u8[l3 + 15]!) >>> 0;
    this.dst4 = ((u8[l3 + 16]! << 24) | (u8[l3 + 17]! << 16) | (u8[l3 + 18]! << 8) | u8[l3 + 19]!) >>> 0;
    this.pullupFailed = false;
    this.l4 = -1; this.srcPort = 0; this.dstPort = 0; this.tcpFlags = 0; this.icmpType = 0;
    if (fragOffset !== 0 || hlen < 20 || hlen > avail) return;
    const need = proto === PROTO_TCP ? 20 : proto === PROTO_UDP ? 8 : proto === PROTO_ICMP ? 4 : 0;
    if (avail - hlen < need) { this.pullupFailed = true; return; }
    if (need === 0) return;
    const l4 = l3 + hlen;
    this.l4 = l4;
    if (proto === PROTO_ICMP) { this.icmpType = u8[l4]!; return; }
    this.srcPort = (u8[l4]! << 8) | u8[l4 + 1]!;
    this.dstPort = (u8[l4 + 2]! << 8) | u8[l4 + 3]!;
    if (proto === PROTO_TCP) {
      this.tcpFlags = u8[l4 + 13]!;
      // The ack number feeds the dynamic-state lifetimes (both ACKs seen).
      this.tcpAck = ((u8[l4 + 8]! << 24) | (u8[l4 + 9]! << 16) | (u8[l4 + 10]! << 8) | u8[l4 + 11]!) >>> 0;
    }
  }

  /**
   * Less still, for a ruleset that reads no packet field at all (runtime.ts lengthDecodeSuffices:
   * `allow ip from any to any`, interface and direction matches, tags): the frame, `pktlen` for
   * the byte counters, and ipfw's pullup check (a truncated header denies the packet whatever the
   * rules). IPv4 only; anything else takes the full decode. Other fields keep stale values.
   */
  decodeLength(u8: Uint8Array, off: number, len: number): void {
    if (len < 34 || off < 0 || off + len > u8.length || u8[off + 12] !== 0x08 || u8[off + 13] !== 0x00 || (u8[off + 14]! >> 4) !== 4) {
      this.decode(u8, off, len);
      return;
    }
    this.u8 = u8; this.off = off; this.len = len;
    const l3 = off + ETH_HLEN, avail = len - ETH_HLEN;
    const ipLen = (u8[l3 + 2]! << 8) | u8[l3 + 3]!;
    this.pktlen = ipLen < avail ? ipLen : avail;
    const hlen = (u8[l3]! & 0x0f) << 2;
    // as decodeBasic: no L4 to check for a later fragment or a bad IHL
    if ((((u8[l3 + 6]! << 8) | u8[l3 + 7]!) & 0x1fff) !== 0 || hlen < 20 || hlen > avail) { this.pullupFailed = false; return; }
    const proto = u8[l3 + 9]!;
    this.pullupFailed = avail - hlen < (proto === PROTO_TCP ? 20 : proto === PROTO_UDP ? 8 : proto === PROTO_ICMP ? 4 : 0);
  }

  /** Decodes the frame u8[off .. off+len). Never throws; never allocates. */
  decode(u8: Uint8Array, off: number, len: number): void {
    this.u8 = u8; this.off = off; this.len = len;
    // Fields of the upper layer: decode4/decode6 set them only when the header is there.
    this.l4 = -1; this.pullupFailed = false; this.srcPort = 0; this.dstPort = 0;
    this.tcpFlags = 0; this.tcpSeq = 0; this.tcpAck = 0; this.tcpWin = 0; this.tcpHlen = 0; this.icmpType = 0;
    // A caller's len beyond the array would make every bounds check below lie.
    if (off < 0 || len < 0 || off + len > u8.length) {
      if (off < 0 || off > u8.length) { off = 0; len = 0; this.off = 0; }
      len = Math.max(0, Math.min(len, u8.length - off)); this.len = len;
    }
    if (len < ETH_HLEN) { this.etype = 0; this.l3 = off; this.l3len = 0; this.notIp(0); return; }
    const etype = (u8[off + 12]! << 8) | u8[off + 13]!;
    this.etype = etype;
    const l3 = off + ETH_HLEN;
    const avail = len - ETH_HLEN;
    this.l3 = l3; this.l3len = avail;
    if (etype === ETHERTYPE_IP && avail >= 20 && (u8[l3]! >> 4) === 4) this.decode4(u8, l3, avail);
    else if (etype === ETHERTYPE_IPV6 && avail >= 40 && (u8[l3]! >> 4) === 6) this.decode6(u8, l3, avail);
    else this.notIp(avail);
  }

  /** The IP-level fields of a frame that is not IP. */
  private notIp(pktlen: number): void {
    this.ipVersion = 0; this.proto = 0; this.hlen = 0; this.fragOffset = 0; this.moreFrags = false;
    this.src4 = 0; this.dst4 = 0; this.ipLen = 0; this.ttl = 0; this.tos = 0; this.ipId = 0; this.flow6 = 0; this.ext6 = 0;
    this.pktlen = pktlen;
  }

  private decode4(u8: Uint8Array, l3: number, avail: number): void {
    this.ipVersion = 4; this.flow6 = 0; this.ext6 = 0;
    const hlen = (u8[l3]! & 0x0f) << 2;
    this.hlen = hlen;
    this.tos = u8[l3 + 1]!;
    const ipLen = (u8[l3 + 2]! << 8) | u8[l3 + 3]!;
    this.ipLen = ipLen;
    this.ipId = (u8[l3 + 4]! << 8) | u8[l3 + 5]!;
    const offField = (u8[l3 + 6]! << 8) | u8[l3 + 7]!;
    this.fragOffset = offField & 0x1fff;
    this.moreFrags = (offField & 0x2000) !== 0;
    this.ttl = u8[l3 + 8]!;
    this.proto = u8[l3 + 9]!;
    this.src4 = ((u8[l3 + 12]! << 24) | (u8[l3 + 13]! << 16) | (u8[l3 + 14]! << 8) | u8[l3 + 15]!) >>> 0;
    this.dst4 = ((u8[l3 + 16]! << 24) | (u8[l3 + 17]! << 16) | (u8[l3 + 18]! << 8) | u8[l3 + 19]!) >>> 0;
    this.pktlen = ipLen < avail ? ipLen : avail;
    if (this.fragOffset !== 0) return;
    if (hlen < 20 || hlen > avail) return; // bad IHL: no L4 (see header comment)
    const proto = this.proto;
    const rest = avail - hlen;
    const l4 = l3 + hlen;
    if (proto === PROTO_TCP) {
      if (rest < 20) { this.pullupFailed = true; return; }
      this.decodeTcp(u8, l4);
    } else if (proto === PROTO_UDP) {
      if (rest < 8) { this.pullupFailed = true; return; }
      this.l4 = l4;
      this.srcPort = (u8[l4]! << 8) | u8[l4 + 1]!;
      this.dstPort = (u8[l4 + 2]! << 8) | u8[l4 + 3]!;
    } else if (proto === PROTO_ICMP) {
      if (rest < 4) { this.pullupFailed = true; return; }
      this.l4 = l4;
      this.icmpType = u8[l4]!;
    }
  }

  private decodeTcp(u8: Uint8Array, l4: number): void {
    this.l4 = l4;
    this.srcPort = (u8[l4]! << 8) | u8[l4 + 1]!;
    this.dstPort = (u8[l4 + 2]! << 8) | u8[l4 + 3]!;
    this.tcpSeq = ((u8[l4 + 4]! << 24) | (u8[l4 + 5]! << 16) | (u8[l4 + 6]! << 8) | u8[l4 + 7]!) >>> 0;
    this.tcpAck = ((u8[l4 + 8]! << 24) | (u8[l4 + 9]! << 16) | (u8[l4 + 10]! << 8) | u8[l4 + 11]!) >>> 0;
    this.tcpHlen = (u8[l4 + 12]! >> 4) << 2;
    this.tcpFlags = u8[l4 + 13]!;
    this.tcpWin = (u8[l4 + 14]! << 8) | u8[l4 + 15]!;
  }

  private decode6(u8: Uint8Array, l3: number, avail: number): void {
    this.ipVersion = 6; this.src4 = 0; this.dst4 = 0; this.ipLen = 0; this.ipId = 0;
    this.fragOffset = 0; this.moreFrags = false; this.ext6 = 0;
    const w0 = ((u8[l3]! << 24) | (u8[l3 + 1]! << 16) | (u8[l3 + 2]! << 8) | u8[l3 + 3]!) >>> 0;
    this.tos = (w0 >>> 20) & 0xff;
    this.flow6 = w0 & 0xfffff;
    const plen = (u8[l3 + 4]! << 8) | u8[l3 + 5]!;
    this.ttl = u8[l3 + 7]!;
    for (let i = 0; i < 4; i++) {
      const s = l3 + 8 + 4 * i, d = l3 + 24 + 4 * i;
      this.src6[i] = ((u8[s]! << 24) | (u8[s + 1]! << 16) | (u8[s + 2]! << 8) | u8[s + 3]!) >>> 0;
      this.dst6[i] = ((u8[d]! << 24) | (u8[d + 1]! << 16) | (u8[d + 2]! << 8) | u8[d + 3]!) >>> 0;
    }
    this.pktlen = 40 + plen < avail ? 40 + plen : avail;
    let proto = u8[l3 + 6]!;
    let hlen = 40;
    // ipfw's loop: walk extension headers until an upper layer is found or a non-first fragment.
    for (let n = 0; n <= MAX_EXT_HEADERS; n++) {
      if (n === MAX_EXT_HEADERS) { this.pullupFailed = true; break; }
      const at = l3 + hlen;
      const rest = avail - hlen;
      if (proto === PROTO_TCP) {
        if (rest < 20) { this.pullupFailed = true; break; }
        this.decodeTcp(u8, at); break;
      } else if (proto === PROTO_UDP) {
        if (rest < 8) { this.pullupFailed = true; break; }
        this.l4 = at;
        this.srcPort = (u8[at]! << 8) | u8[at + 1]!;
        this.dstPort = (u8[at + 2]! << 8) | u8[at + 3]!;
        break;
      } else if (proto === PROTO_ICMPV6) {
        if (rest < 8) { this.pullupFailed = true; break; }
        this.l4 = at; this.icmpType = u8[at]!; break;
      } else if (proto === 0 /* hop-by-hop */ || proto === 60 /* destination options */) {
        if (rest < 2) { this.pullupFailed = true; break; }
        this.ext6 |= proto === 0 ? EXT_HOPOPTS : EXT_DSTOPTS;
        proto = u8[at]!; hlen += (u8[at + 1]! + 1) << 3;
      } else if (proto === 43 /* routing */) {
        if (rest < 4) { this.pullupFailed = true; break; }
        const type = u8[at + 2];
        this.ext6 |= EXT_ROUTING | (type === 0 ? EXT_RTHDR0 : type === 2 ? EXT_RTHDR2 : 0);
        proto = u8[at]!; hlen += (u8[at + 1]! + 1) << 3;
      } else if (proto === 44 /* fragment */) {
        if (rest < 8) { this.pullupFailed = true; break; }
        this.ext6 |= EXT_FRAGMENT;
        proto = u8[at]!;
        const offlg = (u8[at + 2]! << 8) | u8[at + 3]!;
        this.fragOffset = offlg & 0xfff8;
        this.moreFrags = (offlg & 1) !== 0;
        hlen += 8;
        if (this.fragOffset !== 0) break; // non-first fragment: no upper layer (ipfw: offset != 0 ends the walk)
      } else if (proto === 51 /* AH */) {
        if (rest < 2) { this.pullupFailed = true; break; }
        this.ext6 |= EXT_AH;
        proto = u8[at]!; hlen += (u8[at + 1]! + 2) << 2;
      } else if (proto === 50 /* ESP */) {
        if (rest < 4) { this.pullupFailed = true; break; }
        this.ext6 |= EXT_ESP; this.l4 = at; break;
      } else if (proto === 59 /* no next header */) {
        break;
      } else {
        // Any other upper layer: ipfw pulls up a 2-byte ip6_ext (failing on an empty payload).
        if (rest < 2) { this.pullupFailed = true; break; }
        this.l4 = at; break;
      }
    }
    this.hlen = hlen;
    this.proto = proto;
  }

  /** TCP payload length (tcpdatalen): IPv4 ip_len - (ihl + th_off) * 4 as ipfw computes it (16-bit); IPv6 payload after all headers. */
  tcpDataLen(): number {
    if (this.ipVersion === 4) return (this.ipLen - this.hlen - this.tcpHlen) & 0xffff;
    const plen = (this.u8[this.l3 + 4]! << 8) | this.u8[this.l3 + 5]!;
    return (40 + plen - this.hlen - this.tcpHlen) & 0xffff;
  }

  /** `tcpoptions` bits present (TCP_OPTIONS of rule.ts); options running past the frame end the walk. */
  tcpOptionBits(): number {
    const u8 = this.u8;
    const end = Math.min(this.l4 + this.tcpHlen, this.l3 + this.l3len);
    let bits = 0;
    for (let at = this.l4 + 20, n = 0; at < end && n < 40; n++) {
      const opt = u8[at];
      if (opt === 0) break;
      let optlen = 1;
      if (opt !== 1) {
        if (at + 1 >= end) break;
        optlen = u8[at + 1]!;
        if (optlen <= 0) break;
      }
      if (opt === 2) bits |= 0x01; else if (opt === 3) bits |= 0x02;
      else if (opt === 4 || opt === 5) bits |= 0x04; else if (opt === 8) bits |= 0x08;
      at += optlen;
    }
    return bits;
  }

  /** `ipoptions` bits present (IP_OPTIONS of rule.ts), or -1 for an invalid or truncated option (no match, as ipfw). */
  ipOptionBits(): number {
    const u8 = this.u8;
    let x = Math.min(this.hlen, this.l3len) - 20;
    let bits = 0;
    for (let at = this.l3 + 20; x > 0;) {
      const opt = u8[at];
      if (opt === 0) break;
      let optlen = 1;
      if (opt !== 1) {
        if (x < 2) return -1;
        optlen = u8[at + 1]!;
        if (optlen <= 0 || optlen > x) return -1;
      }
      if (opt === 137) bits |= 0x01; else if (opt === 131) bits |= 0x02;
      else if (opt === 7) bits |= 0x04; else if (opt === 68) bits |= 0x08;
      x -= optlen; at += optlen;
    }
    return bits;
  }

  /** DSCP (6 bits) of an IP packet. */
  dscp(): number { return this.tos >> 2; }
}

/**
 * Rewrites the DSCP of the decoded packet in place (setdscp): the ECN bits are kept; IPv4's header
 * checksum is updated incrementally (RFC 1624), IPv6 has none.
 */
export function rewriteDscp(p: PacketInfo, code: number): void {
  const u8 = p.u8, l3 = p.l3;
  code &= 0x3f;
  if (p.ipVersion === 4) {
    const oldTos = u8[l3 + 1]!;
    const newTos = (code << 2) | (oldTos & 0x03);
    u8[l3 + 1] = newTos;
    // The TOS byte is the low byte of the first 16-bit word; HC' = ~(~HC + ~m + m').
    const oldWord = (u8[l3]! << 8) | oldTos;
    const newWord = (u8[l3]! << 8) | newTos;
    let sum = (~((u8[l3 + 10]! << 8) | u8[l3 + 11]!) & 0xffff) + (~oldWord & 0xffff) + newWord;
    sum = (sum & 0xffff) + (sum >>> 16);
    sum = (sum & 0xffff) + (sum >>> 16);
    const ck = ~sum & 0xffff;
    u8[l3 + 10] = ck >> 8; u8[l3 + 11] = ck & 0xff;
    p.tos = newTos;
  } else if (p.ipVersion === 6) {
    u8[l3] = (u8[l3]! & 0xf0) | (code >> 2);
    u8[l3 + 1] = (u8[l3 + 1]! & 0x3f) | ((code & 0x03) << 6);
    p.tos = (code << 2) | (p.tos & 0x03);
  }
}
