/*
 * ---------------------------------------------------------------------------------------------
 * README section: port names (src/ports/name.ts) — to be folded into src/ports/README.md
 * ---------------------------------------------------------------------------------------------
 *
 * NAME
 *   parsePortSpec, formatPortSpec — the libnetmap "portspec" grammar (nmport_open names).
 *
 * SYNOPSIS
 *   import { parsePortSpec, formatPortSpec } from './ports/name.js';
 *   const p = parsePortSpec('netmap:eth0-2/Tx@conf:rings=4');   // throws NetmapError on bad input
 *   formatPortSpec(p);                                          // canonical text, parses back equal
 *
 * DESCRIPTION
 *   A pure function (no I/O, no kernel look-up). Grammar, scanned left to right:
 *
 *     portspec  := header [ring_sel] { flags | memid } [options]
 *     header    := "netmap:" vpname                ; nothing allowed between "netmap" and ':'
 *                | "vale" [swid] ":" vpname        ; swid [A-Za-z0-9_]*, may be empty ("vale:p")
 *     vpname    := portname [ ("{" | "}") pipeid ] ; '{' = master end, '}' = slave end
 *     portname  := ends at the first of  - * ^ / @  (the mode separators); '{'/'}' split off the pipe
 *     pipeid    := [A-Za-z0-9_]+                  ; always validated (`pipe{1}2` is invalid)
 *     ring_sel  := "^"        -> SW       (all host rings)
 *                | "^" num    -> ONE_SW   (host ring num)
 *                | "*"        -> NIC_SW   (all NIC and host rings)
 *                | "-" num    -> ONE_NIC  (NIC ring pair num)
 *                  (absent)   -> ALL_NIC
 *     flags     := "/" { x | z | t | r | R | T }+ ; x exclusive, z zero-copy monitor, t monitor TX,
 *                                                 ; r monitor RX, R RX rings only, T TX rings only
 *     memid     := "@" digits                     ; 1..65535; repeating the same value is allowed
 *     options   := { "@" optname ( "=" value | ":" key "=" value { "," key "=" value } ) }+
 *     num       := decimal digits, 0 <= num < 4095 (NETMAP_RING_MASK)
 *
 *   The ring selector, if any, must come right after the name (only one selector: `eth0*-1`,
 *   `eth0/x-1`, `eth0@2*` are syntax errors). After it, flag groups and mem_ids may alternate,
 *   but a flag group ends only at '@' (`eth0/x/R` is an error, `eth0/x@2/R` is fine, as in
 *   libnetmap). Options start at the first '@' NOT followed by a digit; from there to the end
 *   the text is split at every '@' into options.
 *
 *   Options:
 *     @share=PORT, @share:port=PORT   share the memory of port PORT (a port name without mode
 *                                     suffix, e.g. netmap:eth0 or vale0:1). The mem_id is looked
 *                                     up by the caller at register time; a conflict with an
 *                                     explicit @N is also detected there.
 *     @conf:key=N,...                 keys rings, host-rings, slots (fill both directions) and
 *                                     tx-rings, rx-rings, host-tx-rings, host-rx-rings, tx-slots,
 *                                     rx-slots (override the generic key, whatever the order), and
 *                                     our extensions extra-bufs (number of extra buffers to request;
 *                                     libnetmap has no portspec syntax for that), backend=xdp|packet
 *                                     (interfaces: AF_XDP or AF_PACKET sockets) and vnet-hdr (0, 10
 *                                     or 12: the port's virtio-net header length, netmap's
 *                                     NETMAP_REQ_PORT_HDR_SET at open). In key names '-'
 *                                     and '_' are the same (host_rings == host-rings).
 *     @extmem..., @offset...          recognised but not supported: EOPNOTSUPP.
 *   Each option at most once, each key at most once per option.
 *
 *   Result fields: `name` is nr_name — for netmap the text after "netmap:", for vale the whole
 *   "valeX:port", both including the pipe suffix; `parentName` is the name without the pipe
 *   suffix; `portName` the port part without pipe suffix (after ':' for vale); `switchName` the
 *   switch incl. the "vale" prefix (vale only, else null). Flags are reported as given ('z' is
 *   not expanded into t+r here). formatPortSpec emits the canonical form
 *   header ring_sel "/"flags(in order xztrRT) "@"memid "@conf:"keys "@share="port, using the
 *   generic conf key when both directions are equal; parse(format(p)) equals p in every field
 *   but `spec`. formatPortSpec re-parses its output and throws EINVAL if p is inconsistent.
 *
 *   Name validation (our choice between strict libnetmap before Nov 2023 and relaxed after):
 *   - strict (default): port part [A-Za-z0-9_.]+ . '.' is accepted so that VLAN interfaces such
 *     as em0.123 work (the reason libnetmap relaxed its check); ':' is refused, so
 *     `netmap:vale0:0` and `netmap:eth0&` are EINVAL as in ctrl-api-test.
 *   - { strictNames: false }: any character except the separators - * ^ / @ { } — but never a
 *     control character (U+0000-U+001F, U+007F) nor a lone UTF-16 surrogate, since nr_name is a
 *     C string. Note: relaxed `netmap:vale0:0` parses with subsystem 'netmap', name 'vale0:0'
 *     (which the kernel would resolve as a VALE port, as libnetmap does).
 *   - always: the switch id [A-Za-z0-9_]*, the pipe id [A-Za-z0-9_]+, and port parts '.' and
 *     '..' are refused (names may become file names).
 *   - pipes have no host rings: a pipe name with '^', '^N' or '*' is EINVAL (netmap_pipe.c).
 *
 * ERRORS
 *   NetmapError EINVAL with "invalid port name '<spec>': <what> at offset <n>", n being the
 *   0-based index in <spec> of the offending part, e.g.
 *     prefix unknown or missing / no identifier allowed between 'netmap' and ':' /
 *     missing ':' in vale name / invalid bridge name / invalid character in port name /
 *     invalid empty port name / invalid empty pipe name / invalid pipe name / name too long /
 *     got '' while expecting a number / '5000' out of range [0, 4095) / unexpected character /
 *     unrecognized flag 'q' / '/' must be followed by at least one flag / invalid empty mem_id /
 *     invalid mem_id 0, must be > 0 / double setting of mem_id / invalid empty option /
 *     unknown option: 'xxx' / duplicate option / syntax error: missing body / unknown key /
 *     duplicate key 'rings' / missing value / value out of range (naming the key).
 *   NetmapError EOPNOTSUPP "option 'extmem' is not supported" (also 'offset').
 *   Nothing else is ever thrown; the parser is linear in the input length.
 *
 * LIMITS
 *   spec length <= 1024 characters; nr_name < 64 bytes (UTF-8); netmap interface names without
 *   pipe suffix < 16 bytes (IFNAMSIZ), with a pipe suffix only the 64-byte limit applies; vale:
 *   switch name incl. "vale" < 16 characters and port part (after ':', without pipe suffix)
 *   < 16 bytes; ring number 0..4094; mem_id 1..65535; conf: rings keys 1..256, slots keys
 *   2..16384, extra-bufs 0..1048576, decimal digits only (no sign, no hex).
 * ---------------------------------------------------------------------------------------------
 */

import { fail, type ErrnoName } from '../errors.js';

export type RegMode = 'ALL_NIC' | 'SW' | 'NIC_SW' | 'ONE_NIC' | 'ONE_SW';

export interface PortConf {
  txRings?: number;
  rxRings?: number;
  hostTxRings?: number;
  hostRxRings?: number;
  txSlots?: number;
  rxSlots?: number;
  extraBufs?: number;
  /** virtio-net header length of the port's frames: 0, 10 or 12 (`vnet-hdr`, our extension). */
  vnetHdr?: number;
  /** Interfaces: the backend of the NIC rings (`backend=xdp|packet`); unset: AF_XDP where it works. */
  backend?: 'xdp' | 'packet';
}

export interface PortSpec {
  /** The input string. */
  spec: string;
  subsystem: 'netmap' | 'vale';
  /** nr_name: 'eth0', 'pipe{in', 'vale0:p1', 'vale0:0{0' (incl. pipe suffix, excl. mode/flags/options). */
  name: string;
  /** vale only: the switch name incl. the 'vale' prefix ('vale0'; 'vale' for 'vale:x'), else null. */
  switchName: string | null;
  /** Port part without pipe suffix: 'eth0', 'pipe', 'p1' (for vale: the part after ':'). */
  portName: string;
  /** Name of the port without the pipe suffix ('pipe', 'vale0:0', 'eth0'). */
  parentName: string;
  /** '{' master, '}' slave. */
  pipe: { role: 'master' | 'slave'; id: string } | null;
  mode: RegMode;
  /** Ring number for ONE_NIC / ONE_SW, else 0. */
  ringId: number;
  exclusive: boolean;
  zcopyMonitor: boolean;
  monitorTx: boolean;
  monitorRx: boolean;
  /** /R */
  rxRingsOnly: boolean;
  /** /T */
  txRingsOnly: boolean;
  /** 0 when not given. */
  memId: number;
  conf: PortConf;
  /** @share=PORTNAME / @share:port=PORTNAME */
  share: string | null;
}

// ---- limits -------------------------------------------------------------------------------------

/** Longest portspec accepted at all (keeps every message and scan bounded). */
const SPEC_MAX = 1024;
/** nr_name buffer size (NETMAP_REQ_IFNAMSIZ): names must be shorter. */
const NR_NAME_SIZE = 64;
/** IFNAMSIZ: interface names, VALE switch names and VALE port parts must be shorter. */
const IFNAMSIZ = 16;
/** NETMAP_RING_MASK: ring numbers must be below. */
const RING_MASK = 0x0fff;
const MEMID_MAX = 0xffff;

interface KeyBounds {
  readonly lo: number;
  readonly hi: number;
}
const RINGS: KeyBounds = { lo: 1, hi: 256 };
const SLOTS: KeyBounds = { lo: 2, hi: 16384 };
const EXTRA: KeyBounds = { lo: 0, hi: 1048576 };
const VNET_HDR: KeyBounds = { lo: 0, hi: 12 };

/** conf keys (normalised: '-' → '_') and their bounds. */
const CONF_KEYS: ReadonlyMap<string, KeyBounds> = new Map([
  ['rings', RINGS], ['host_rings', RINGS], ['slots', SLOTS],
  ['tx_rings', RINGS], ['rx_rings', RINGS], ['host_tx_rings', RINGS], ['host_rx_rings', RINGS],
  ['tx_slots', SLOTS], ['rx_slots', SLOTS], ['extra_bufs', EXTRA], ['vnet_hdr', VNET_HDR],
  ['backend', { lo: 0, hi: 0 }],
]);
/** Values of the one conf key that takes a word, not a number. */
const BACKENDS: readonly string[] = ['xdp', 'packet'];

const MODE_SEPARATORS = '-*^/@';
const FLAG_ORDER = 'xztrRT';

// ---- error helpers ------------------------------------------------------------------------------

/** Printable rendering of (possibly hostile) input for messages: escapes, bounded length. */
function show(text: string): string {
  const limit = 80;
  let out = '';
  const n = Math.min(text.length, limit);
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x20 && c < 0x7f) out += text[i];
    else if (c < 0x100) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += '\\u' + c.toString(16).padStart(4, '0');
  }
  return text.length > limit ? out + '...' : out;
}

function bad(spec: string, what: string, offset: number, code: ErrnoName = 'EINVAL'): never {
  fail(code, `invalid port name '${show(spec)}': ${what} at offset ${offset}`);
}

// ---- character classes --------------------------------------------------------------------------

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** [A-Za-z0-9_] */
function isIdent(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
}

/** Is the code unit at i part of a well-formed surrogate pair? */
function isPairedSurrogate(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff) {
    const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
    return d >= 0xdc00 && d <= 0xdfff;
  }
  if (c >= 0xdc00 && c <= 0xdfff) {
    const d = i > 0 ? s.charCodeAt(i - 1) : 0;
    return d >= 0xd800 && d <= 0xdbff;
  }
  return true;
}

function portCharOk(s: string, i: number, strict: boolean): boolean {
  const c = s.charCodeAt(i);
  if (strict) return isIdent(c) || c === 0x2e; // '.'
  if (c < 0x20 || c === 0x7f) return false;
  return isPairedSurrogate(s, i);
}

/** UTF-8 length of a string already known to hold no lone surrogates. */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) { n += 4; i++; }
    else n += 3;
  }
  return n;
}

function describeChar(s: string, i: number): string {
  const c = s.charCodeAt(i);
  return c >= 0x20 && c < 0x7f ? `'${s[i]}'` : `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}

// ---- header: subsystem, switch, port, pipe ------------------------------------------------------

type Header = Pick<PortSpec, 'subsystem' | 'name' | 'switchName' | 'portName' | 'parentName' | 'pipe'> & {
  /** index just after the name (first separator or `end`). */
  end: number;
};

/**
 * Parses `spec[start, end)` as a port name; stops at the first mode separator.
 * `ctx` prefixes every message (used for the value of @share).
 */
function parseHeader(spec: string, start: number, end: number, strict: boolean, ctx: string): Header {
  const err = (what: string, at: number): never => bad(spec, ctx + what, at);
  let subsystem: 'netmap' | 'vale';
  let i: number;
  if (end - start >= 6 && spec.startsWith('netmap', start)) {
    subsystem = 'netmap';
    i = start + 6;
  } else if (end - start >= 4 && spec.startsWith('vale', start)) {
    subsystem = 'vale';
    i = start + 4;
  } else {
    return err("prefix unknown or missing (must begin with 'netmap:' or 'vale')", start);
  }
  let colon = spec.indexOf(':', i);
  if (colon >= end) colon = -1;
  if (colon < 0) {
    return err(subsystem === 'netmap' ? "missing ':' after 'netmap'" : "missing ':' in vale name", end);
  }
  let switchName: string | null = null;
  if (subsystem === 'netmap') {
    if (colon !== i) return err("no identifier allowed between 'netmap' and ':'", i);
  } else {
    for (let k = i; k < colon; k++) {
      if (!isIdent(spec.charCodeAt(k))) {
        return err(`invalid bridge name '${show(spec.slice(start, colon))}': character ${describeChar(spec, k)} not allowed`, k);
      }
    }
    switchName = spec.slice(start, colon);
    if (switchName.length >= IFNAMSIZ) {
      return err(`bridge name '${switchName}' too long (${switchName.length} characters, max ${IFNAMSIZ - 1})`, start);
    }
  }
  const vp = colon + 1;
  let scan = vp;
  while (scan < end && !MODE_SEPARATORS.includes(spec[scan]!)) scan++;
  let pipesep = vp;
  while (pipesep < scan && spec[pipesep] !== '{' && spec[pipesep] !== '}') pipesep++;

  for (let k = vp; k < pipesep; k++) {
    if (!portCharOk(spec, k, strict)) {
      return err(`invalid character ${describeChar(spec, k)} in port name '${show(spec.slice(vp, pipesep))}'`, k);
    }
  }
  let pipe: Header['pipe'] = null;
  if (pipesep < scan) {
    const idStart = pipesep + 1;
    if (idStart === scan) return err('invalid empty pipe name', idStart);
    for (let k = idStart; k < scan; k++) {
      if (!isIdent(spec.charCodeAt(k))) {
        return err(`invalid pipe name '${show(spec.slice(idStart, scan))}': character ${describeChar(spec, k)} not allowed`, k);
      }
    }
    pipe = { role: spec[pipesep] === '{' ? 'master' : 'slave', id: spec.slice(idStart, scan) };
  }
  const portName = spec.slice(vp, pipesep);
  if (portName.length === 0) return err('invalid empty port name', vp);
  if (portName === '.' || portName === '..') return err(`invalid port name '${portName}'`, vp);

  const nameStart = subsystem === 'netmap' ? vp : start;
  const name = spec.slice(nameStart, scan);
  const nameBytes = utf8Length(name);
  if (nameBytes >= NR_NAME_SIZE) {
    return err(`name '${show(name)}' too long (${nameBytes} bytes, max ${NR_NAME_SIZE - 1})`, nameStart);
  }
  const portBytes = utf8Length(portName);
  if (subsystem === 'netmap' && pipe === null && portBytes >= IFNAMSIZ) {
    return err(`interface name '${show(portName)}' too long (${portBytes} bytes, max ${IFNAMSIZ - 1})`, vp);
  }
  if (subsystem === 'vale' && portBytes >= IFNAMSIZ) {
    return err(`VALE port name '${show(portName)}' too long (${portBytes} bytes, max ${IFNAMSIZ - 1})`, vp);
  }
  const parentName = subsystem === 'netmap' ? portName : `${switchName}:${portName}`;
  return { subsystem, name, switchName, portName, parentName, pipe, end: scan };
}

// ---- numbers ------------------------------------------------------------------------------------

/** Index just past the run of decimal digits starting at i. */
function digitsEnd(spec: string, i: number, end: number): number {
  while (i < end && isDigit(spec.charCodeAt(i))) i++;
  return i;
}

/** Value of a digit string; Infinity when it is too long to matter (keeps comparisons exact). */
function digitsValue(digits: string): number {
  let k = 0;
  while (k < digits.length - 1 && digits[k] === '0') k++;
  return digits.length - k > 15 ? Infinity : Number(digits.slice(k));
}

// ---- options ------------------------------------------------------------------------------------

interface OptionsResult {
  conf: PortConf;
  share: string | null;
}

function parseOptions(spec: string, at: number, strict: boolean): OptionsResult {
  const n = spec.length;
  const seen = new Set<string>();
  const result: OptionsResult = { conf: {}, share: null };
  let i = at;
  while (i < n) {
    // spec[i] === '@'
    const s = i + 1;
    let e = spec.indexOf('@', s);
    if (e < 0) e = n;
    if (e === s) bad(spec, 'invalid empty option', s);
    parseOption(spec, s, e, strict, seen, result);
    i = e;
  }
  return result;
}

function parseOption(
  spec: string, s: number, e: number, strict: boolean, seen: Set<string>, result: OptionsResult,
): void {
  let d = s;
  while (d < e && spec[d] !== ':' && spec[d] !== '=') d++;
  const opt = spec.slice(s, d);
  if (opt !== 'share' && opt !== 'conf') {
    if (opt === 'extmem' || opt === 'offset') bad(spec, `option '${opt}' is not supported`, s, 'EOPNOTSUPP');
    bad(spec, `unknown option: '${show(opt)}'`, s);
  }
  if (seen.has(opt)) bad(spec, `duplicate option '${opt}'`, s);
  seen.add(opt);
  if (d === e) bad(spec, `syntax error: missing body after '${opt}'`, e);

  if (spec[d] === '=') {
    if (opt === 'conf') bad(spec, "syntax error: '=' not valid after 'conf'", d);
    // share: the whole rest is the value of the default key 'port'.
    if (d + 1 === e) bad(spec, `missing value for option '${opt}'`, d + 1);
    result.share = parseShareValue(spec, d + 1, e, strict);
    return;
  }

  // ':' key=value{,key=value}
  if (d + 1 === e) bad(spec, `option '${opt}': missing key=value list`, d + 1);
  const values = new Map<string, { raw: string; value: string; at: number }>();
  let a = d + 1;
  for (;;) {
    let b = spec.indexOf(',', a);
    if (b < 0 || b > e) b = e;
    if (a === b) bad(spec, `option '${opt}': empty key`, a);
    let eq = spec.indexOf('=', a);
    if (eq < 0 || eq > b) eq = b;
    const raw = spec.slice(a, eq);
    const key = raw.replace(/-/g, '_');
    const known = opt === 'share' ? key === 'port' : CONF_KEYS.has(key);
    if (!known) bad(spec, `option '${opt}': unknown key '${show(raw)}'`, a);
    const prev = values.get(key);
    if (prev !== undefined) bad(spec, `option '${opt}': duplicate key '${raw}', already set to '${show(prev.value)}'`, a);
    if (eq === b) bad(spec, `option '${opt}': missing '=value' for key '${raw}'`, b);
    if (eq + 1 === b) bad(spec, `option '${opt}': missing value for key '${raw}'`, b);
    values.set(key, { raw, value: spec.slice(eq + 1, b), at: eq + 1 });
    if (opt === 'share') result.share = parseShareValue(spec, eq + 1, b, strict);
    if (b === e) break;
    a = b + 1;
  }
  if (opt === 'share') return; // the only key ('port') is mandatory and was just set

  // conf: validate numbers, then generic keys first, specific keys override.
  const num = new Map<string, number>();
  for (const [key, { raw, value, at }] of values) {
    if (key === 'backend') {
      if (!BACKENDS.includes(value)) bad(spec, `option 'conf': key '${raw}' must be xdp or packet, not '${show(value)}'`, at);
      result.conf.backend = value as 'xdp' | 'packet';
      continue;
    }
    const bounds = CONF_KEYS.get(key)!;
    if (digitsEnd(value, 0, value.length) !== value.length) {
      bad(spec, `option 'conf': key '${raw}' needs a decimal integer, got '${show(value)}'`, at);
    }
    const v = digitsValue(value);
    if (v < bounds.lo || v > bounds.hi) {
      bad(spec, `option 'conf': key '${raw}' value ${show(value)} out of range [${bounds.lo}, ${bounds.hi}]`, at);
    }
    if (key === 'vnet_hdr' && v !== 0 && v !== 10 && v !== 12) {
      bad(spec, `option 'conf': key '${raw}' must be 0, 10 or 12 (a virtio-net header length), got ${show(value)}`, at);
    }
    num.set(key, v);
  }
  const conf = result.conf;
  const set = (key: string, ...fields: Exclude<keyof PortConf, 'backend'>[]): void => {
    const v = num.get(key);
    if (v !== undefined) for (const f of fields) conf[f] = v;
  };
  set('rings', 'txRings', 'rxRings');
  set('host_rings', 'hostTxRings', 'hostRxRings');
  set('slots', 'txSlots', 'rxSlots');
  set('tx_rings', 'txRings');
  set('rx_rings', 'rxRings');
  set('host_tx_rings', 'hostTxRings');
  set('host_rx_rings', 'hostRxRings');
  set('tx_slots', 'txSlots');
  set('rx_slots', 'rxSlots');
  set('extra_bufs', 'extraBufs');
  set('vnet_hdr', 'vnetHdr');
}

/** The value of @share must be a port name with nothing after it. */
function parseShareValue(spec: string, s: number, e: number, strict: boolean): string {
  const h = parseHeader(spec, s, e, strict, "option 'share': ");
  if (h.end !== e) {
    bad(spec, `option 'share': unexpected '${show(spec.slice(h.end, e))}' after port name`, h.end);
  }
  return spec.slice(s, e);
}

// ---- the parser ---------------------------------------------------------------------------------

const enum State { Start, RingSuffixOk, Flags, FlagsOk, MemId }

/**
 * Parses a libnetmap portspec ("netmap:eth0-1/x@conf:rings=2", "vale0:p1{in", ...).
 * Throws NetmapError EINVAL (EOPNOTSUPP for the extmem/offset options) on bad input.
 */
export function parsePortSpec(spec: string, opts?: { strictNames?: boolean }): PortSpec {
  if (typeof spec !== 'string') fail('EINVAL', `invalid port name: expected a string, got ${typeof spec}`);
  if (spec.length > SPEC_MAX) bad(spec, `port spec too long (${spec.length} characters, max ${SPEC_MAX})`, SPEC_MAX);
  const strict = opts?.strictNames !== false;
  const n = spec.length;
  const h = parseHeader(spec, 0, n, strict, '');

  let mode: RegMode = 'ALL_NIC';
  let modeAt = -1;
  let ringId = 0;
  let memId = 0;
  let flags = '';
  let state = State.Start;
  let optionsAt = n;
  let i = h.end;

  const ringNumber = (): void => {
    const e = digitsEnd(spec, i, n);
    if (e === i) bad(spec, `got '${show(spec.slice(i))}' while expecting a number`, i);
    const digits = spec.slice(i, e);
    const v = digitsValue(digits);
    if (v >= RING_MASK) bad(spec, `'${show(digits)}' out of range [0, ${RING_MASK})`, i);
    ringId = v;
    i = e;
  };

  scan: while (i < n) {
    const c = spec[i];
    switch (state) {
      case State.Start:
        // parseHeader stopped at a separator, so c is one of - * ^ / @
        modeAt = i;
        i++;
        if (c === '^') {
          mode = 'SW';
          if (i < n && isDigit(spec.charCodeAt(i))) {
            mode = 'ONE_SW';
            ringNumber();
          }
          state = State.RingSuffixOk;
        } else if (c === '*') {
          mode = 'NIC_SW';
          state = State.RingSuffixOk;
        } else if (c === '-') {
          mode = 'ONE_NIC';
          ringNumber();
          state = State.RingSuffixOk;
        } else if (c === '/') {
          modeAt = -1;
          state = State.Flags;
        } else {
          modeAt = -1;
          state = State.MemId;
        }
        break;
      case State.RingSuffixOk:
        if (c === '/') state = State.Flags;
        else if (c === '@') state = State.MemId;
        else bad(spec, `unexpected character ${describeChar(spec, i)}`, i);
        i++;
        break;
      case State.Flags:
      case State.FlagsOk:
        if (c === '@') {
          if (state === State.Flags) bad(spec, "'/' must be followed by at least one flag letter", i);
          state = State.MemId;
        } else if (FLAG_ORDER.includes(c!)) {
          if (!flags.includes(c!)) flags += c;
          state = State.FlagsOk;
        } else {
          bad(spec, `unrecognized flag ${describeChar(spec, i)}`, i);
        }
        i++;
        break;
      case State.MemId: {
        const e = digitsEnd(spec, i, n);
        if (e === i) {
          optionsAt = i - 1; // the '@' starts the options
          break scan;
        }
        const digits = spec.slice(i, e);
        const v = digitsValue(digits);
        if (v === 0) bad(spec, 'invalid mem_id 0, must be > 0', i);
        if (v > MEMID_MAX) bad(spec, `invalid mem_id ${show(digits)}, must be <= ${MEMID_MAX}`, i);
        if (memId !== 0 && memId !== v) bad(spec, `double setting of mem_id: ${v}, already set to ${memId}`, i);
        memId = v;
        i = e;
        state = State.RingSuffixOk;
        break;
      }
    }
  }
  if (optionsAt === n) {
    if (state === State.MemId) bad(spec, 'invalid empty mem_id', n);
    if (state === State.Flags) bad(spec, "'/' must be followed by at least one flag letter", n);
  }
  if (h.pipe !== null && (mode === 'SW' || mode === 'NIC_SW' || mode === 'ONE_SW')) {
    bad(spec, `pipe '${show(h.name)}' has no host rings: '${spec[modeAt]}' not allowed (only '-N' or all rings)`, modeAt);
  }
  const { conf, share } = parseOptions(spec, optionsAt, strict);

  return {
    spec,
    subsystem: h.subsystem,
    name: h.name,
    switchName: h.switchName,
    portName: h.portName,
    parentName: h.parentName,
    pipe: h.pipe,
    mode,
    ringId,
    exclusive: flags.includes('x'),
    zcopyMonitor: flags.includes('z'),
    monitorTx: flags.includes('t'),
    monitorRx: flags.includes('r'),
    rxRingsOnly: flags.includes('R'),
    txRingsOnly: flags.includes('T'),
    memId,
    conf,
    share,
  };
}

// ---- the formatter ------------------------------------------------------------------------------

const CONF_FIELDS: readonly (keyof PortConf)[] = [
  'txRings', 'rxRings', 'hostTxRings', 'hostRxRings', 'txSlots', 'rxSlots', 'extraBufs', 'backend', 'vnetHdr',
];

function confText(c: PortConf): string {
  const parts: string[] = [];
  const pair = (generic: string, tx: string, rx: string, a: number | undefined, b: number | undefined): void => {
    if (a !== undefined && a === b) parts.push(`${generic}=${a}`);
    else {
      if (a !== undefined) parts.push(`${tx}=${a}`);
      if (b !== undefined) parts.push(`${rx}=${b}`);
    }
  };
  pair('rings', 'tx-rings', 'rx-rings', c.txRings, c.rxRings);
  pair('host-rings', 'host-tx-rings', 'host-rx-rings', c.hostTxRings, c.hostRxRings);
  pair('slots', 'tx-slots', 'rx-slots', c.txSlots, c.rxSlots);
  if (c.extraBufs !== undefined) parts.push(`extra-bufs=${c.extraBufs}`);
  if (c.backend !== undefined) parts.push(`backend=${c.backend}`);
  if (c.vnetHdr !== undefined) parts.push(`vnet-hdr=${c.vnetHdr}`);
  return parts.join(',');
}

function samePortSpec(a: PortSpec, b: PortSpec): boolean {
  const scalar: (keyof PortSpec)[] = [
    'subsystem', 'name', 'switchName', 'portName', 'parentName', 'mode', 'ringId', 'exclusive',
    'zcopyMonitor', 'monitorTx', 'monitorRx', 'rxRingsOnly', 'txRingsOnly', 'memId', 'share',
  ];
  for (const k of scalar) if (a[k] !== b[k]) return false;
  if ((a.pipe === null) !== (b.pipe === null)) return false;
  if (a.pipe !== null && b.pipe !== null && (a.pipe.role !== b.pipe.role || a.pipe.id !== b.pipe.id)) return false;
  for (const f of CONF_FIELDS) if (a.conf[f] !== b.conf[f]) return false;
  return true;
}

/**
 * Canonical text for a PortSpec; parsePortSpec(formatPortSpec(p)) equals p in every field but
 * `spec`. Throws NetmapError EINVAL when p is not something the parser could have produced.
 */
export function formatPortSpec(p: PortSpec): string {
  if (p === null || typeof p !== 'object' || p.conf === null || typeof p.conf !== 'object') {
    fail('EINVAL', 'cannot format port spec: not a PortSpec object');
  }
  let s = p.subsystem === 'vale' ? `${p.switchName}:${p.portName}` : `netmap:${p.portName}`;
  if (p.pipe !== null && typeof p.pipe === 'object') s += (p.pipe.role === 'master' ? '{' : '}') + p.pipe.id;
  switch (p.mode) {
    case 'SW': s += '^'; break;
    case 'NIC_SW': s += '*'; break;
    case 'ONE_NIC': s += `-${p.ringId}`; break;
    case 'ONE_SW': s += `^${p.ringId}`; break;
    default: break;
  }
  let flags = '';
  if (p.exclusive) flags += 'x';
  if (p.zcopyMonitor) flags += 'z';
  if (p.monitorTx) flags += 't';
  if (p.monitorRx) flags += 'r';
  if (p.rxRingsOnly) flags += 'R';
  if (p.txRingsOnly) flags += 'T';
  if (flags !== '') s += '/' + flags;
  if (p.memId !== 0) s += `@${p.memId}`;
  const conf = confText(p.conf);
  if (conf !== '') s += `@conf:${conf}`;
  if (p.share !== null) s += `@share=${p.share}`;

  let back: PortSpec;
  try {
    back = parsePortSpec(s, { strictNames: false });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return fail('EINVAL', `cannot format port spec: inconsistent fields (${why})`);
  }
  if (!samePortSpec(back, p)) fail('EINVAL', `cannot format port spec: inconsistent fields ('${show(s)}' parses differently)`);
  return s;
}
