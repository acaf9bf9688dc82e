/**
 * `pipe|queue|sched show` text, line for line as FreeBSD's list_pipes() prints it (sbin/ipfw/
 * dummynet.c), from our configuration and the engine's live counters.
 */
import { DN_MAX_ID, PLR_ONE, SCALE_RED, type DummynetConfig, type FlowsetConf, type SchedConf, boundQueueParams, usToTime } from './config.js';
import { type Engine, type FlowQueue, type Instance } from './engine.js';
import { FlowKey, maskedFlowHash, maskFromJSON } from './flowkey.js';
import { type MaskJSON } from './flowkey.js';

const PROTO_NAMES: Record<number, string> = {
  0: 'ip', 1: 'icmp', 2: 'igmp', 4: 'ipencap', 6: 'tcp', 17: 'udp', 41: 'ipv6', 43: 'ipv6-route', 44: 'ipv6-frag',
  47: 'gre', 50: 'esp', 51: 'ah', 58: 'ipv6-icmp', 59: 'ipv6-nonxt', 60: 'ipv6-opts', 103: 'pim', 112: 'vrrp', 132: 'sctp', 136: 'udplite',
};

function padL(s: string | number, w: number): string { return String(s).padStart(w, ' '); }
function padR(s: string | number, w: number): string { return String(s).padEnd(w, ' '); }
function hex(v: number, w: number): string { return '0x' + (v >>> 0).toString(16).padStart(w, '0'); }
/** C's %f. */
function f6(v: number): string { return v.toFixed(6); }
/** C's %7.3f. */
function f73(v: number): string { return padL(v.toFixed(3), 7); }

function ipv4(a: number): string { return `${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`; }

/** inet_ntop(AF_INET6) of four 32-bit words: lower case, longest run (>= 2) of zero groups as '::'. */
export function ipv6Text(w: ArrayLike<number>): string {
  const g: number[] = [];
  for (let i = 0; i < 4; i++) { g.push((w[i]! >>> 16) & 0xffff, w[i]! & 0xffff); }
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i; while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  // IPv4-mapped / compatible forms as inet_ntop prints them.
  if (best === 0 && (bestLen === 6 || (bestLen === 5 && g[5] === 0xffff))) {
    const tail = `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
    if (bestLen === 6 && (g[6] !== 0 || g[7]! > 1)) return `::${tail}`;
    if (bestLen === 5) return `::ffff:${tail}`;
  }
  const parts: string[] = [];
  for (let i = 0; i < 8; i++) {
    if (i === best) { parts.push(i === 0 ? ':' : ''); i += bestLen - 1; if (i === 7) parts.push(''); continue; }
    parts.push(g[i]!.toString(16));
  }
  return parts.join(':');
}

/** humanize_number(buf, 12, n, "", HN_AUTOSCALE, 0) as FreeBSD prints a link's burst. */
export function humanizeBurst(n: number): string {
  const prefixes = ['', 'K', 'M', 'G', 'T', 'P', 'E'];
  // len 12, baselen 3 (digit, prefix, separator): numbers below 10^9 print unscaled.
  const max = 1e9;
  let q = n, rem = 0, i = 0;
  while ((q >= max || (q === max - 1 && rem >= 973)) && i < prefixes.length - 1) { rem = q % 1024; q = Math.floor(q / 1024); i++; }
  const v = q + Math.floor((rem + 512) / 1024);
  return i === 0 ? `${v}` : `${v} ${prefixes[i]}`;
}

function maskLine(m: MaskJSON): string {
  const extra = m.extra ? 'queue,' : '';
  if (!m.v6) return `    mask: ${extra} ${hex(m.proto, 2)} ${hex(m.srcIp, 8)}/${hex(m.srcPort, 4)} -> ${hex(m.dstIp, 8)}/${hex(m.dstPort, 4)}`;
  return `\n        mask: ${extra}proto: ${hex(m.proto, 2)}, flow_id: ${hex(m.flowId6, 8)},  ${ipv6Text(m.src6)}/${hex(m.srcPort, 4)} -> ${ipv6Text(m.dst6)}/${hex(m.dstPort, 4)}`;
}

const HEADER_V4 = 'BKT Prot ___Source IP/port____ ____Dest. IP/port____ Tot_pkt/bytes Pkt/Byte Drp';
const HEADER_V6 = 'BKT ___Prot___ _flow-id_ ______________Source IPv6/port_______________ _______________Dest. IPv6/port_______________ Tot_pkt/bytes Pkt/Byte Drp';

const ALL = (() => { const k = new FlowKey(); k.proto = 0xff; k.srcIp = 0xffffffff; k.dstIp = 0xffffffff; k.srcPort = 0xffff; k.dstPort = 0xffff; k.src6.fill(0xffffffff); k.dst6.fill(0xffffffff); k.flowId6 = 0xffffffff; k.extra = 0xffffffff; return k; })();

interface FlowCounters { fid: FlowKey; totPkts: number; totBytes: number; length: number; lenBytes: number; drops: number }

/** One row of the per-flow table (list_flow). */
export function flowRow(c: FlowCounters): string {
  const id = c.fid;
  const bkt = maskedFlowHash(id, ALL) & 0xff;
  let s = padL(bkt, 3) + (id.extra ? '*' : ' ');
  const pe = PROTO_NAMES[id.proto];
  if (!id.isV6) {
    s += pe !== undefined ? padR(pe, 4) + ' ' : padL(id.proto, 4) + ' ';
    s += padL(ipv4(id.srcIp), 15) + '/' + padR(id.srcPort, 5) + ' ';
    s += padL(ipv4(id.dstIp), 15) + '/' + padR(id.dstPort, 5) + ' ';
  } else {
    s += padL(pe ?? String(id.proto), 9) + ' ';
    s += padL(id.flowId6 | 0, 7) + '  ' + padL(ipv6Text(id.src6), 39) + '/' + padR(id.srcPort, 5) + ' ';
    s += ' ' + padL(ipv6Text(id.dst6), 39) + '/' + padR(id.dstPort, 5) + ' ';
  }
  s += padL(c.totPkts, 4) + ' ' + padL(c.totBytes, 8) + ' ';
  s += padL(c.length, 2) + ' ' + padL(c.lenBytes, 4) + ' ' + padL(c.drops, 3);
  return s;
}

function linkLine(s: SchedConf): string {
  const b = s.link.bw;
  let bw: string;
  if (b === 0) bw = 'unlimited     ';
  else if (b >= 1e9) bw = `${f73(b / 1e9)} Gbit/s`;
  else if (b >= 1e6) bw = `${f73(b / 1e6)} Mbit/s`;
  else if (b >= 1e3) bw = `${f73(b / 1e3)} Kbit/s`;
  else bw = `${f73(b)} bit/s `;
  const nr = String(s.nr % DN_MAX_ID).padStart(5, '0');
  return `${nr}: ${bw} ${padL(Math.trunc(s.link.delayMs), 4)} ms burst ${humanizeBurst(s.link.burstBytes)}`;
}

function flowsetLine(f: FlowsetConf, flows: number, schedType: SchedConf['type'] | null): string[] {
  const l = f.qsize;
  const qs = f.qBytes ? (l >= 8192 ? `${Math.trunc(l / 1024)} KB` : `${l} B`) : `${padL(l, 3)} sl.`;
  const plr = f.plr ? `plr ${f6(f.plr / PLR_ONE)}` : '';
  let red: string;
  if (f.red) {
    red = `\n\t ${f.red.gentle ? 'G' : ' '}RED w_q ${f6(f.red.wq / (1 << SCALE_RED))} min_th ${f.red.minTh} max_th ${f.red.maxTh} max_p ${f6(f.red.maxP / (1 << SCALE_RED))}`;
    if (f.red.ecn) red += ' (ecn)';
  } else red = 'droptail';
  const eff = schedType ? boundQueueParams(f, schedType, [], false) : { weight: Math.max(f.weight, 0), lmax: Math.max(f.lmax, 0), pri: Math.max(f.pri, 0) };
  const qline = `q${String(f.nr).padStart(5, '0')} ${qs}${plr} ${flows} flows (${f.buckets} buckets) sched ${f.schedNr} weight ${eff.weight} lmax ${eff.lmax} pri ${eff.pri} ${red}`;
  const out = qline.split('\n');
  if (f.hasMask) out.push(...maskLine(f.mask).split('\n'));
  return out;
}

/** Parses ipfw's show arguments: numbers, ranges a-b, comma lists. Empty = everything. */
export function parseRanges(args: string[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const a of args) {
    for (const part of a.split(',')) {
      if (part === '') continue;
      const m = /^(\d+)(?:-(\d+))?$/.exec(part);
      if (!m) continue;
      const lo = Number(m[1]), hi = m[2] !== undefined ? Number(m[2]) : lo;
      if (hi < lo || hi >= DN_MAX_ID - 1) continue;
      out.push([lo, hi]);
    }
  }
  return out;
}

function inRanges(n: number, ranges: Array<[number, number]>): boolean {
  if (ranges.length === 0) return n >= 1 && n < DN_MAX_ID;
  for (const [lo, hi] of ranges) if (n >= lo && n <= hi) return true;
  return false;
}

function instanceCounters(si: Instance): FlowCounters { return si; }
function queueCounters(q: FlowQueue): FlowCounters { return q; }

/** The text of `pipe show`, `sched show` or `queue show` (each line ends with '\n'). */
export function showText(kind: 'pipe' | 'queue' | 'sched', args: string[], conf: DummynetConfig, engine: Engine): string {
  const ranges = parseRanges(args);
  const lines: string[] = [];
  let header = true;
  const rows = (list: FlowCounters[]) => {
    for (const c of list) {
      if (header) { lines.push(c.fid.isV6 ? HEADER_V6 : HEADER_V4); header = false; }
      lines.push(flowRow(c));
    }
  };
  if (kind === 'queue') {
    const fss = [...conf.flowsets.values()].filter((f) => f.nr < DN_MAX_ID && inRanges(f.nr, ranges)).sort((a, b) => a.nr - b.nr);
    for (const f of fss) {
      const queues = engine.queuesOf(f.nr);
      const sched = conf.scheds.get(f.schedNr) ?? null;
      lines.push(...flowsetLine(f, queues.length, sched ? sched.type : null));
      rows(queues.map(queueCounters));
    }
    return lines.map((l) => l + '\n').join('');
  }
  const scheds = [...conf.scheds.values()]
    .filter((s) => (kind === 'pipe' ? s.nr > DN_MAX_ID && inRanges(s.nr - DN_MAX_ID, ranges) : s.nr < DN_MAX_ID && inRanges(s.nr, ranges)))
    .sort((a, b) => a.nr - b.nr);
  for (const s of scheds) {
    lines.push(linkLine(s));
    if (s.profile && s.profile.samples.length > 0) {
      lines.push(`\t profile: name "${s.profile.name}" loss ${f6(s.profile.lossLevel / s.profile.samples.length)} samples ${s.profile.samples.length}`);
    }
    // The internal flowset of a single-queue scheduler (q131073 for pipe 1).
    const internal = conf.flowsets.get(s.nr + DN_MAX_ID);
    if (internal && (s.type === 'FIFO' || s.type === 'FQ_CODEL')) lines.push(...flowsetLine(internal, 0, s.type));
    const active = engine.instanceCountOf(s.nr);
    lines.push(` sched ${s.nr} type ${s.type} flags ${hex(s.hasMask ? 1 : 0, 0).replace(/^0x$/, '0x0')} ${s.buckets} buckets ${active} active`);
    if (s.type === 'FQ_CODEL') {
      // get_extra_parms(DN_SCH_PARAMS), printed between the sched line and its mask.
      const fq = s.fqCodel;
      lines.push(` FQ_CODEL target ${usToTime(fq.targetUs)} interval ${usToTime(fq.intervalUs)} quantum ${fq.quantum} limit ${fq.limit} flows ${fq.flows} ${fq.ecn ? 'ECN' : 'NoECN'}`);
    }
    if (s.hasMask) lines.push(...maskLine(s.mask).split('\n'));
    const children = [...conf.flowsets.values()].filter((f) => f.schedNr === s.nr && f.nr < DN_MAX_ID).map((f) => f.nr).sort((a, b) => a - b);
    if (children.length > 0) lines.push(`   Children flowsets: ${children.map((c) => `${c} `).join('')}`);
    rows(engine.instancesOf(s.nr).map(instanceCounters));
  }
  return lines.map((l) => l + '\n').join('');
}

export { maskFromJSON };
