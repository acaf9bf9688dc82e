/**
 * Test helper: a deterministic corpus of varied Ethernet frames (ARP, RARP, LLC, IPv4 with
 * options and fragments, IPv6 with extension headers, TCP with options, UDP, ICMP, ICMPv6,
 * SCTP, IGMP, PIM, ESP, VLAN, QinQ, MPLS, broadcast/multicast, truncated captures), written
 * as a pcap with timestamp seconds = 1700000000 + index so that selections can be compared.
 */
import {
  type Bytes, ether, llc, vlanTag, mplsStack, arp, ip4, ip6, ip6Ext, ip6Frag, tcp, udp, icmp, icmp6, filler, padFrame,
  TCP_SYN, TCP_ACK, TCP_FIN, TCP_RST, TCP_PSH, TCP_URG, TCP_ECE, TCP_CWR,
} from '../../src/capture/build.js';
import { PcapWriter } from '../../src/capture/writer.js';

export const TS_BASE = 1700000000;

export interface CorpusPacket {
  frame: Uint8Array;
  caplen: number;
}

import { rng } from '../helpers/prng.js';
export { rng };

const MACS = ['02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03', '0a:1b:2c:3d:4e:5f'];
const BCAST = 'ff:ff:ff:ff:ff:ff';
const MCAST4 = '01:00:5e:00:00:01';
const MCAST6 = '33:33:00:00:00:01';
const V4 = ['198.18.0.1', '198.18.0.2', '198.18.0.3', '198.19.1.1', '198.18.5.9', '198.18.5.200', '224.0.0.1', '239.1.2.3', '198.18.255.255'];
const V6 = ['2001:db8::1', '2001:db8::2', '2001:db8:1::5', 'fe80::1', 'ff02::1', '2001:db8:ffff::ab'];
const PORTS = [20, 21, 22, 53, 67, 68, 80, 123, 443, 1024, 5000, 8080, 65535];

export function buildCorpus(count = 600, seed = 1): CorpusPacket[] {
  const r = rng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)]!;
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const port = (): number => (r() < 0.8 ? pick(PORTS) : int(1, 65535));
  const tcpOpts = (): Bytes => {
    const o: Bytes = [];
    if (r() < 0.5) o.push(2, 4, 5, 180); // MSS 1460
    if (r() < 0.4) o.push(1, 3, 3, 7); // NOP, window scale 7
    if (r() < 0.3) o.push(4, 2); // SACK permitted
    if (r() < 0.3) o.push(1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 0, 0); // NOP NOP timestamp
    return o;
  };
  const tcpSeg = (): Bytes => tcp({
    sport: port(), dport: port(), seq: int(0, 0xffffffff), ack: int(0, 0xffffffff),
    flags: pick([TCP_SYN, TCP_SYN | TCP_ACK, TCP_ACK, TCP_ACK | TCP_PSH, TCP_FIN | TCP_ACK, TCP_RST, TCP_RST | TCP_ACK, TCP_URG | TCP_ACK, TCP_ECE | TCP_CWR | TCP_SYN, 0]),
    win: int(0, 65535), options: r() < 0.5 ? tcpOpts() : [],
  }, filler(r() < 0.5 ? 0 : int(1, 120), int(0, 9)));
  const udpDgram = (): Bytes => udp(port(), port(), filler(int(0, 80)));
  const sctpPkt = (): Bytes => [...[port(), port()].flatMap((p) => [p >> 8, p & 0xff]), 0, 0, 0, 1, 0, 0, 0, 0, ...filler(int(4, 40))];
  const icmp4 = (): Bytes => {
    const [type, code] = pick([[0, 0], [8, 0], [3, 1], [3, 3], [11, 0], [13, 0], [5, 1], [12, 0]]);
    return icmp(type, code, [0, int(0, 255), 0, int(0, 255)], filler(int(0, 56)));
  };
  const icmpv6 = (): Bytes => {
    const [type, code] = pick([[128, 0], [129, 0], [135, 0], [136, 0], [1, 4], [2, 0], [3, 0], [133, 0], [134, 0]]);
    return icmp6(type, code, [0, 0, 0, int(0, 255)], filler(int(0, 40)));
  };
  const v4 = (proto: number, payload: Bytes, extra: Partial<Parameters<typeof ip4>[0]> = {}): Bytes =>
    ip4({ src: pick(V4), dst: pick(V4), proto, id: int(0, 65535), ttl: int(1, 255), tos: pick([0, 0, 0x10, 0xb8]), ...extra }, payload);
  const v6 = (nh: number, payload: Bytes): Bytes => ip6({ src: pick(V6), dst: pick(V6), nh, hlim: int(1, 255) }, payload);

  const l3builders: Array<() => { type: number; bytes: Bytes }> = [
    () => ({ type: 0x0800, bytes: v4(6, tcpSeg()) }),
    () => ({ type: 0x0800, bytes: v4(6, tcpSeg()) }),
    () => ({ type: 0x0800, bytes: v4(17, udpDgram()) }),
    () => ({ type: 0x0800, bytes: v4(17, udpDgram()) }),
    () => ({ type: 0x0800, bytes: v4(1, icmp4()) }),
    () => ({ type: 0x0800, bytes: v4(pick([6, 17]), pick([tcpSeg, udpDgram])(), { options: pick([[7, 7, 4, 0, 0, 0, 0], [1, 1, 1, 0], [0x94, 4, 0, 0]]) }) }),
    () => ({ type: 0x0800, bytes: v4(pick([6, 17, 1]), pick([tcpSeg, udpDgram, icmp4])(), { moreFragments: true, fragOffset: 0 }) }),
    () => ({ type: 0x0800, bytes: v4(pick([6, 17, 1]), filler(int(8, 64)), { moreFragments: r() < 0.5, fragOffset: int(1, 400) }) }),
    () => ({ type: 0x0800, bytes: v4(132, sctpPkt()) }),
    () => ({ type: 0x0800, bytes: v4(pick([2, 103, 50, 51, 47, 112, 9]), filler(int(8, 40))) }),
    () => ({ type: 0x0800, bytes: v4(6, tcpSeg(), { dontFragment: true }) }),
    () => ({ type: 0x86dd, bytes: v6(6, tcpSeg()) }),
    () => ({ type: 0x86dd, bytes: v6(17, udpDgram()) }),
    () => ({ type: 0x86dd, bytes: v6(58, icmpv6()) }),
    () => ({ type: 0x86dd, bytes: v6(132, sctpPkt()) }),
    () => ({ type: 0x86dd, bytes: v6(0, ip6Ext(pick([6, 17, 58]), [5, 2, 0, 0], pick([tcpSeg, udpDgram, icmpv6])())) }),
    () => {
      const nh = pick([6, 17, 58]);
      const first = r() < 0.6;
      const inner = first ? pick([tcpSeg, udpDgram, icmpv6])() : filler(int(8, 48));
      return { type: 0x86dd, bytes: v6(44, ip6Frag(nh, first ? 0 : int(1, 300), r() < 0.7, int(0, 0xffffffff), inner)) };
    },
    () => ({ type: 0x86dd, bytes: v6(43, ip6Ext(17, [0, 0, 0, 0, 0, 0], udpDgram())) }),
    () => ({ type: 0x86dd, bytes: v6(60, ip6Ext(6, [1, 0], tcpSeg())) }),
    () => ({ type: 0x0806, bytes: arp(pick([1, 2]), pick(MACS), pick(V4), pick(['00:00:00:00:00:00', ...MACS]), pick(V4)) }),
    () => ({ type: 0x8035, bytes: arp(pick([3, 4]), pick(MACS), pick(V4), pick(MACS), pick(V4)) }),
    () => ({ type: pick([0x88cc, 0x9000, 0x0842, 0x8863]), bytes: filler(int(20, 60)) }),
  ];

  const out: CorpusPacket[] = [];
  for (let n = 0; n < count; n++) {
    let frame: Bytes;
    const dst = r() < 0.1 ? BCAST : r() < 0.1 ? pick([MCAST4, MCAST6]) : pick(MACS);
    const src = pick(MACS);
    if (r() < 0.05) {
      frame = llc(dst, src, pick([0x42, 0xaa, 0xfe, 0x06, 0xf0, 0xe0]), pick([0x42, 0xaa, 0xfe, 0x06]), filler(int(10, 50)));
    } else {
      let l3 = pick(l3builders)();
      const wrap = r();
      if (wrap < 0.05 && (l3.type === 0x0800 || l3.type === 0x86dd)) {
        const labels = r() < 0.5 ? [int(0, 0xfffff)] : [int(0, 0xfffff), int(0, 0xfffff)];
        l3 = { type: 0x8847, bytes: mplsStack(labels, l3.bytes) };
      } else if (wrap < 0.15) {
        l3 = vlanTag(pick([0x8100, 0x8100, 0x88a8, 0x9100]), pick([1, 10, 20, 100, 4095, int(0, 4095)]), int(0, 7), l3.type, l3.bytes);
      } else if (wrap < 0.20) {
        const inner = vlanTag(0x8100, pick([10, 20, int(0, 4095)]), 0, l3.type, l3.bytes);
        l3 = vlanTag(pick([0x88a8, 0x9100, 0x8100]), pick([100, 200, int(0, 4095)]), 0, inner.type, inner.bytes);
      }
      frame = ether(dst, src, l3.type, l3.bytes);
    }
    frame = padFrame(frame);
    let caplen = frame.length;
    const cut = r();
    if (cut < 0.08) caplen = int(1, frame.length - 1);
    else if (cut < 0.12) caplen = Math.min(frame.length, pick([14, 20, 24, 34, 38, 40, 54]));
    out.push({ frame: Uint8Array.from(frame), caplen });
  }
  return out;
}

/** Writes the corpus as a microsecond pcap; packet i has timestamp TS_BASE + i seconds. */
export function writeCorpus(path: string, packets: CorpusPacket[]): void {
  const w = new PcapWriter(path);
  packets.forEach((p, i) => w.write(p.frame, 0, p.caplen, p.frame.length, TS_BASE + i, i * 1000));
  w.close();
}
