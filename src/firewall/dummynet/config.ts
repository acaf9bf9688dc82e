/**
 * Dummynet's configuration: the objects FreeBSD keeps (schedulers with their link, flowsets), the
 * exact parsing of `pipe|queue|sched N config ...` as sbin/ipfw/dummynet.c does it, and the
 * kernel's range checks (ipdn_bound_var: a value below the minimum is replaced by the default,
 * above the maximum clamped, with a notice). Everything here is plain JSON-serialisable data: it
 * travels inside FirewallConfig.dummynet and the data path (engine.ts) is rebuilt from it.
 */
import { readFileSync } from 'node:fs';
import { type MaskJSON, emptyMask } from './flowkey.js';

/** FreeBSD's DN_MAX_ID: pipe N is scheduler N+DN_MAX_ID (FIFO) fed by flowset N+2*DN_MAX_ID. */
export const DN_MAX_ID = 65536;
export const PIPE_SLOT_LIMIT = 100;
export const PIPE_BYTE_LIMIT = 1024 * 1024;
export const DEFAULT_HASH_SIZE = 64;
export const MAX_HASH_SIZE = 65536;
export const ED_MAX_SAMPLES_NO = 1024;
/** plr is stored as an integer fraction of 2^31-1, as FreeBSD does. */
export const PLR_ONE = 0x7fffffff;
/** RED's fixed point (SCALE_RED): shown values are stored scaled by 2^16 as in FreeBSD. */
export const SCALE_RED = 16;

/** Scheduler type names as FreeBSD prints them. */
export type SchedType = 'FIFO' | 'WF2Q+' | 'RR' | 'QFQ' | 'PRIO' | 'FQ_CODEL';
export const SCHED_TYPES: readonly SchedType[] = ['FIFO', 'WF2Q+', 'RR', 'QFQ', 'PRIO', 'FQ_CODEL'];

export interface LinkConf {
  /** bit/s, 0 = unlimited. */
  bw: number;
  /** milliseconds (FreeBSD truncates to ticks; we keep the exact ms). */
  delayMs: number;
  /** bytes. */
  burstBytes: number;
}

export interface ProfileConf {
  name: string;
  /** extra airtime in ms, one per sample. */
  samples: number[];
  /** index at or above which a packet is lost after using the link (loss * samples). */
  lossLevel: number;
}

export interface FqCodelConf {
  targetUs: number;
  intervalUs: number;
  quantum: number;
  limit: number;
  flows: number;
  ecn: boolean;
}

export interface SchedConf {
  nr: number;
  type: SchedType;
  hasMask: boolean;
  mask: MaskJSON;
  buckets: number;
  link: LinkConf;
  profile: ProfileConf | null;
  fqCodel: FqCodelConf;
}

export interface RedConf {
  gentle: boolean;
  ecn: boolean;
  /** scaled by 2^SCALE_RED as FreeBSD stores them. */
  wq: number;
  minTh: number;
  maxTh: number;
  maxP: number;
}

export interface FlowsetConf {
  nr: number;
  schedNr: number;
  qsize: number;
  qBytes: boolean;
  /** integer, PLR_ONE = always drop. */
  plr: number;
  buckets: number;
  hasMask: boolean;
  mask: MaskJSON;
  /** par[0..2]: weight, lmax, pri; -1 = never set (the scheduler's default applies). */
  weight: number;
  lmax: number;
  pri: number;
  red: RedConf | null;
  /** ecn given without red (an error at config time; kept for completeness). */
  noerror: boolean;
}

export interface DummynetConfigJSON {
  format: 'netmap-ts-dummynet-1';
  scheds: SchedConf[];
  flowsets: FlowsetConf[];
}

/** FreeBSD's fq_codel defaults; userland turns ECN on unless `noecn` is given. */
export const FQ_CODEL_DEFAULTS: FqCodelConf = { targetUs: 5000, intervalUs: 100000, quantum: 1514, limit: 10240, flows: 1024, ecn: true };

/** Exit statuses of sysexits.h, as ipfw uses them. */
export const EX_OK = 0;
export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_UNAVAILABLE = 69;

/** A refused command: ipfw's errx(status, message). */
export class CommandError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function usage(msg: string): never { throw new CommandError(EX_USAGE, msg); }
function dataerr(msg: string): never { throw new CommandError(EX_DATAERR, msg); }

/**
 * A whole word of digits (base 0: 0x.., 0..) in lo..hi. ipfw's strtoul read '5x' as 5, '2s' as
 * 2, '-1' as the 'never set' -1; here such words are refused with the field's range.
 */
export function wholeArg(word: string, what: string, lo: number, hi: number): number {
  const { value, rest } = strtoul(word, 0);
  if (rest !== '' || !/^[0-9]/.test(word)) dataerr(`${what}: invalid number ${word}`);
  if (value < lo || value > hi) dataerr(`${what} ${word} is out of range (${lo}..${hi})`);
  return value;
}

/**
 * C's strtoul(s, &end, base) for the bases ipfw uses (0 = auto: 0x hex, leading 0 octal, else
 * decimal). Returns the value and the unparsed rest. No digits gives 0 and the whole string as rest.
 */
export function strtoul(s: string, base = 0): { value: number; rest: string } {
  let i = 0;
  while (i < s.length && /\s/.test(s[i]!)) i++;
  let neg = false;
  if (s[i] === '+' || s[i] === '-') { neg = s[i] === '-'; i++; }
  let b = base;
  if ((b === 0 || b === 16) && s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && /[0-9a-fA-F]/.test(s[i + 2] ?? '')) {
    b = 16; i += 2;
  } else if (b === 0) {
    b = s[i] === '0' ? 8 : 10;
  }
  const start = i;
  let v = 0;
  for (; i < s.length; i++) {
    const d = parseInt(s[i]!, 36);
    if (Number.isNaN(d) || d >= b) break;
    v = v * b + d;
  }
  if (i === start) return { value: 0, rest: s };
  // strtoul saturates at ULONG_MAX; callers then clamp or report, so a huge value is enough here.
  if (v > Number.MAX_SAFE_INTEGER) v = Number.MAX_SAFE_INTEGER;
  return { value: neg ? -v : v, rest: s.slice(i) };
}

/** C's strtod prefix parse (what ipfw does with plr, w_q, max_p); 0 when no number. */
export function strtod(s: string): number {
  const m = /^\s*[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?)/i.exec(s);
  return m ? Number(m[0]) : 0;
}

/** ipfw's _substrcmp2(str, abbrev, full): str starts with abbrev and is a prefix of full. */
function substrcmp2(str: string, abbrev: string, full: string): boolean {
  return str.startsWith(abbrev) && full.startsWith(str);
}

/**
 * read_bandwidth(): integer, optional K/k (x1000) or M/m (x1e6) -- and G/g (x1e9) as newer
 * FreeBSD -- then a unit: starting with 'B' but not "Bit/s", or "bytes", means x8.
 */
export function parseBandwidth(arg: string): number {
  if (arg[0] !== undefined && arg[0] >= 'a' && arg[0] <= 'z') {
    // `bw tun0`: clocking from an interface, a legacy feature we do not have.
    throw new CommandError(1, 'no if support');
  }
  const { value, rest } = strtoul(arg, 0);
  let bw = value;
  let end = rest;
  if (end[0] === 'K' || end[0] === 'k') { end = end.slice(1); bw *= 1000; }
  else if (end[0] === 'M' || end[0] === 'm') { end = end.slice(1); bw *= 1000000; }
  else if (end[0] === 'G' || end[0] === 'g') { end = end.slice(1); bw *= 1000000000; }
  // A unit or nothing may follow: ipfw's strtoul read '1.5Mbit/s' as 1 bit/s and '10Xbit/s' as 10.
  if (end !== '' && end[0] !== 'b' && end[0] !== 'B') dataerr(`bw ${arg}: a whole number of bit/s with K, M or G and a unit (1500Kbit/s, 2MByte/s)`);
  if ((end[0] === 'B' && !substrcmp2(end, 'Bi', 'Bit/s')) || substrcmp2(end, 'by', 'bytes')) bw *= 8;
  if (bw < 0 || bw > 0xffffffff * 8) dataerr('bandwidth too large');
  return bw;
}

/** expand_number(3): a number with an optional k/m/g/t/p/e suffix, powers of 1024. */
export function expandNumber(arg: string): number {
  const m = /^(\d+)([kmgtpeKMGTPE]?)[bB]?$/.exec(arg);
  if (!m) dataerr('burst: invalid argument');
  const shift = ' kmgtpe'.indexOf((m[2] || ' ').toLowerCase());
  const v = Number(m[1]) * 2 ** (10 * Math.max(shift, 0));
  if (v > 2 ** 48 - 1) dataerr('burst: out of range (0..2^48-1)');
  return v;
}

/** Notices printed when a value is bumped or clamped (the kernel's ipdn_bound_var message). */
export function boundVar(v: number, dflt: number, lo: number, hi: number, msg: string | null, notices: string[]): number {
  if (dflt < lo) dflt = lo;
  if (dflt > hi) dflt = hi;
  let op: string;
  let out: number;
  if (v < lo) { out = dflt; op = 'Bump'; }
  else if (v > hi) { out = hi; op = 'Clamp'; }
  else return v;
  if (msg) notices.push(`${op} ${msg} to ${out} (was ${v})`);
  return out;
}

function n2mask6(len: number): number[] {
  const words = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(32, len - 32 * i));
    words[i] = bits === 0 ? 0 : bits === 32 ? 0xffffffff : ((0xffffffff << (32 - bits)) >>> 0);
  }
  return words;
}

export function newSchedConf(nr: number, type: SchedType): SchedConf {
  return { nr, type, hasMask: false, mask: emptyMask(), buckets: 0, link: { bw: 0, delayMs: 0, burstBytes: 0 }, profile: null, fqCodel: { ...FQ_CODEL_DEFAULTS } };
}

export function newFlowsetConf(nr: number, schedNr: number): FlowsetConf {
  return { nr, schedNr, qsize: 50, qBytes: false, plr: 0, buckets: 1, hasMask: false, mask: emptyMask(), weight: -1, lmax: -1, pri: -1, red: null, noerror: false };
}

/** Profile file, as load_extra_delays() reads it. */
export function loadProfile(filename: string, link: LinkConf): ProfileConf {
  let text: string;
  try { text = readFileSync(filename, 'utf8'); } catch (e) { throw new CommandError(EX_UNAVAILABLE, `fopen: ${filename}: ${(e as Error).message}`); }
  let samples = -1;
  let loss = -1;
  let name = '';
  let delayFirst = -1;
  let doPoints = false;
  const points: Array<{ prob: number; delay: number }> = [];
  const lines = text.split('\n');
  const valid = (s: string) => /^[0-9]*\.?[0-9]*$/.test(s);
  for (let ln = 0; ln < lines.length; ln++) {
    const err = (m: string): never => dataerr(`error in ${filename} at line ${ln + 1}: ${m}`);
    const words: string[] = [];
    for (const w of lines[ln]!.split(/[ \t]+/)) {
      if (w.startsWith('#')) break;
      if (w !== '') words.push(w);
    }
    if (words.length === 0) continue;
    if (words.length > 2) err('too many arguments');
    const [key, arg] = words as [string, string | undefined];
    if (arg === undefined) err(`missing arg for ${key}`);
    const k = key.toLowerCase();
    if (k === 'samples') {
      if (samples > 0) err("duplicate ``samples'' line");
      const n = parseInt(arg!, 10);
      if (!(n > 0)) err('invalid number of samples');
      if (n > ED_MAX_SAMPLES_NO) err(`too many samples, maximum is ${ED_MAX_SAMPLES_NO}`);
      samples = n; doPoints = false;
    } else if (k === 'bw') {
      link.bw = parseBandwidth(arg!);
    } else if (k === 'loss-level') {
      if (loss !== -1) err(`duplicated token: ${key}`);
      if (!valid(arg!)) err(`invalid ${arg}`);
      loss = Number(arg);
      if (loss > 1) err(`${key} greater than 1.0`);
      doPoints = false;
    } else if (k === 'name') {
      if (name !== '') err(`duplicated token: ${key}`);
      name = arg!.slice(0, 31);
      doPoints = false;
    } else if (k === 'delay' || k === 'prob') {
      if (doPoints) err(`duplicated token: ${key}`);
      delayFirst = k === 'delay' ? 1 : 0;
      doPoints = true;
    } else if (doPoints) {
      if (!valid(key) || !valid(arg!)) err('invalid point found');
      const a = Number(key), b = Number(arg);
      const p = delayFirst ? { delay: a, prob: b } : { delay: b, prob: a };
      if (p.prob > 1) err('probability greater than 1.0');
      if (points.length >= ED_MAX_SAMPLES_NO) err('too many points');
      points.push(p);
    } else {
      err(`unrecognised command '${key}'`);
    }
  }
  if (samples === -1) samples = 100;
  if (loss === -1) loss = 1;
  if (points.length < 2) dataerr(`error in ${filename} at line ${lines.length}: too few samples, need at least 2`);
  points.sort((p1, p2) => (p1.prob - p2.prob) || (p1.delay - p2.delay));
  const out = new Array<number>(samples).fill(0);
  // Interpolate the cumulative curve into `samples` equally likely extra delays.
  for (let i = 0; i < points.length - 1; i++) {
    const y1 = points[i]!.prob * samples, x1 = points[i]!.delay;
    const y2 = points[i + 1]!.prob * samples, x2 = points[i + 1]!.delay;
    let ix = Math.trunc(y1);
    const stop = Math.trunc(y2);
    if (x1 === x2) {
      for (; ix < stop; ix++) out[ix] = x1;
    } else {
      const m = (y2 - y1) / (x2 - x1);
      const c = y1 - m * x1;
      for (; ix < stop; ix++) out[ix] = Math.trunc((ix - c) / m);
    }
  }
  return { name, samples: out, lossLevel: Math.trunc(loss * samples) };
}

/**
 * The whole configuration, edited by commands. `pipe N` is stored as FreeBSD does: scheduler N
 * (WF2Q+ unless typed otherwise) and scheduler N+DN_MAX_ID (FIFO) sharing link N, and flowset
 * N+2*DN_MAX_ID feeding the FIFO one.
 */
export class DummynetConfig {
  readonly scheds = new Map<number, SchedConf>();
  readonly flowsets = new Map<number, FlowsetConf>();

  toJSON(): DummynetConfigJSON {
    const scheds = [...this.scheds.values()].sort((a, b) => a.nr - b.nr);
    const flowsets = [...this.flowsets.values()].sort((a, b) => a.nr - b.nr);
    return JSON.parse(JSON.stringify({ format: 'netmap-ts-dummynet-1', scheds, flowsets })) as DummynetConfigJSON;
  }

  load(json: unknown): void {
    const j = json as DummynetConfigJSON | null;
    this.scheds.clear();
    this.flowsets.clear();
    if (j === null || j === undefined) return;
    if (typeof j !== 'object' || j.format !== 'netmap-ts-dummynet-1' || !Array.isArray(j.scheds) || !Array.isArray(j.flowsets)) {
      throw new CommandError(EX_DATAERR, 'not a dummynet configuration');
    }
    for (const s of j.scheds) this.scheds.set(s.nr, JSON.parse(JSON.stringify(s)) as SchedConf);
    for (const f of j.flowsets) this.flowsets.set(f.nr, JSON.parse(JSON.stringify(f)) as FlowsetConf);
  }

  /**
   * `pipe|queue|sched N config ARGS` (argv[0] is the object word, argv[1] the number, argv[2]
   * 'config'). Returns the notices to print; throws CommandError on refusal, changing nothing.
   */
  configure(kind: 'pipe' | 'queue' | 'sched', args: string[], notices: string[]): void {
    let av = args;
    const n = /^[0-9]/.test(av[0] ?? '') ? parseInt(av[0]!, 10) : -1;
    if (n <= 0) usage('need a pipe/flowset/sched number');
    if (!/^[0-9]+$/.test(av[0]!)) dataerr(`invalid ${kind} number ${av[0]!}`);
    if (n >= DN_MAX_ID) dataerr(`${kind} number ${n} out of range`);
    av = av.slice(1);
    if (av[0] === 'config') av = av.slice(1);

    // What the command carries, as ipfw's dn_sch/dn_link/dn_fs/dn_profile objects.
    let sch: { type: SchedType | null; hasMask: boolean; mask: MaskJSON; buckets: number; fq: FqCodelConf; fqGiven: boolean } | null = null;
    let link: LinkConf | null = null;
    let fs: FlowsetConf | null = null;
    let profile: ProfileConf | null = null;
    let bwGiven = false;
    const given = new Set<string>();
    const q = { hasMask: false, mask: emptyMask(), buckets: 0 };
    let maskTarget: { hasMask: boolean; mask: MaskJSON; buckets: number };

    if (kind === 'pipe') {
      sch = { type: null, hasMask: false, mask: emptyMask(), buckets: 0, fq: { ...FQ_CODEL_DEFAULTS }, fqGiven: false };
      link = { bw: 0, delayMs: 0, burstBytes: 0 };
      fs = newFlowsetConf(n + 2 * DN_MAX_ID, n + DN_MAX_ID);
      fs.qsize = 0;
      maskTarget = sch;
    } else if (kind === 'queue') {
      fs = newFlowsetConf(n, 0);
      fs.qsize = 0;
      maskTarget = q;
    } else {
      sch = { type: null, hasMask: false, mask: emptyMask(), buckets: 0, fq: { ...FQ_CODEL_DEFAULTS }, fqGiven: false };
      link = { bw: 0, delayMs: 0, burstBytes: 0 };
      maskTarget = sch;
    }
    const bucketsTarget = kind === 'queue' ? q : sch!;
    const need1 = (msg: string) => { if (av[0] === undefined) usage(msg); };
    const needFs = (msg: string): FlowsetConf => { if (!fs) usage(msg); return fs; };

    while (av.length > 0) {
      const tok = av[0]!;
      av = av.slice(1);
      switch (tok) {
        case 'noerror': needFs('noerror is only for pipes').noerror = true; break;
        case 'plr': {
          const f = needFs('plr is only for pipes');
          need1('plr needs argument 0..1\n');
          // (ipfw clamped 'plr 1.5' to 1 and read 'plr abc' as 0, silently)
          const w = av[0]!;
          if (!/^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/.test(w)) dataerr(`plr: invalid number ${w} (a probability, 0..1)`);
          const d = Number(w);
          if (d > 1) dataerr(`plr ${w} is out of range (0..1)`);
          f.plr = Math.trunc(d * PLR_ONE);
          av = av.slice(1);
          break;
        }
        case 'queue': {
          const f = needFs('queue is only for pipes or flowsets');
          need1('queue needs queue size\n');
          const { value, rest } = strtoul(av[0]!, 0);
          f.qsize = value;
          if (rest[0] === 'K' || rest[0] === 'k') { f.qBytes = true; f.qsize *= 1024; }
          else if (rest[0] === 'B' || substrcmp2(rest, 'by', 'bytes')) f.qBytes = true;
          given.add('queue');
          av = av.slice(1);
          break;
        }
        case 'buckets': {
          needFs('buckets is only for pipes or flowsets');
          need1('buckets needs argument\n');
          bucketsTarget.buckets = strtoul(av[0]!, 0).value;
          given.add('buckets');
          av = av.slice(1);
          break;
        }
        case 'mask': case 'sched_mask': case 'flow_mask': {
          need1('mask needs mask specifier\n');
          const m = emptyMask();
          maskTarget.mask = m;
          maskTarget.hasMask = false;
          while (av.length >= 1) {
            const t = av[0]!;
            av = av.slice(1);
            let field: 'srcIp' | 'dstIp' | 'src6' | 'dst6' | 'flowId6' | 'srcPort' | 'dstPort' | 'proto' | null = null;
            if (t === 'all') {
              m.dstIp = 0xffffffff; m.srcIp = 0xffffffff; m.dstPort = 0xffff; m.srcPort = 0xffff; m.proto = 0xff;
              m.dst6 = n2mask6(128); m.src6 = n2mask6(128); m.flowId6 = 0xffffffff;
              maskTarget.hasMask = true;
              break;
            }
            if (t === 'queue') { m.extra = 0xffffffff; maskTarget.hasMask = true; break; }
            if (t === 'dst-ip') { m.v6 = false; field = 'dstIp'; }
            else if (t === 'src-ip') { m.v6 = false; field = 'srcIp'; }
            else if (t === 'dst-ip6' || t === 'dst-ipv6') { m.v6 = true; field = 'dst6'; }
            else if (t === 'src-ip6' || t === 'src-ipv6') { m.v6 = true; field = 'src6'; }
            else if (t === 'flow-id') { m.v6 = true; field = 'flowId6'; }
            else if (t === 'dst-port') field = 'dstPort';
            else if (t === 'src-port') field = 'srcPort';
            else if (t === 'proto') field = 'proto';
            else { av = [t, ...av]; break; }
            if (av.length < 1) usage('mask: value missing');
            const v = av[0]!;
            let a: number;
            if (v[0] === '/') {
              a = strtoul(v.slice(1), 0).value;
              // (ipfw made /33 a /32 and a negative length a full mask, silently)
              if (a < 0) dataerr(`mask ${v}: a length is not negative`);
              if ((field === 'srcIp' || field === 'dstIp') && a > 32) dataerr(`ip mask length ${v.slice(1)} is out of range (0..32)`);
              if (field !== 'src6' && field !== 'dst6') a = a === 32 ? 0xffffffff : (2 ** a - 1) >>> 0;
            } else {
              a = strtoul(v, 0).value;
              if (a < 0) dataerr(`mask ${v}: a mask is not negative`);
            }
            if (field === 'srcIp' || field === 'dstIp') {
              if (a > 0xffffffff) dataerr('ip mask must be 32 bit');
              m[field] = a >>> 0;
            }
            else if (field === 'srcPort' || field === 'dstPort') {
              if (a > 0xffff) dataerr('port mask must be 16 bit');
              m[field] = a;
            } else if (field === 'flowId6') {
              if (a > 0xfffff) dataerr('flow_id mask must be 20 bit');
              m.flowId6 = a;
            } else if (field === 'src6' || field === 'dst6') {
              if (a > 128) dataerr('in6addr invalid mask len');
              m[field] = n2mask6(a);
            } else {
              if (a > 0xff) dataerr('proto mask must be 8 bit');
              m.proto = a;
            }
            if (a !== 0) maskTarget.hasMask = true;
            av = av.slice(1);
          }
          given.add('mask');
          break;
        }
        case 'red': case 'gred': {
          const f = needFs('red is only for flowsets');
          need1('red/gred needs w_q/min_th/max_th/max_p\n');
          const parts = av[0]!.split('/');
          const red: RedConf = { gentle: tok === 'gred', ecn: f.red?.ecn ?? false, wq: 0, minTh: 0, maxTh: 0, maxP: 0 };
          if (parts[0] !== undefined) {
            const wq = strtod(parts[0]);
            if (wq > 1 || wq <= 0) dataerr('0 < w_q <= 1');
            red.wq = Math.trunc(wq * (1 << SCALE_RED));
          }
          const th = (s: string | undefined) => {
            if (s === undefined) return 0;
            const { value, rest } = strtoul(s, 0);
            return rest[0] === 'K' || rest[0] === 'k' ? value * 1024 : value;
          };
          red.minTh = th(parts[1]);
          red.maxTh = th(parts[2]);
          if (parts[3] !== undefined) {
            const mp = strtod(parts[3]);
            if (mp > 1 || mp < 0) dataerr('0 <= max_p <= 1');
            red.maxP = Math.trunc(mp * (1 << SCALE_RED));
          }
          f.red = red;
          av = av.slice(1);
          break;
        }
        case 'ecn':
          // The flag lands in the flowset; `sched` commands carry the hidden flowset N+65536.
          if (fs) { if (fs.red) fs.red.ecn = true; else given.add('ecn-pending'); }
          break;
        case 'droptail': needFs('droptail is only for flowsets').red = null; break;
        case 'bw': case 'bandwidth':
          if (!link) usage('bw is only for links');
          need1('bw needs bandwidth or interface\n');
          if (bwGiven) notices.push('duplicate token, override bandwidth value!');
          link.bw = parseBandwidth(av[0]!);
          bwGiven = true;
          av = av.slice(1);
          break;
        case 'delay':
          if (!link) usage('delay is only for links');
          need1('delay needs argument 0..10000ms\n');
          {
            // milliseconds: '20' or '20ms' (ipfw read '2s' as 2 ms and 'abc' as 0, silently)
            const { value, rest } = strtoul(av[0]!, 0);
            if (!/^[-+]?[0-9]/.test(av[0]!) || (rest !== '' && rest !== 'ms')) dataerr(`delay ${av[0]!}: give milliseconds (delay 20 or delay 20ms), 0..10000`);
            link.delayMs = value;
          }
          av = av.slice(1);
          break;
        case 'type': {
          if (!sch) usage('type is only for schedulers');
          need1('type needs a string');
          const name = av[0]!;
          if (name.length === 0 || name.length > 15) throw new CommandError(1, `type ${name} too long\n`);
          const t = SCHED_TYPES.find((x) => x.toLowerCase() === name.toLowerCase());
          // The kernel refuses an unknown type with EINVAL; ipfw then reports the setsockopt.
          if (!t) throw new CommandError(1, 'setsockopt(IP_DUMMYNET_CONFIGURE): Invalid argument');
          sch.type = t;
          av = av.slice(1);
          if (t === 'FQ_CODEL') {
            // process_extra_parms(): everything after `type fq_codel` is an fq_codel parameter.
            sch.fqGiven = true;
            const fq = sch.fq;
            while (av.length > 0) {
              const p = av[0]!;
              av = av.slice(1);
              if (p === 'target' || p === 'interval') {
                const us = av[0] === undefined ? -1 : parseTimeUs(av[0]);
                if (us < 0) dataerr(`${p} needs time\n`);
                if (p === 'target') fq.targetUs = us; else fq.intervalUs = us;
                av = av.slice(1);
              } else if (p === 'ecn') fq.ecn = true;
              else if (p === 'noecn') fq.ecn = false;
              else if (p === 'quantum' || p === 'limit' || p === 'flows') {
                if (av[0] === undefined || !/^[0-9]*\.?[0-9]*$/.test(av[0])) dataerr(`${p} needs number\n`);
                const v = parseInt(av[0], 10) || 0;
                if (p === 'quantum') fq.quantum = v; else if (p === 'limit') fq.limit = v; else fq.flows = v;
                av = av.slice(1);
              } else {
                notices.push(`${p} is Invalid parameter`);
              }
            }
          }
          break;
        }
        // (bounded per scheduler below, with a notice; a negative one read as -1 was 'never set')
        case 'weight': needFs('weight is only for flowsets'); need1('weight needs argument\n'); fs!.weight = wholeArg(av[0]!, 'weight', 0, 0xffffffff); av = av.slice(1); break;
        case 'lmax': case 'maxlen': needFs('lmax is only for flowsets'); need1('lmax needs argument\n'); fs!.lmax = wholeArg(av[0]!, 'lmax', 0, 0xffffffff); av = av.slice(1); break;
        case 'pri': case 'priority': needFs('priority is only for flowsets'); need1('priority needs argument\n'); fs!.pri = wholeArg(av[0]!, 'priority', 0, 0xffffffff); av = av.slice(1); break;
        case 'pipe': case 'sched': case 'link': case 'flowset': {
          if (kind !== 'queue') usage('pipe/sched');
          need1('pipe/link/sched needs number\n');
          fs!.schedNr = wholeArg(av[0]!, `${tok} number`, 1, DN_MAX_ID - 1);
          av = av.slice(1);
          break;
        }
        case 'profile': {
          if (profile) usage('profile already set');
          if (!link) usage('profile');
          need1('extra delay needs the file name\n');
          profile = loadProfile(av[0]!, link);
          av = av.slice(1);
          break;
        }
        case 'burst': {
          if (!link) usage('burst');
          need1('burst needs argument\n');
          link.burstBytes = expandNumber(av[0]!);
          av = av.slice(1);
          break;
        }
        default:
          dataerr(`unrecognised option \`\`${tok}''`);
      }
    }

    // Validity checks of ipfw_config_pipe().
    // 'delay -5ms' (strtoul reads the sign) is refused with the same message, not kept as -5 ms
    if (link && (link.delayMs > 10000 || link.delayMs < 0)) dataerr('delay must be < 10000');
    if (fs) {
      if (given.has('ecn-pending') && !fs.red) usage('enable red/gred for ECN');
      const r = fs.red;
      if (r) {
        const minTh = r.minTh, maxTh = r.maxTh;
        if (!r.ecn && minTh >= maxTh) dataerr(`min_th ${minTh} must be < than max_th ${maxTh}`);
        else if (r.ecn && minTh > maxTh) dataerr(`min_th ${minTh} must be =< than max_th ${maxTh}`);
        if (maxTh === 0) dataerr('max_th must be > 0');
      }
      // Kernel side (config_fs): bump a too-small size to the default, clamp a too-large one.
      const typed = given.has('queue') ? (fs.qBytes ? 'queue byte size' : 'queue slot size') : null;
      fs.qsize = fs.qBytes
        ? boundVar(fs.qsize, 16384, 1500, PIPE_BYTE_LIMIT, typed, notices)
        : boundVar(fs.qsize, 50, 1, PIPE_SLOT_LIMIT, typed, notices);
    }
    if (sch) {
      const fq = sch.fq;
      fq.targetUs = boundVar(fq.targetUs, 5000, 1, 5000000, 'fq_codel target', notices);
      fq.intervalUs = boundVar(fq.intervalUs, 100000, 1, 100000000, 'fq_codel interval', notices);
      fq.quantum = boundVar(fq.quantum, 1514, 1, 9000, 'fq_codel quantum', notices);
      fq.limit = boundVar(fq.limit, 10240, 1, 20480, 'fq_codel limit', notices);
      fq.flows = boundVar(fq.flows, 1024, 1, 65536, 'fq_codel flows', notices);
      if (sch.hasMask) sch.buckets = boundVar(sch.buckets, DEFAULT_HASH_SIZE, 1, MAX_HASH_SIZE, given.has('buckets') ? 'sched buckets' : null, notices);
      else sch.buckets = 0;
    }

    // Apply (nothing above changed the stored configuration).
    if (kind === 'pipe') {
      const base = this.scheds.get(n);
      const baseConf = newSchedConf(n, base?.type ?? 'WF2Q+');
      if (base) { baseConf.hasMask = base.hasMask; baseConf.mask = base.mask; baseConf.buckets = base.buckets; baseConf.fqCodel = base.fqCodel; }
      else { baseConf.hasMask = false; baseConf.buckets = 0; }
      baseConf.link = { ...link! };
      baseConf.profile = profile;
      this.scheds.set(n, baseConf);
      const fifo = newSchedConf(n + DN_MAX_ID, 'FIFO');
      fifo.hasMask = sch!.hasMask; fifo.mask = sch!.mask; fifo.buckets = sch!.buckets;
      fifo.link = { ...link! };
      fifo.profile = profile;
      this.scheds.set(n + DN_MAX_ID, fifo);
      fs!.buckets = 1;
      fs!.weight = 0; fs!.lmax = 0; fs!.pri = 0;
      this.flowsets.set(fs!.nr, fs!);
    } else if (kind === 'queue') {
      const f = fs!;
      const old = this.flowsets.get(n);
      if (f.schedNr === 0) {
        if (!old) throw new CommandError(1, 'setsockopt(IP_DUMMYNET_CONFIGURE): Invalid argument');
        f.schedNr = old.schedNr;
      }
      if (f.weight === -1) f.weight = old?.weight ?? -1;
      if (f.lmax === -1) f.lmax = old?.lmax ?? -1;
      if (f.pri === -1) f.pri = old?.pri ?? -1;
      f.hasMask = q.hasMask;
      f.mask = q.mask;
      f.buckets = q.hasMask ? boundVar(q.buckets, DEFAULT_HASH_SIZE, 1, MAX_HASH_SIZE, given.has('buckets') ? 'flowset buckets' : null, notices) : 1;
      const s = this.scheds.get(f.schedNr);
      if (s) boundQueueParams(f, s.type, notices, true);
      this.flowsets.set(n, f);
    } else {
      const old = this.scheds.get(n);
      const s = newSchedConf(n, sch!.type ?? old?.type ?? 'WF2Q+');
      s.hasMask = sch!.hasMask; s.mask = sch!.mask; s.buckets = sch!.buckets;
      s.fqCodel = sch!.fqGiven ? sch!.fq : (old?.fqCodel ?? { ...FQ_CODEL_DEFAULTS });
      // A sched command keeps the existing link unless it gives link parameters.
      s.link = old && !bwGiven && link!.delayMs === 0 && link!.burstBytes === 0 ? old.link : { ...link! };
      s.profile = profile ?? old?.profile ?? null;
      this.scheds.set(n, s);
    }
  }

  /** `pipe|queue|sched N delete`: false when there was nothing to delete (the kernel's EINVAL). */
  delete(kind: 'pipe' | 'queue' | 'sched', n: number): boolean {
    if (kind === 'pipe') {
      const a = this.scheds.delete(n);
      const b = this.scheds.delete(n + DN_MAX_ID);
      this.flowsets.delete(n + 2 * DN_MAX_ID);
      return a && b;
    }
    if (kind === 'queue') {
      if (n < 1 || n >= DN_MAX_ID) return false;
      return this.flowsets.delete(n);
    }
    const had = this.scheds.delete(n);
    this.flowsets.delete(n + DN_MAX_ID);
    return had;
  }

  flush(): void {
    this.scheds.clear();
    this.flowsets.clear();
  }
}

/** time_to_us(): digits with at most one dot, then us|ms|s (any case); no unit means ms. -1 if invalid. */
export function parseTimeUs(arg: string): number {
  if (arg.length > 15) return -1;
  const m = /^([0-9]*\.?[0-9]*)(.*)$/.exec(arg)!;
  if (m[1] === '' ) return -1;
  const unit = (m[2] || 'ms').toLowerCase();
  const v = strtod(m[1]!);
  if (unit === 'us') return Math.trunc(parseInt(m[1]!, 10) || 0);
  if (unit === 'ms') return Math.trunc(v * 1000);
  if (unit === 's') return Math.trunc(v * 1e6);
  return -1;
}

/** us_to_time(): how `sched show` prints fq_codel times (FreeBSD really writes seconds as "fs"). */
export function usToTime(t: number): string {
  const g = (x: number) => String(Number(Math.fround(x).toPrecision(6)));
  if (t < 0) return '';
  if (t === 0) return '0';
  if (t < 1000) return `${t}us`;
  if (t < 1000000) return `${g(t / 1000)}ms`;
  return `${g(t / 1000000)}fs`;
}

/**
 * The per-scheduler bounds of a flowset's weight/lmax/pri (each scheduler's new_fsk). Values never
 * set (-1) take the default silently; values typed out of range are clamped with a notice.
 * Returns the effective values without changing a flowset when `apply` is false.
 */
export function boundQueueParams(f: FlowsetConf, type: SchedType, notices: string[], apply: boolean): { weight: number; lmax: number; pri: number } {
  const pick = (v: number, dflt: number, lo: number, hi: number, msg: string) =>
    v === -1 ? dflt : boundVar(v, dflt, lo, hi, msg, notices);
  let weight = f.weight === -1 ? 0 : f.weight;
  let lmax = f.lmax === -1 ? 0 : f.lmax;
  const pri = f.pri === -1 ? 0 : f.pri;
  switch (type) {
    case 'WF2Q+': weight = pick(f.weight, 1, 1, 100, 'WF2Q+ weight'); break;
    case 'RR':
      weight = pick(f.weight, 1, 1, 65536, 'RR weight');
      lmax = pick(f.lmax, 1500, 64, 2048, 'RR quantum');
      break;
    case 'QFQ':
      weight = pick(f.weight, 1, 1, 65536, 'qfq weight');
      lmax = pick(f.lmax, 1500, 1, 2000, 'qfq maxlen');
      break;
    case 'PRIO': weight = pick(f.weight, 0, 0, 63, 'PRIO priority'); break;
    default: break;
  }
  if (apply) { f.weight = weight; f.lmax = lmax; f.pri = pri; }
  return { weight, lmax, pri };
}
