/**
 * A drop-in for the session API of the npm `pcap` package (node_pcap 3.x), on netmap ports:
 *
 *   import * as pcap from 'netmap-ts/pcap';          // was: import * as pcap from 'pcap';
 *   const session = pcap.createSession('vale0:a', { filter: 'udp' });
 *   session.on('packet', (raw) => { raw.buf; raw.header; raw.link_type; });
 *   session.stats();   // { ps_recv, ps_drop, ps_ifdrop }
 *   session.close();
 *
 * The packet shape is node_pcap's: `buf` is one Buffer of snap_length bytes that every packet is
 * copied into from offset 0 (the bytes past caplen are left from earlier packets), `header` one
 * 16-byte Buffer holding the pcap record header in little-endian order (tv_sec, tv_usec, caplen,
 * len), `link_type` a string ('LINKTYPE_ETHERNET'). Both Buffers, and here the object that
 * carries them, are reused: read them during the 'packet' event.
 *
 * Capture runs on the event loop without blocking it (capture/watch.ts's CapturePump: batches
 * while packets wait, a worker thread sleeps on the rings when none do). An existing port is
 * watched through its monitor (NAME/rt), as netmap-libpcap opens it.
 */
// A package entry point (openLive opens ports by name): the port types are plugged in here as
// the package's top does.
import '../port-types.js';
import { EventEmitter } from 'node:events';
import { NetmapError } from '../errors.js';
import { MAXIMUM_SNAPLEN } from './bpf.js';
import { openLive, type LiveCapture } from './live.js';
import { watchName, watchablePorts, CapturePump } from './watch.js';
import { openCaptureFile } from './reader.js';
import { makeFilter } from './filter.js';

/** node_pcap's link type names, by LINKTYPE number. */
const LINK_TYPES: Record<number, string> = {
  0: 'LINKTYPE_NULL', 1: 'LINKTYPE_ETHERNET', 101: 'LINKTYPE_RAW', 127: 'LINKTYPE_IEEE802_11_RADIO', 113: 'LINKTYPE_LINUX_SLL',
};
const linkTypeName = (n: number): string => LINK_TYPES[n] ?? `Unknown linktype ${n}`;

export type LinkType = 'LINKTYPE_NULL' | 'LINKTYPE_ETHERNET' | 'LINKTYPE_IEEE802_11_RADIO' | 'LINKTYPE_RAW' | 'LINKTYPE_LINUX_SLL';

/** What a 'packet' event carries (node_pcap's PacketWithHeader). */
export interface PacketWithHeader {
  buf: Buffer;
  header: Buffer;
  link_type: string;
}

export interface CaptureStats {
  /** Packets seen by the capture, before the filter. */
  ps_recv: number;
  /** Packets lost before the capture saw them: a full receive ring, or (an interface) no room in the kernel's. */
  ps_drop: number;
  /** Always 0 here. */
  ps_ifdrop: number;
}

export interface CommonSessionOptions {
  /** A pcap-filter expression (default: every packet). */
  filter?: string;
}

export interface LiveSessionOptions extends CommonSessionOptions {
  /** Bytes of the monitor's ring buffers when watching a port in use (2048 a frame; default 10 MB). */
  buffer_size?: number;
  /** Bytes kept of each packet and the size of `buf` (default 65535). */
  snap_length?: number;
  /** Accepted: packets are delivered as soon as the event loop gets them (default 1000). */
  buffer_timeout?: number;
  /** 802.11 monitor mode: not available on netmap ports (EOPNOTSUPP when true). */
  monitor?: boolean;
  /** Accepted: netmap ports have no promiscuous mode. */
  promiscuous?: boolean;
}

export type OfflineSessionOptions = CommonSessionOptions;

export class PcapSession extends EventEmitter {
  readonly is_live: boolean;
  readonly device_name: string;
  readonly filter: string;
  readonly buffer_size: number;
  readonly snap_length: number;
  readonly buffer_timeout: number;
  readonly link_type: string;
  /** The name actually opened (the monitor of an existing port: 'vale0:a/tr'). */
  readonly port_name: string;
  opened = false;
  /** The buffer each packet is copied into (snap_length bytes). */
  readonly buf: Buffer;
  /** The pcap record header of the current packet (16 bytes, little-endian). */
  readonly header: Buffer;
  private readonly packet: PacketWithHeader;
  private cap: LiveCapture | null = null;
  private pump: CapturePump | null = null;

  /** @internal use createSession() or createOfflineSession(). */
  constructor(isLive: boolean, device: string, options: LiveSessionOptions) {
    super();
    this.is_live = isLive;
    this.device_name = device;
    this.filter = options.filter ?? '';
    this.buffer_size = roundOr(options.buffer_size, 10 * 1024 * 1024);
    this.snap_length = roundOr(options.snap_length, 65535);
    this.buffer_timeout = roundOr(options.buffer_timeout, 1000);
    if (typeof device !== 'string' || device === '') throw new NetmapError('EINVAL', 'pcap session: give a port name (there is no default device)');
    if (this.snap_length < 1 || this.snap_length > MAXIMUM_SNAPLEN) throw new NetmapError('EINVAL', `pcap session: snap_length ${this.snap_length} must be 1..${MAXIMUM_SNAPLEN}`);
    if (options.monitor === true) throw new NetmapError('EOPNOTSUPP', `${device}: 802.11 monitor mode is not available on netmap ports`);
    this.buf = Buffer.alloc(this.snap_length);
    this.header = Buffer.alloc(16);
    if (isLive) {
      this.port_name = watchName(device, 'inout', this.buffer_size);
      const cap = openLive(this.port_name, { snaplen: this.snap_length, timeoutMs: 0 });
      try {
        if (this.filter !== '') cap.setFilter(this.filter);
      } catch (e) {
        cap.close();
        throw e;
      }
      this.cap = cap;
      this.link_type = linkTypeName(cap.linktype);
    } else {
      this.port_name = device;
      this.link_type = 'LINKTYPE_ETHERNET';
    }
    this.packet = { buf: this.buf, header: this.header, link_type: this.link_type };
    this.opened = true;
    if (isLive) {
      this.pump = new CapturePump(this.cap!, (u8, o, caplen, wirelen, sec, nsec) => this.emitRecord(u8, o, caplen, wirelen, sec, nsec));
      this.pump.done.catch((e: unknown) => {
        if (!this.opened) return;
        // node_pcap has no 'error' event: only listeners that asked for one get it
        if (this.listenerCount('error') > 0) this.emit('error', e);
        else warningHandler(`capture on ${this.port_name} ended: ${(e as Error).message}`);
      });
    }
  }

  /** Stops the capture and removes every listener; no 'packet' event follows. */
  close(): void {
    if (!this.opened) return;
    this.opened = false;
    this.removeAllListeners();
    const cap = this.cap, pump = this.pump;
    this.cap = null;
    this.pump = null;
    if (pump !== null) void pump.stop().then(() => cap?.close());
    else cap?.close();
  }

  stats(): CaptureStats {
    if (!this.opened || this.cap === null) throw new Error('Error: pcap session already closed');
    const s = this.cap.stats();
    return { ps_recv: s.received, ps_drop: s.dropped, ps_ifdrop: 0 };
  }

  /** Sends one frame on the port (node_pcap: pcap_inject); throws if it cannot. */
  inject(data: Buffer | Uint8Array): void {
    if (!this.opened || this.cap === null) throw new Error('Error: pcap session already closed');
    if (!(data instanceof Uint8Array)) throw new TypeError('First argument must be a buffer');
    if (this.cap.inject(data, 0, data.length) === 0) throw new Error('Pcap inject failed.');
  }

  private lastSource: Uint8Array | null = null;
  private source: Buffer = Buffer.alloc(0);

  /** @internal copies one packet into buf, fills header, emits 'packet' (no allocation). */
  emitRecord(u8: Uint8Array, o: number, caplen: number, wirelen: number, sec: number, nsec: number): void {
    if (u8 !== this.lastSource) {
      // a Buffer over the same memory, made once per source view, so that copy() allocates nothing
      this.lastSource = u8;
      this.source = Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
    }
    const n = caplen < this.buf.length ? caplen : this.buf.length;
    this.source.copy(this.buf, 0, o, o + n);
    this.header.writeUInt32LE(sec >>> 0, 0);
    this.header.writeUInt32LE(Math.floor(nsec / 1000), 4);
    this.header.writeUInt32LE(n, 8);
    this.header.writeUInt32LE(wirelen, 12);
    this.emit('packet', this.packet);
  }
}

function roundOr(v: number | undefined, dflt: number): number {
  return typeof v === 'number' && !Number.isNaN(v) ? Math.round(v) : dflt;
}

/** Starts capturing on port `device` ('vale0:a', 'netmap:p}1', 'netmap:eth1'). */
export function createSession(device: string, options: LiveSessionOptions = {}): PcapSession {
  return new PcapSession(true, device, options ?? {});
}

/**
 * Reads a pcap or pcapng file: 'packet' for each record the filter accepts, then 'complete',
 * starting on the next turn of the event loop.
 */
export function createOfflineSession(path: string, options: OfflineSessionOptions = {}): PcapSession {
  const rd = openCaptureFile(path);
  let session: PcapSession;
  try {
    const filter = options?.filter !== undefined && options.filter !== '' ? makeFilter(options.filter) : null;
    if (filter !== null && rd.linktype !== 1) throw new NetmapError('EOPNOTSUPP', `filters are supported on Ethernet captures only (link type ${rd.linktype})`);
    session = new PcapSession(false, path, { filter: options?.filter, snap_length: Math.max(rd.snaplen, 1) });
    (session as { link_type: string }).link_type = linkTypeName(rd.linktype);
    (session as unknown as { packet: PacketWithHeader }).packet.link_type = session.link_type;
    setImmediate(() => {
      try {
        while (session.opened && rd.dispatch(256, (u8, o, caplen, wirelen, sec, nsec) => {
          if (!session.opened) return;
          if (filter === null || filter(u8, o, caplen, wirelen) !== 0) session.emitRecord(u8, o, caplen, wirelen, sec, nsec);
        }) > 0) { /* until the end of the file */ }
        if (session.opened) session.emit('complete');
      } catch (e) {
        if (session.opened) session.emit('error', e);
      } finally {
        rd.close();
      }
    });
  } catch (e) {
    rd.close();
    throw e;
  }
  return session;
}

export interface Device {
  name: string;
  description?: string;
  addresses: Array<{ addr: string; netmask: string; broadaddr?: string }>;
  flags?: string;
}

/** The ports in use (what `netmap extcap` lists): VALE ports, pipe ends, interfaces in netmap mode. */
export function findalldevs(): Device[] {
  return watchablePorts().map((p) => ({ name: p.name, description: p.description, addresses: [] }));
}

/** Stands for libpcap's version string. */
export const lib_version = 'netmap-ts (pcap-compatible session API; filters compiled by netmap-ts, libpcap 1.10 semantics)';

/** node_pcap calls this for warnings; kept for code that overrides it (netmap-ts emits none). */
export let warningHandler: (text: string) => unknown = (x) => console.warn('warning: %s - this may not actually work', x);

export { PcapSession as Pcap };
