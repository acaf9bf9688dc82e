/**
 * Streaming reader for capture files: classic pcap (micro- or nanosecond, either byte order,
 * any link type) and pcapng (sections, interface descriptions, enhanced, simple and obsolete
 * packet blocks; other blocks are skipped).
 *
 * The file is read through one fixed-size buffer (1 MiB by default, grown only for a single
 * record larger than that, up to MAX_RECORD), so memory stays constant whatever the file size.
 * Records are delivered zero-copy: the callback gets the buffer, an offset and the lengths; the
 * bytes are valid only during the callback.
 *
 * A corrupt or truncated file raises EIO naming the file offset of the bad record, after every
 * record before it has been delivered.
 */
import * as fs from 'node:fs';
import { fail, NetmapError } from '../errors.js';
import { MAXIMUM_SNAPLEN, type PacketFilter } from './bpf.js';

/** Maps part of a file read-only (src/native's mapFileReadOnly fits): the caller passes it to enable mapping. */
export type FileMapper = (fd: number, offset: number, length: number) => { buffer: ArrayBuffer; unmap(): void };

/** Called once per record; `u8` is valid only during the call. */
export type RecordHandler = (
  u8: Uint8Array, offset: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number, ifIndex: number,
) => void;

export const LINKTYPE_ETHERNET = 1;

/** Largest record or block accepted (libpcap's pcapng block limit). */
export const MAX_RECORD = 16 * 1024 * 1024;
const DEFAULT_BUFFER = 1024 * 1024;
/** Read buffer for large files: small enough to stay in a core's L2 cache between read(2) and the scan. */
const LARGE_FILE_BUFFER = 512 * 1024;
/** Regular files at least this large are read through a sliding read-only mapping. */
const MAP_THRESHOLD = 8 * 1024 * 1024;
const MAP_WINDOW = 64 * 1024 * 1024;
const MAP_ALIGN = 65536; // a multiple of every page size Linux uses

export interface InterfaceInfo {
  linktype: number;
  snaplen: number;
  /** Timestamp units per second (1e6 for microseconds, 1e9 for nanoseconds, 2^n for binary). */
  unitsPerSec: number;
  /** Seconds added to every timestamp (pcapng if_tsoffset). */
  tsOffset: number;
  name: string;
}

export type FileFormat = 'pcap' | 'pcapng';

const PCAP_MAGIC_US = 0xa1b2c3d4, PCAP_MAGIC_NS = 0xa1b23c4d, PCAP_MAGIC_KUZNETZOV = 0xa1b2cd34;
const PCAPNG_SHB = 0x0a0d0d0a, PCAPNG_BOM = 0x1a2b3c4d;
const BT_IDB = 1, BT_PB = 2, BT_SPB = 3, BT_EPB = 6;

export interface ReaderOptions {
  /** Size of the read buffer in bytes (default 1 MiB; 512 KiB for regular files of 8 MiB or more). */
  bufferSize?: number;
  /**
   * With a mapper (e.g. `mapFileReadOnly` of src/native), regular files of 8 MiB or more are read
   * through a sliding 64 MiB read-only mapping instead of read(2): no copy. The file must not
   * shrink while it is being read. Without one (the default) the reader needs no FFI, so a tool
   * that only reads files starts without loading it.
   */
  mapper?: FileMapper;
  /** false turns mapping off even with a mapper. */
  mmap?: boolean;
}

/** Runs of accepted records one scan of copyAccepted notes at most (it stops early when full). */
const SCAN_MAX_RUNS = 4096;
const SCAN_POS = 0, SCAN_COUNT = 1, SCAN_STOP = 2, SCAN_RUNS = 3, SCAN_FIRST_RUN = 4;
/** Why a scan stopped: the next record is not (wholly) in the buffer, a bad record header, a full run table or the limit. */
const STOP_NEED_DATA = 0, STOP_BAD = 1, STOP_EARLY = 2;
/**
 * The scan's results (one table for every reader: a scan never runs inside another): the next
 * position, the records read, why it stopped, the number of runs, then (start, end, records) per
 * run of consecutive accepted records.
 */
const scanOut = new Int32Array(SCAN_FIRST_RUN + 3 * SCAN_MAX_RUNS);

/**
 * The hot loop of copyAccepted: reads the whole little-endian pcap records of u8[pos, end), at
 * most `limit`, runs the filter on each and notes the runs of consecutive accepted records in
 * scanOut. It decodes nothing but the lengths, copies nothing, reads no object property and
 * calls nothing but the filter: V8 compiles it once, small, with the filter inlined, and no
 * path of it is first taken after that (which would throw the compiled code away).
 */
function scanRecords(
  u8: Uint8Array, dv: DataView, pos: number, end: number, limit: number, maxCap: number, fracLimit: number, filter: PacketFilter,
): void {
  const out = scanOut;
  let count = 0, runs = 0, runStart = 0, runEnd = -1, runRecords = 0, stop = STOP_NEED_DATA;
  while (end - pos >= 16) {
    // The table keeps a slot for the run still open.
    if (count >= limit || runs >= SCAN_MAX_RUNS - 1) { stop = STOP_EARLY; break; }
    const caplen = dv.getUint32(pos + 8, true);
    if (caplen > maxCap || dv.getUint32(pos + 4, true) >= fracLimit) { stop = STOP_BAD; break; }
    const next = pos + 16 + caplen;
    if (next > end) break;
    count++;
    if (filter(u8, pos + 16, caplen, dv.getUint32(pos + 12, true)) !== 0) {
      if (runEnd === pos) {
        runRecords++;
      } else {
        if (runRecords > 0) {
          const r = SCAN_FIRST_RUN + 3 * runs++;
          out[r] = runStart; out[r + 1] = runEnd; out[r + 2] = runRecords;
        }
        runStart = pos;
        runRecords = 1;
      }
      runEnd = next;
    }
    pos = next;
  }
  if (runRecords > 0) {
    const r = SCAN_FIRST_RUN + 3 * runs++;
    out[r] = runStart; out[r + 1] = runEnd; out[r + 2] = runRecords;
  }
  out[SCAN_POS] = pos; out[SCAN_COUNT] = count; out[SCAN_STOP] = stop; out[SCAN_RUNS] = runs;
}

/**
 * Moves the runs of the last scan down to `to` (copyWithin: memmove, no allocation); returns
 * the end of the block. Leaves the number of records in scanOut[SCAN_POS] (the position was
 * read already). A function of its own, as scanRecords, so that its loop is compiled alone.
 */
function compactRuns(buf: Uint8Array, to: number, runs: number): number {
  const out = scanOut;
  let records = 0;
  for (let r = SCAN_FIRST_RUN; r < SCAN_FIRST_RUN + 3 * runs; r += 3) {
    const s = out[r]!, e = out[r + 1]!;
    if (s !== to) buf.copyWithin(to, s, e);
    to += e - s;
    records += out[r + 2]!;
  }
  out[SCAN_POS] = records;
  return to;
}

export class CaptureFileReader {
  readonly path: string;
  readonly format: FileFormat;
  /** Interfaces seen so far (pcap: exactly one; pcapng: grows as IDBs are read). */
  readonly interfaces: InterfaceInfo[] = [];
  /** True for nanosecond pcap or a first pcapng interface with a finer than microsecond resolution. */
  readonly nanosecond: boolean;
  /** Byte order of the (current section of the) file. */
  littleEndian: boolean;
  /** Records delivered so far. */
  delivered = 0;

  private fd: number;
  private readonly ownsFd: boolean;
  private buf: Uint8Array;
  private dv: DataView;
  private pos = 0; // next unread byte in buf
  private end = 0; // bytes of buf holding file data
  private bufFileOff = 0; // file offset of buf[0]
  private eof = false;
  private closed = false;
  private sectionBase = 0; // index in interfaces of this pcapng section's interface 0
  private kuznetzov = false;
  private fileSize = 0; // mapped mode: the size at open
  private unmap: (() => void) | null = null; // mapped mode: releases the current window
  private mapped = false;
  private mapper: FileMapper | null = null;

  constructor(path: string, options: ReaderOptions = {}) {
    this.path = path;
    const size = options.bufferSize ?? DEFAULT_BUFFER;
    if (!Number.isInteger(size) || size < 4096 || size > MAX_RECORD) {
      fail('EINVAL', `reader buffer size ${size} must be 4096..${MAX_RECORD} bytes`);
    }
    this.buf = new Uint8Array(size);
    this.dv = new DataView(this.buf.buffer);
    if (path === '-') {
      this.fd = 0;
      this.ownsFd = false;
    } else {
      try {
        this.fd = fs.openSync(path, 'r');
      } catch (e) {
        const code = (e as { code?: string }).code;
        fail(code === 'ENOENT' ? 'ENOENT' : code === 'EACCES' ? 'EPERM' : 'EIO', `cannot open capture file ${path}: ${(e as Error).message}`);
      }
      this.ownsFd = true;
      try {
        const st = fs.fstatSync(this.fd);
        if (options.mapper !== undefined && options.mmap !== false && st.isFile() && st.size >= MAP_THRESHOLD) {
          this.mapped = true;
          this.mapper = options.mapper;
          this.fileSize = st.size;
        } else if (options.bufferSize === undefined && st.isFile() && st.size >= MAP_THRESHOLD) {
          // The kernel copies into this buffer and the scan reads it right after: at 512 KiB it
          // is still in the L2 cache (with 8 MiB the scan took three times longer).
          this.buf = new Uint8Array(LARGE_FILE_BUFFER);
          this.dv = new DataView(this.buf.buffer);
        }
      } catch {
        // fstat failing leaves the plain read path.
      }
    }
    try {
      if (!this.fill(4)) this.corrupt(0, this.end === 0 ? 'file is empty' : 'file is shorter than any capture file header');
      const be = this.dv.getUint32(0, false);
      if (be === PCAPNG_SHB) {
        this.format = 'pcapng';
        this.littleEndian = true;
        this.readSectionHeader();
        this.nanosecond = false;
        // Read blocks up to the first interface so that linktype/snaplen are known up front.
        this.readUntilInterface();
        this.nanosecond = this.interfaces.length > 0 && this.interfaces[0]!.unitsPerSec > 1e6;
      } else {
        this.format = 'pcap';
        const le = this.dv.getUint32(0, true);
        let nano: boolean;
        if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS || be === PCAP_MAGIC_KUZNETZOV) {
          this.littleEndian = false;
          nano = be === PCAP_MAGIC_NS;
          this.kuznetzov = be === PCAP_MAGIC_KUZNETZOV;
        } else if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS || le === PCAP_MAGIC_KUZNETZOV) {
          this.littleEndian = true;
          nano = le === PCAP_MAGIC_NS;
          this.kuznetzov = le === PCAP_MAGIC_KUZNETZOV;
        } else {
          this.corrupt(0, `unknown file format (magic 0x${be.toString(16).padStart(8, '0')} is neither pcap nor pcapng)`);
        }
        this.nanosecond = nano;
        this.readPcapHeader(nano);
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Link type of the first interface (pcap: the file's). */
  get linktype(): number {
    return this.interfaces.length > 0 ? this.interfaces[0]!.linktype : LINKTYPE_ETHERNET;
  }

  /** Snapshot length of the first interface (pcap: the file's). */
  get snaplen(): number {
    return this.interfaces.length > 0 ? this.interfaces[0]!.snaplen : MAXIMUM_SNAPLEN;
  }

  /**
   * Delivers up to `max` records (all remaining when max <= 0) to `handler`; returns how many
   * were delivered, 0 at the end of the file. Throws EIO on a corrupt or truncated record, after
   * delivering the records before it.
   */
  dispatch(max: number, handler: RecordHandler): number {
    if (this.closed) fail('EINVAL', `capture file ${this.path} is closed`);
    const limit = max <= 0 ? Infinity : max;
    return this.format === 'pcap' ? this.dispatchPcap(limit, handler) : this.dispatchPcapng(limit, handler);
  }

  /** Closes the file; further dispatch calls fail. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.unmap !== null) this.unmap();
    this.unmap = null;
    this.buf = new Uint8Array(0);
    this.dv = new DataView(this.buf.buffer);
    if (this.ownsFd) fs.closeSync(this.fd);
  }

  // ---- classic pcap --------------------------------------------------------------------

  private readPcapHeader(nano: boolean): void {
    if (!this.fill(24)) this.corrupt(this.end, `pcap file header is truncated (${this.end} of 24 bytes)`);
    const le = this.littleEndian;
    const major = this.dv.getUint16(4, le);
    const minor = this.dv.getUint16(6, le);
    if (major !== 2) this.corrupt(4, `unsupported pcap version ${major}.${minor}`);
    let snaplen = this.dv.getUint32(16, le);
    const linkField = this.dv.getUint32(20, le);
    if (snaplen === 0 || snaplen > MAXIMUM_SNAPLEN) snaplen = MAXIMUM_SNAPLEN; // as libpcap does
    this.interfaces.push({ linktype: linkField & 0xffff, snaplen, unitsPerSec: nano ? 1e9 : 1e6, tsOffset: 0, name: '' });
    this.pos = 24;
  }

  private dispatchPcap(limit: number, handler: RecordHandler): number {
    const hdrLen = this.kuznetzov ? 24 : 16;
    const le = this.littleEndian;
    const mult = this.nanosecond ? 1 : 1000;
    const fracLimit = this.nanosecond ? 1e9 : 1e6;
    const maxCap = Math.max(this.interfaces[0]!.snaplen, MAXIMUM_SNAPLEN);
    let count = 0;
    // The hot loop keeps the buffer state in locals and writes the position back before
    // anything that reads it (fill, errors) and when it leaves, even through an exception.
    let pos = this.pos, end = this.end, buf = this.buf, dv = this.dv;
    try {
      while (count < limit) {
        if (end - pos < hdrLen) {
          this.pos = pos;
          const ok = this.fill(hdrLen);
          pos = this.pos; end = this.end; buf = this.buf; dv = this.dv;
          if (!ok) {
            if (end !== pos) this.truncated(end - pos, hdrLen, 'record header');
            break;
          }
        }
        const sec = dv.getUint32(pos, le);
        const frac = dv.getUint32(pos + 4, le);
        const caplen = dv.getUint32(pos + 8, le);
        const wirelen = dv.getUint32(pos + 12, le);
        if (caplen > maxCap || frac >= fracLimit) {
          this.pos = pos;
          if (caplen > maxCap) this.corrupt(this.bufFileOff + pos, `record claims ${caplen} captured bytes, more than the limit of ${maxCap}`);
          this.corrupt(this.bufFileOff + pos, `record timestamp fraction ${frac} is out of range`);
        }
        const total = hdrLen + caplen;
        if (end - pos < total) {
          this.pos = pos;
          const ok = this.fill(total);
          pos = this.pos; end = this.end; buf = this.buf; dv = this.dv;
          if (!ok) this.truncated(end - pos, total, 'record');
        }
        const q = pos;
        pos = q + total;
        count++;
        handler(buf, q + hdrLen, caplen, wirelen, sec, frac * mult, 0);
      }
    } finally {
      this.pos = pos;
      this.delivered += count;
    }
    return count;
  }

  /**
   * Fast path of `dump -r IN -w OUT FILTER` for classic little-endian pcap input: every record
   * the filter accepts is handed to `sink` as its raw bytes (16-byte header and data, exactly as
   * in the file), with no per-record decoding beyond the lengths. Reads up to `max` records
   * (all when max <= 0) of what the buffer holds (call again until it returns 0) and returns how
   * many it read; 0 at the end of the file. Throws EINVAL for other formats (use dispatch) and EIO like dispatch.
   *
   * When reading with read(2), accepted records are moved down over the rejected ones inside
   * the read buffer (copyWithin: no allocation) and `sink` gets one block per buffer fill (or per
   * 4095 runs); from a
   * mapping (read-only) it gets each run of consecutive accepted records. Either way the bytes
   * are valid only during the call.
   */
  copyAccepted(
    max: number, filter: PacketFilter, sink: (u8: Uint8Array, offset: number, length: number, records: number) => void,
  ): number {
    if (this.closed) fail('EINVAL', `capture file ${this.path} is closed`);
    if (this.format !== 'pcap' || !this.littleEndian || this.kuznetzov) fail('EINVAL', 'copyAccepted needs a little-endian classic pcap file');
    const limit = max <= 0 ? 0x7fffffff : Math.min(max, 0x7fffffff);
    const fracLimit = this.nanosecond ? 1e9 : 1e6;
    const maxCap = Math.max(this.interfaces[0]!.snaplen, MAXIMUM_SNAPLEN);
    const compact = !this.mapped;
    const out = scanOut;
    let count = 0;
    // One scan of the buffer, the hand-over of what it accepted, then a refill for the record
    // cut by the end of the buffer. A second round only when the first found no whole record
    // (the refill brings one, or the end of the file). No loop runs long here: V8 optimises
    // scanRecords alone, and this as an ordinary function, never by on-stack replacement.
    while (count === 0) {
      const buf = this.buf, start = this.pos;
      scanRecords(buf, this.dv, start, this.end, limit, maxCap, fracLimit, filter);
      const pos = out[SCAN_POS]!, stop = out[SCAN_STOP]!, runs = out[SCAN_RUNS]!;
      count = out[SCAN_COUNT]!;
      if (runs > 0) {
        if (compact) {
          // Accepted records are moved down over the rejected ones (the consumed part of the
          // buffer) and handed over as one block.
          const to = compactRuns(buf, start, runs);
          sink(buf, start, to - start, out[SCAN_POS]!);
        } else {
          // A mapping is read-only: each run goes out as it lies.
          for (let r = SCAN_FIRST_RUN; r < SCAN_FIRST_RUN + 3 * runs; r += 3) sink(buf, out[r]!, out[r + 1]! - out[r]!, out[r + 2]!);
        }
      }
      this.pos = pos;
      this.delivered += count;
      if (stop === STOP_BAD) this.dispatchPcap(1, () => undefined); // raises the same error as dispatch
      if (stop === STOP_EARLY) break;
      if (this.end - pos < 16) {
        if (!this.fill(16)) {
          if (this.end !== this.pos) this.truncated(this.end - this.pos, 16, 'record header');
          break;
        }
        continue; // the header is in: its checks are made by the scan
      }
      const total = 16 + this.dv.getUint32(pos + 8, true);
      if (!this.fill(total)) this.truncated(this.end - this.pos, total, 'record');
    }
    return count;
  }

  // ---- pcapng --------------------------------------------------------------------------

  /** Reads the SHB at this.pos (the caller checked its type), sets the byte order. */
  private readSectionHeader(): void {
    if (!this.fill(12)) this.truncated(this.end - this.pos, 12, 'section header block');
    const p = this.pos;
    const bom = this.dv.getUint32(p + 8, true);
    if (bom === PCAPNG_BOM) this.littleEndian = true;
    else if (this.dv.getUint32(p + 8, false) === PCAPNG_BOM) this.littleEndian = false;
    else this.corrupt(this.bufFileOff + p + 8, 'pcapng section header has a bad byte-order magic');
    const len = this.blockLength(p);
    if (len < 28) this.corrupt(this.bufFileOff + p, `pcapng section header block length ${len} is too short`);
    if (!this.fill(len)) this.truncated(this.end - this.pos, len, 'section header block');
    const q = this.pos;
    const major = this.dv.getUint16(q + 12, this.littleEndian);
    if (major !== 1) this.corrupt(this.bufFileOff + q + 12, `unsupported pcapng version ${major}`);
    this.sectionBase = this.interfaces.length;
    this.pos = q + len;
  }

  /** Validated total length of the block at p (header must be in the buffer). */
  private blockLength(p: number): number {
    const len = this.dv.getUint32(p + 4, this.littleEndian);
    if (len < 12 || len % 4 !== 0 || len > MAX_RECORD) {
      this.corrupt(this.bufFileOff + p, `pcapng block length ${len} is invalid (must be a multiple of 4, 12..${MAX_RECORD})`);
    }
    return len;
  }

  private readInterface(p: number, len: number): void {
    const le = this.littleEndian;
    if (len < 20) this.corrupt(this.bufFileOff + p, `pcapng interface description block length ${len} is too short`);
    const iface: InterfaceInfo = {
      linktype: this.dv.getUint16(p + 8, le), snaplen: this.dv.getUint32(p + 12, le) || MAXIMUM_SNAPLEN,
      unitsPerSec: 1e6, tsOffset: 0, name: '',
    };
    // Options.
    let o = p + 16;
    const stop = p + len - 4;
    while (o + 4 <= stop) {
      const code = this.dv.getUint16(o, le);
      const olen = this.dv.getUint16(o + 2, le);
      if (code === 0) break;
      if (o + 4 + olen > stop) this.corrupt(this.bufFileOff + o, `pcapng option ${code} overruns its block`);
      if (code === 9 && olen >= 1) {
        const r = this.buf[o + 4]!;
        const n = r & 0x7f;
        iface.unitsPerSec = r & 0x80 ? 2 ** n : 10 ** n;
        if (n === 0 || (r & 0x80 ? n > 63 : n > 18)) this.corrupt(this.bufFileOff + o, `pcapng if_tsresol ${r} is out of range`);
      } else if (code === 14 && olen >= 8) {
        iface.tsOffset = this.dv.getUint32(o + 4 + (le ? 4 : 0), le) * 2 ** 32 + this.dv.getUint32(o + 4 + (le ? 0 : 4), le);
      } else if (code === 2) {
        iface.name = Buffer.from(this.buf.buffer, this.buf.byteOffset + o + 4, olen).toString('utf8').replace(/\0+$/, '');
      }
      o += 4 + ((olen + 3) & ~3);
    }
    this.interfaces.push(iface);
  }

  private readUntilInterface(): void {
    while (this.interfaces.length === 0) {
      if (this.end - this.pos < 8 && !this.fill(8)) return;
      const p = this.pos;
      const type = this.dv.getUint32(p, this.littleEndian);
      if (type === PCAPNG_SHB) { this.readSectionHeader(); continue; }
      if (type === BT_EPB || type === BT_SPB || type === BT_PB) return; // packets before any IDB: error later
      const len = this.blockLength(p);
      if (!this.fill(len)) this.truncated(this.end - this.pos, len, 'block');
      if (type === BT_IDB) this.readInterface(this.pos, len);
      this.pos += len;
    }
  }

  private dispatchPcapng(limit: number, handler: RecordHandler): number {
    let count = 0;
    while (count < limit) {
      if (this.end - this.pos < 8 && !this.fill(8)) {
        if (this.end !== this.pos) this.truncated(this.end - this.pos, 8, 'block header');
        break;
      }
      let p = this.pos;
      const be = this.dv.getUint32(p, false);
      if (be === PCAPNG_SHB) { this.readSectionHeader(); continue; }
      const le = this.littleEndian;
      const type = this.dv.getUint32(p, le);
      const len = this.blockLength(p);
      if (this.end - p < len) {
        if (!this.fill(len)) this.truncated(this.end - this.pos, len, 'block');
        p = this.pos;
      }
      const dv = this.dv;
      if (dv.getUint32(p + len - 4, le) !== len) this.corrupt(this.bufFileOff + p, `pcapng block trailer length differs from its header (${len})`);
      this.pos = p + len;
      if (type === BT_EPB || type === BT_PB) {
        const minLen = 32;
        if (len < minLen) this.corrupt(this.bufFileOff + p, `pcapng packet block length ${len} is too short`);
        const ifLocal = type === BT_EPB ? dv.getUint32(p + 8, le) : dv.getUint16(p + 8, le);
        const ifIndex = this.sectionBase + ifLocal;
        if (ifIndex >= this.interfaces.length) this.corrupt(this.bufFileOff + p, `pcapng packet block names interface ${ifLocal}, which was not described`);
        const caplen = dv.getUint32(p + 20, le);
        const wirelen = dv.getUint32(p + 24, le);
        if (28 + caplen > len - 4) this.corrupt(this.bufFileOff + p, `pcapng packet block claims ${caplen} captured bytes, more than its length ${len} holds`);
        const iface = this.interfaces[ifIndex]!;
        this.deliverTs(dv.getUint32(p + 12, le), dv.getUint32(p + 16, le), iface);
        this.delivered++;
        count++;
        handler(this.buf, p + 28, caplen, wirelen, this.tsSec, this.tsNsec, ifIndex);
      } else if (type === BT_SPB) {
        if (len < 16) this.corrupt(this.bufFileOff + p, `pcapng simple packet block length ${len} is too short`);
        if (this.sectionBase >= this.interfaces.length) this.corrupt(this.bufFileOff + p, 'pcapng simple packet block appears before any interface description');
        const iface = this.interfaces[this.sectionBase]!;
        const wirelen = dv.getUint32(p + 8, le);
        const caplen = Math.min(wirelen, len - 16, iface.snaplen);
        this.delivered++;
        count++;
        handler(this.buf, p + 12, caplen, wirelen, 0, 0, this.sectionBase);
      } else if (type === BT_IDB) {
        this.readInterface(p, len);
      }
      // Other block types (name resolution, statistics, custom, ...) are skipped.
    }
    return count;
  }

  private tsSec = 0;
  private tsNsec = 0;

  /** Converts a 64-bit pcapng timestamp (hi:lo units) to seconds + nanoseconds without BigInt. */
  private deliverTs(hi: number, lo: number, iface: InterfaceInfo): void {
    const d = iface.unitsPerSec;
    if (d === 1e6 || d === 1e9 || d < 2 ** 30) {
      const r1 = hi % d;
      const q1 = (hi - r1) / d;
      const x = r1 * 65536 + (lo >>> 16);
      const r2 = x % d;
      const y = r2 * 65536 + (lo & 0xffff);
      const r3 = y % d;
      this.tsSec = q1 * 4294967296 + ((x - r2) / d) * 65536 + (y - r3) / d + iface.tsOffset;
      this.tsNsec = d === 1e9 ? r3 : d === 1e6 ? r3 * 1000 : Math.floor((r3 * 1e9) / d);
    } else {
      const total = hi * 4294967296 + lo; // very fine resolutions: approximate
      const sec = Math.floor(total / d);
      this.tsSec = sec + iface.tsOffset;
      this.tsNsec = Math.min(999999999, Math.max(0, Math.floor(((total - sec * d) * 1e9) / d)));
    }
  }

  // ---- buffer --------------------------------------------------------------------------

  /**
   * Makes at least `need` bytes available from this.pos (compacting and reading; growing the
   * buffer up to MAX_RECORD for one large record). Returns false at end of file.
   */
  private fill(need: number): boolean {
    if (this.end - this.pos >= need) return true;
    if (this.mapped) return this.remap(need);
    if (need > this.buf.length) {
      if (need > MAX_RECORD) return false;
      const bigger = new Uint8Array(Math.max(need, this.buf.length * 2));
      bigger.set(this.buf.subarray(this.pos, this.end));
      this.end -= this.pos;
      this.bufFileOff += this.pos;
      this.pos = 0;
      this.buf = bigger;
      this.dv = new DataView(bigger.buffer);
    } else if (this.pos > 0) {
      this.buf.copyWithin(0, this.pos, this.end);
      this.end -= this.pos;
      this.bufFileOff += this.pos;
      this.pos = 0;
    }
    while (this.end - this.pos < need && !this.eof) {
      let n: number;
      try {
        n = fs.readSync(this.fd, this.buf, this.end, this.buf.length - this.end, null);
      } catch (e) {
        if ((e as { code?: string }).code === 'EAGAIN') continue;
        fail('EIO', `reading capture file ${this.path} at offset ${this.bufFileOff + this.end}: ${(e as Error).message}`);
      }
      if (n === 0) this.eof = true;
      this.end += n;
    }
    return this.end - this.pos >= need;
  }

  /** Mapped mode: slides the window so that it starts at (or just before) this.pos. */
  private remap(need: number): boolean {
    if (need > MAX_RECORD) return false;
    const abs = this.bufFileOff + this.pos;
    if (this.bufFileOff + this.end >= this.fileSize) return false; // the window already ends at EOF
    const start = abs - (abs % MAP_ALIGN);
    const len = Math.min(MAP_WINDOW, this.fileSize - start);
    if (this.unmap !== null) this.unmap();
    this.unmap = null;
    const m = (this.mapper as FileMapper)(this.fd, start, len);
    this.unmap = m.unmap;
    this.buf = new Uint8Array(m.buffer);
    this.dv = new DataView(m.buffer);
    this.bufFileOff = start;
    this.pos = abs - start;
    this.end = len;
    return this.end - this.pos >= need;
  }

  private corrupt(fileOffset: number, what: string): never {
    throw new NetmapError('EIO', `${this.path}: corrupt capture file at offset ${fileOffset}: ${what}`);
  }

  private truncated(have: number, need: number, what: string): never {
    throw new NetmapError('EIO', `${this.path}: truncated capture file at offset ${this.bufFileOff + this.pos}: ${what} needs ${need} bytes, only ${have} remain`);
  }
}

/** Opens a pcap or pcapng file for streaming (format detected from its first bytes). */
export function openCaptureFile(path: string, options?: ReaderOptions): CaptureFileReader {
  return new CaptureFileReader(path, options);
}
