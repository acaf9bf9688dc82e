/**
 * Capture file writers: classic pcap (micro- or nanosecond, Ethernet by default) and pcapng
 * (one section, any number of interfaces, enhanced and simple packet blocks).
 *
 * Records are copied into one fixed output buffer (1 MiB by default) that is written out when
 * full and on flush/close, so writing allocates nothing per packet. Written in the host's
 * (little-endian) byte order, as libpcap does.
 */
import * as fs from 'node:fs';
import { fail, NetmapError } from '../errors.js';
import { MAXIMUM_SNAPLEN } from './bpf.js';
import { LINKTYPE_ETHERNET, MAX_RECORD } from './reader.js';

const DEFAULT_BUFFER = 1024 * 1024;
/** Runs of raw records at least this long are written from the caller's buffer, not copied. */
const RAW_WRITE_THROUGH = 64 * 1024;
/** Unaligned records up to this length are copied 4 bytes at a time (see OutputBuffer.copy). */
const UNALIGNED_WORDS = 256;

/**
 * Whether `e` is a writer's failure because the reader of its pipe or FIFO went away (EPIPE):
 * `dump -w - | head`, tshark -c N closing the extcap's FIFO. Node ignores SIGPIPE, so the write
 * fails with EPIPE and the tools stop quietly on this; a SIGPIPE listener must not be installed
 * (removing the last one restores the default action, and the next write kills the process).
 */
export function isReaderGone(e: unknown): boolean {
  return e instanceof NetmapError && e.code === 'EIO' && /EPIPE/.test(e.message);
}

/** Buffered output file shared by both writers. '-' is standard output. */
class OutputBuffer {
  readonly path: string;
  readonly buf: Uint8Array;
  readonly dv: DataView;
  len = 0;
  bytesWritten = 0;
  private readonly fd: number;
  private readonly ownsFd: boolean;
  private closed = false;

  constructor(path: string, size: number) {
    if (!Number.isInteger(size) || size < MAXIMUM_SNAPLEN + 1024 || size > MAX_RECORD) fail('EINVAL', `writer buffer size ${size} must be ${MAXIMUM_SNAPLEN + 1024}..${MAX_RECORD} bytes`);
    this.path = path;
    this.buf = new Uint8Array(size);
    this.dv = new DataView(this.buf.buffer);
    this.f64 = new Float64Array(this.buf.buffer, 0, size >>> 3);
    this.i32 = new Int32Array(this.buf.buffer, 0, size >>> 2);
    if (path === '-') {
      this.fd = 1;
      this.ownsFd = false;
    } else {
      try {
        this.fd = fs.openSync(path, 'w', 0o644);
      } catch (e) {
        const code = (e as { code?: string }).code;
        fail(code === 'ENOENT' ? 'ENOENT' : code === 'EACCES' ? 'EPERM' : 'EIO', `cannot create capture file ${path}: ${(e as Error).message}`);
      }
      this.ownsFd = true;
    }
  }

  /** Makes room for `n` more bytes (n <= buffer size), flushing if needed. */
  reserve(n: number): void {
    if (this.closed) fail('EINVAL', `capture file ${this.path} is closed`);
    if (this.len + n > this.buf.length) this.flush();
  }

  flush(): void {
    let off = 0;
    while (off < this.len) {
      try {
        off += fs.writeSync(this.fd, this.buf, off, this.len - off);
      } catch (e) {
        if ((e as { code?: string }).code === 'EAGAIN') continue;
        fail('EIO', `writing capture file ${this.path}: ${(e as Error).message}`);
      }
    }
    this.bytesWritten += this.len;
    this.len = 0;
  }

  /** Writes bytes straight to the file, bypassing the (flushed) buffer. */
  writeThrough(u8: Uint8Array, offset: number, length: number): void {
    let off = 0;
    while (off < length) {
      try {
        off += fs.writeSync(this.fd, u8, offset + off, length - off);
      } catch (e) {
        if ((e as { code?: string }).code === 'EAGAIN') continue;
        fail('EIO', `writing capture file ${this.path}: ${(e as Error).message}`);
      }
    }
    this.bytesWritten += length;
  }

  /** Views of the last source array given to copy() (null: not 8-byte aligned, no word views). */
  private src: Uint8Array | null = null;
  private srcDv: DataView | null = null;
  private srcF64: Float64Array | null = null;
  private srcI32: Int32Array | null = null;
  /** Word views of buf. */
  readonly f64: Float64Array;
  readonly i32: Int32Array;

  /**
   * Copies packet bytes into the buffer at this.len (room reserved by the caller), allocating
   * nothing: 8 bytes at a time through Float64Arrays when source and destination are both 8-byte
   * aligned (a bit-exact copy on V8, as the switch's copies), 4 at a time through Int32Arrays
   * when both are 4-byte aligned, else 4 at a time through DataViews; long unaligned records with
   * set(), whose subarray is an object a packet but a fraction of the copy's time. A 60-byte frame
   * from a netmap buffer took 12-15 ns with words against 36 ns through DataViews and 50-60 ns
   * with set() (1514 bytes: 95 ns with unrolled 8-byte words, 110-320 ns with set()).
   */
  copy(u8: Uint8Array, offset: number, n: number): void {
    const p = this.len;
    this.len = p + n;
    if (n <= 0) return;
    if (u8 !== this.src) this.viewsOf(u8);
    const f64 = this.srcF64;
    if (f64 !== null && ((offset | p) & 7) === 0) {
      const to = this.f64;
      let s = offset >>> 3, t = p >>> 3;
      const end = s + (n >>> 3), end4 = s + ((n >>> 5) << 2);
      for (; s < end4; s += 4, t += 4) { to[t] = f64[s]!; to[t + 1] = f64[s + 1]!; to[t + 2] = f64[s + 2]!; to[t + 3] = f64[s + 3]!; }
      for (; s < end; s++, t++) to[t] = f64[s]!;
      this.tail(u8, offset, p, n, n & ~7);
    } else if (f64 !== null && ((offset | p) & 3) === 0) {
      const from = this.srcI32!, to = this.i32;
      let s = offset >>> 2, t = p >>> 2;
      const end = s + (n >>> 2), end4 = s + ((n >>> 4) << 2);
      for (; s < end4; s += 4, t += 4) { to[t] = from[s]!; to[t + 1] = from[s + 1]!; to[t + 2] = from[s + 2]!; to[t + 3] = from[s + 3]!; }
      for (; s < end; s++, t++) to[t] = from[s]!;
      this.tail(u8, offset, p, n, n & ~3);
    } else if (n <= UNALIGNED_WORDS) {
      const from = this.srcDv!, to = this.dv;
      let i = 0;
      for (; i + 4 <= n; i += 4) to.setInt32(p + i, from.getInt32(offset + i, true), true);
      this.tail(u8, offset, p, n, i);
    } else {
      this.buf.set(u8.subarray(offset, offset + n), p);
    }
  }

  /** Bytes [from, n) of a record copy, one at a time. */
  private tail(u8: Uint8Array, offset: number, p: number, n: number, from: number): void {
    const buf = this.buf;
    for (let i = from; i < n; i++) buf[p + i] = u8[offset + i]!;
  }

  private viewsOf(u8: Uint8Array): void {
    this.src = u8;
    this.srcDv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    const aligned = (u8.byteOffset & 7) === 0;
    this.srcF64 = aligned ? new Float64Array(u8.buffer, u8.byteOffset, u8.byteLength >>> 3) : null;
    this.srcI32 = aligned ? new Int32Array(u8.buffer, u8.byteOffset, u8.byteLength >>> 2) : null;
  }

  close(): void {
    if (this.closed) return;
    try {
      this.flush();
    } finally {
      this.closed = true;
      if (this.ownsFd) fs.closeSync(this.fd);
    }
  }
}

export interface PcapWriterOptions {
  /** LINKTYPE of the file (default 1, Ethernet). */
  linktype?: number;
  /** Snapshot length recorded in the header; longer packets are truncated (default 262144). */
  snaplen?: number;
  /** Nanosecond timestamps (magic 0xa1b23c4d) instead of microseconds. */
  nanosecond?: boolean;
  bufferSize?: number;
}

function checkSnaplen(snaplen: number): number {
  if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > MAXIMUM_SNAPLEN) fail('EINVAL', `snapshot length ${snaplen} must be 1..${MAXIMUM_SNAPLEN}`);
  return snaplen;
}

function checkLinktype(linktype: number): number {
  if (!Number.isInteger(linktype) || linktype < 0 || linktype > 0xffff) fail('EINVAL', `link type ${linktype} must be 0..65535`);
  return linktype;
}

/** Writes a classic pcap file. */
export class PcapWriter {
  readonly snaplen: number;
  readonly nanosecond: boolean;
  packets = 0;
  private readonly out: OutputBuffer;

  constructor(path: string, options: PcapWriterOptions = {}) {
    this.snaplen = checkSnaplen(options.snaplen ?? MAXIMUM_SNAPLEN);
    const linktype = checkLinktype(options.linktype ?? LINKTYPE_ETHERNET);
    this.nanosecond = options.nanosecond ?? false;
    this.out = new OutputBuffer(path, options.bufferSize ?? DEFAULT_BUFFER);
    const dv = this.out.dv;
    dv.setUint32(0, this.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4, true);
    dv.setUint16(4, 2, true);
    dv.setUint16(6, 4, true);
    dv.setUint32(8, 0, true);
    dv.setUint32(12, 0, true);
    dv.setUint32(16, this.snaplen, true);
    dv.setUint32(20, linktype, true);
    this.out.len = 24;
  }

  /** Appends one record; caplen is cut to the snapshot length. tsNsec is 0..999999999. */
  write(u8: Uint8Array, offset: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number): void {
    const cap = caplen < this.snaplen ? caplen : this.snaplen;
    const out = this.out;
    out.reserve(16 + cap);
    const p = out.len;
    const frac = this.nanosecond ? tsNsec : Math.floor(tsNsec / 1000);
    if ((p & 3) === 0) {
      // the host's byte order is the file's (little-endian hosts: see the top of this file)
      const i32 = out.i32, w = p >>> 2;
      i32[w] = tsSec; i32[w + 1] = frac; i32[w + 2] = cap; i32[w + 3] = wirelen;
    } else {
      const dv = out.dv;
      dv.setUint32(p, tsSec >>> 0, true);
      dv.setUint32(p + 4, frac, true);
      dv.setUint32(p + 8, cap, true);
      dv.setUint32(p + 12, wirelen >>> 0, true);
    }
    out.len = p + 16;
    out.copy(u8, offset, cap);
    this.packets++;
  }

  /**
   * Appends `records` records already in this file's format (16-byte little-endian headers with
   * the same timestamp precision, data of caplen <= snaplen bytes), copied as they are.
   */
  writeRaw(u8: Uint8Array, offset: number, length: number, records = 1): void {
    const out = this.out;
    // Long runs (most records accepted) go to the file straight from the caller's buffer.
    if (length >= RAW_WRITE_THROUGH || length > out.buf.length) {
      out.flush();
      out.writeThrough(u8, offset, length);
    } else {
      out.reserve(length);
      out.copy(u8, offset, length);
    }
    this.packets += records;
  }

  flush(): void { this.out.flush(); }
  close(): void { this.out.close(); }
  get bytesWritten(): number { return this.out.bytesWritten + this.out.len; }
}

export interface PcapngInterface {
  linktype?: number;
  snaplen?: number;
  name?: string;
  /** Nanosecond timestamps (if_tsresol 9) instead of microseconds. */
  nanosecond?: boolean;
}

export interface PcapngWriterOptions {
  /** Interfaces described at the start (more can be added with addInterface). Default: one Ethernet. */
  interfaces?: PcapngInterface[];
  /** shb_userappl option. */
  application?: string;
  bufferSize?: number;
}

/** Writes a pcapng file: one section, its interfaces, enhanced (or simple) packet blocks. */
export class PcapngWriter {
  packets = 0;
  private readonly out: OutputBuffer;
  private readonly ifs: { snaplen: number; nanosecond: boolean }[] = [];

  constructor(path: string, options: PcapngWriterOptions = {}) {
    this.out = new OutputBuffer(path, options.bufferSize ?? DEFAULT_BUFFER);
    const app = Buffer.from(options.application ?? 'netmap-ts', 'utf8');
    if (app.length > 1024) fail('EINVAL', 'pcapng application name is longer than 1024 bytes');
    const optLen = 4 + ((app.length + 3) & ~3) + 4;
    const len = 28 + optLen;
    this.out.reserve(len);
    const dv = this.out.dv;
    let p = this.out.len;
    dv.setUint32(p, 0x0a0d0d0a, true);
    dv.setUint32(p + 4, len, true);
    dv.setUint32(p + 8, 0x1a2b3c4d, true);
    dv.setUint16(p + 12, 1, true);
    dv.setUint16(p + 14, 0, true);
    dv.setInt32(p + 16, -1, true);
    dv.setInt32(p + 20, -1, true);
    p = this.option(p + 24, 4, app);
    dv.setUint32(p, 0, true); // opt_endofopt
    dv.setUint32(p + 4, len, true);
    this.out.len = p + 8;
    for (const i of options.interfaces ?? [{}]) this.addInterface(i);
  }

  private option(p: number, code: number, value: Uint8Array): number {
    const dv = this.out.dv;
    dv.setUint16(p, code, true);
    dv.setUint16(p + 2, value.length, true);
    this.out.buf.set(value, p + 4);
    const padded = (value.length + 3) & ~3;
    this.out.buf.fill(0, p + 4 + value.length, p + 4 + padded);
    return p + 4 + padded;
  }

  /** Describes one more interface; returns its index for write(). */
  addInterface(iface: PcapngInterface): number {
    const snaplen = checkSnaplen(iface.snaplen ?? MAXIMUM_SNAPLEN);
    const linktype = checkLinktype(iface.linktype ?? LINKTYPE_ETHERNET);
    const nanosecond = iface.nanosecond ?? false;
    const name = Buffer.from(iface.name ?? '', 'utf8');
    if (name.length > 1024) fail('EINVAL', 'pcapng interface name is longer than 1024 bytes');
    const optLen = (name.length > 0 ? 4 + ((name.length + 3) & ~3) : 0) + (nanosecond ? 8 : 0) + 4;
    const len = 20 + optLen;
    this.out.reserve(len);
    const dv = this.out.dv;
    let p = this.out.len;
    dv.setUint32(p, 1, true);
    dv.setUint32(p + 4, len, true);
    dv.setUint16(p + 8, linktype, true);
    dv.setUint16(p + 10, 0, true);
    dv.setUint32(p + 12, snaplen, true);
    p += 16;
    if (name.length > 0) p = this.option(p, 2, name);
    if (nanosecond) p = this.option(p, 9, Uint8Array.of(9));
    dv.setUint32(p, 0, true);
    dv.setUint32(p + 4, len, true);
    this.out.len = p + 8;
    this.ifs.push({ snaplen, nanosecond });
    return this.ifs.length - 1;
  }

  /**
   * Appends an enhanced packet block for interface `ifIndex`; `direction` 1 inbound, 2 outbound
   * becomes its epb_flags option (0: none).
   */
  write(u8: Uint8Array, offset: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number, ifIndex = 0, direction = 0): void {
    const iface = this.ifs[ifIndex];
    if (iface === undefined) fail('EINVAL', `pcapng interface ${ifIndex} was not added`);
    const cap = caplen < iface.snaplen ? caplen : iface.snaplen;
    const padded = (cap + 3) & ~3;
    const len = 32 + padded + (direction !== 0 ? 12 : 0);
    const out = this.out;
    out.reserve(len);
    const p = out.len;
    // 64-bit timestamp in units of 1e-6 or 1e-9 s, split into two 32-bit halves without BigInt.
    const unitsPerSec = iface.nanosecond ? 1e9 : 1e6;
    const frac = iface.nanosecond ? tsNsec : Math.floor(tsNsec / 1000);
    // sec * units = secHi * 2^32 + ... computed in 16-bit pieces to stay exact.
    const a = tsSec * unitsPerSec + frac; // may exceed 2^53 for ns; split below
    let hi: number, lo: number;
    if (a < 2 ** 53) {
      hi = Math.floor(a / 4294967296);
      lo = a - hi * 4294967296;
    } else {
      const sLo = tsSec % 65536, sHi = (tsSec - sLo) / 65536;
      const t1 = sHi * unitsPerSec; // contributes t1 * 65536
      const t0 = sLo * unitsPerSec + frac;
      const t1Lo = t1 % 65536, t1Hi = (t1 - t1Lo) / 65536;
      const low32 = t1Lo * 65536 + t0; // < 2^53
      const carry = Math.floor(low32 / 4294967296);
      lo = low32 - carry * 4294967296;
      hi = t1Hi + carry;
    }
    // blocks are whole 32-bit words: p is word aligned, written in the host's byte order
    const i32 = out.i32, w = p >>> 2;
    i32[w] = 6; i32[w + 1] = len; i32[w + 2] = ifIndex; i32[w + 3] = hi; i32[w + 4] = lo;
    i32[w + 5] = cap; i32[w + 6] = wirelen;
    out.len = p + 28;
    out.copy(u8, offset, cap);
    for (let i = cap; i < padded; i++) out.buf[out.len++] = 0;
    let e = out.len >>> 2;
    if (direction !== 0) {
      // epb_flags (code 2, 4 bytes: bits 0-1 the direction), then opt_endofopt
      i32[e] = 2 | (4 << 16); i32[e + 1] = direction & 3; i32[e + 2] = 0;
      e += 3;
    }
    i32[e] = len;
    out.len = 4 * e + 4;
    this.packets++;
  }

  /** Appends a simple packet block (no timestamp; interface 0). */
  writeSimple(u8: Uint8Array, offset: number, caplen: number, wirelen: number): void {
    if (this.ifs.length === 0) fail('EINVAL', 'pcapng simple packet block needs an interface');
    const cap = Math.min(caplen, this.ifs[0]!.snaplen, wirelen);
    const padded = (cap + 3) & ~3;
    const len = 16 + padded;
    const out = this.out;
    out.reserve(len);
    const dv = out.dv;
    const p = out.len;
    dv.setUint32(p, 3, true);
    dv.setUint32(p + 4, len, true);
    dv.setUint32(p + 8, wirelen >>> 0, true);
    out.len = p + 12;
    out.copy(u8, offset, cap);
    for (let i = cap; i < padded; i++) out.buf[out.len++] = 0;
    dv.setUint32(out.len, len, true);
    out.len += 4;
    this.packets++;
  }

  flush(): void { this.out.flush(); }
  close(): void { this.out.close(); }
  get bytesWritten(): number { return this.out.bytesWritten + this.out.len; }
}
