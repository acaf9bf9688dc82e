/**
 * `netmap dump`: tcpdump-like capture on a netmap port or a capture file, with pcap-filter
 * expressions compiled to BPF (then to JavaScript). The work is done by src/capture.
 */
import * as fs from 'node:fs';
import { NetmapError } from '../errors.js';
import { formatProgram, MAXIMUM_SNAPLEN, type BpfProgram, type PacketFilter } from '../capture/bpf.js';
import { openCaptureFile } from '../capture/reader.js';
import { PcapWriter, PcapngWriter, isReaderGone } from '../capture/writer.js';
import type { PrintOptions } from '../capture/print.js';
import { runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';

import type { Direction } from '../capture/watch.js';

interface Args {
  iface?: string;
  read?: string;
  write?: string;
  filterFile?: string;
  count: number;
  snaplen: number;
  dump: 0 | 1 | 2 | 3;
  ether: boolean;
  quick: boolean;
  verbose: number;
  hex: 0 | 1 | 2;
  optimize: boolean;
  /** -U: flush the output file after each packet (pcap to a pipe). */
  packetBuffered: boolean;
  /** -l: flush printed lines after each packet. */
  lineBuffered: boolean;
  /** -B: bytes of monitor ring buffers when watching a port in use (undefined: watch.ts's default). */
  bufferBytes?: number;
  /** -Q: which direction of a monitored port to capture. */
  direction: Direction;
  pcapng: boolean;
  nano: boolean;
  utc: boolean;
  interpreted: boolean;
  /** not --no-reserve: a live capture reserves a CPU for its loop (src/ports/placement.ts). */
  reserveCpu: boolean;
  duration: number;
  expression: string;
}

/**
 * The options, in the tools' one table format (args.ts): it drives the parser and `--help`.
 * `permute`: options may follow the expression, as tcpdump on Linux (GNU getopt) allows.
 * Options tcpdump lets one repeat (the last value wins) are `many`.
 */
const DUMP: ToolSpec = {
  name: 'dump',
  synopsis: [
    '[-UnSpeqvlxdO] [-B size] [-c count] [-i port | -r file] [-s snaplen] [-w file] [-Q in|out|inout]',
    '[-F file] [--pcapng] [--nano] [--utc] [--interpreted] [--duration sec] [expression]',
  ],
  permute: true,
  preamble: ['options may also follow the expression (as tcpdump on Linux); -- ends them'],
  options: [
    { short: 'i', value: 'PORT', many: true, help: 'capture on a netmap port (netmap:p{1, vale0:a, netmap:eth1, ...);\na port in use is watched through its copy monitor (/rt; see -Q)' },
    { short: 'r', value: 'FILE', many: true, help: "read packets from a pcap or pcapng file ('-' = standard input)" },
    { short: 'w', value: 'FILE', many: true, help: "write accepted packets to FILE (pcap; '-' = standard output)" },
    { short: 'U', many: true, help: 'packet-buffered output: the -w header at once, then a flush after each packet' },
    { short: 'c', value: 'N', many: true, help: 'stop after N accepted packets' },
    { short: 's', value: 'SNAPLEN', many: true, help: 'keep at most SNAPLEN bytes of each captured packet (0 or default: 262144;\nlike tcpdump, records read with -r are not cut)' },
    { short: 'B', long: 'buffer-size', value: 'KiB', many: true, help: "the watching monitor's ring buffers in KiB (tcpdump's -B; default 32768: 16384\nframes a ring on a VALE port); a name with its own @conf:slots= keeps them" },
    { short: 'Q', long: 'direction', value: 'in|out|inout', many: true, help: 'what to watch of an existing port: received, sent or both (its monitor\n/r, /t, /rt); ignored with -r, as tcpdump does' },
    { short: 'n', many: true, help: 'numeric output (always; accepted)' },
    { short: 'S', many: true, help: 'absolute TCP sequence numbers (always; accepted)' },
    { short: 'p', many: true, help: 'no promiscuous mode (netmap ports have none; accepted)' },
    { short: 'e', many: true, help: 'print the link-level header' },
    { short: 'q', many: true, help: 'quick output (less protocol detail)' },
    { short: 'v', many: true, help: 'verbose (accepted, may repeat; lines stay in the -n -S form)' },
    { short: 'l', many: true, help: 'line-buffered printing: flush each line' },
    { short: 'x', many: true, help: 'hex dump of each packet (-xx: with its link header)' },
    { short: 'd', many: true, help: "print the compiled BPF program in tcpdump's formats and exit (-dd, -ddd)" },
    { short: 'O', many: true, help: 'do not optimise the filter' },
    { short: 'F', value: 'FILE', many: true, help: 'read the filter expression from FILE' },
    { long: 'pcapng', many: true, help: 'write pcapng instead of pcap (with -w)' },
    { long: 'nano', many: true, help: 'nanosecond timestamps (output file and printing)' },
    { long: 'utc', many: true, help: 'print times in UTC' },
    { long: 'interpreted', many: true, help: 'run the filter in the BPF interpreter instead of compiling it' },
    { long: 'duration', value: 'SEC', many: true, help: 'stop a live capture after SEC seconds' },
    { long: 'no-reserve', many: true, help: 'place no threads: by default a live capture reserves a CPU for its loop and keeps\nits other threads (V8\'s helpers) off it, as pkt-gen rx does' },
  ],
  epilogue: ['expression      a pcap-filter expression, or a raw program in -ddd format'],
};

function toArgs(p: ParsedArgs): Args {
  const a: Args = {
    iface: p.value('i'), read: p.value('r'), write: p.value('w'), filterFile: p.value('F'),
    count: 0, snaplen: MAXIMUM_SNAPLEN, dump: Math.min(3, p.count('d')) as 0 | 1 | 2 | 3, ether: p.has('e'), quick: p.has('q'),
    verbose: p.count('v'), hex: Math.min(2, p.count('x')) as 0 | 1 | 2, optimize: !p.has('O'),
    packetBuffered: p.has('U'), lineBuffered: p.has('l'), direction: 'inout',
    pcapng: p.has('pcapng'), nano: p.has('nano'), utc: p.has('utc'), interpreted: p.has('interpreted'), reserveCpu: !p.has('no-reserve'), duration: Infinity,
    expression: p.operands.join(' '),
  };
  // tcpdump's words for its own checks
  const c = p.value('c');
  if (c !== undefined) {
    if (!/^\d+$/.test(c) || Number(c) < 1 || Number(c) > Number.MAX_SAFE_INTEGER) usageFail(`invalid packet count ${c}`);
    a.count = Number(c);
  }
  const s = p.value('s');
  if (s !== undefined) {
    if (!/^\d+$/.test(s) || Number(s) > MAXIMUM_SNAPLEN) usageFail(`invalid snaplen ${s} (must be 0..${MAXIMUM_SNAPLEN})`);
    a.snaplen = Number(s) || MAXIMUM_SNAPLEN;
  }
  const b = p.value('B');
  if (b !== undefined) {
    if (!/^\d+$/.test(b) || Number(b) < 1 || Number(b) > 4 * 1024 * 1024) usageFail(`invalid buffer size ${b} (KiB, 1..${4 * 1024 * 1024})`);
    a.bufferBytes = Number(b) * 1024;
  }
  const q = p.value('Q');
  if (q !== undefined) {
    const d = q.toLowerCase();
    if (d !== 'in' && d !== 'out' && d !== 'inout') usageFail(`unknown capture direction \`${q}'`);
    a.direction = d;
  }
  const dur = p.value('duration');
  if (dur !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(dur)) usageFail(`invalid duration ${dur}`);
    a.duration = Number(dur);
  }
  if (a.filterFile !== undefined) {
    if (a.expression !== '') usageFail('-F and an expression on the command line are exclusive');
    try {
      a.expression = fs.readFileSync(a.filterFile, 'utf8').replace(/#.*$/gm, '').trim();
    } catch (e) {
      usageFail(`cannot read filter file ${a.filterFile}: ${(e as Error).message}`);
    }
  }
  if (a.iface !== undefined && a.read !== undefined) usageFail('-i and -r are exclusive');
  if (a.iface === undefined && a.read === undefined && a.dump === 0) usageFail('give a port (-i) or a file (-r)');
  return a;
}

/**
 * A line on standard error, written to the descriptor: process.stderr (console.error) would load
 * Node's stream and net modules, a good part of `dump -r`'s start-up.
 */
function warn(line: string): void {
  try {
    fs.writeSync(2, `${line}\n`);
  } catch {
    // standard error closed: nothing to tell
  }
}

/** Buffered text output on a file descriptor (console.log per packet is far too slow). */
class TextOut {
  private buf: string[] = [];
  private size = 0;
  /** Set when the reader of a pipe went away (EPIPE): nothing more is written. */
  closed = false;
  constructor(private readonly fd: number, private readonly eachLine = false) {}
  line(s: string): void {
    this.buf.push(s);
    this.size += s.length;
    if (this.eachLine || this.size > 65536) this.flush();
  }
  flush(): void {
    if (this.buf.length === 0) return;
    const data = this.buf.join('\n') + '\n';
    this.buf = [];
    this.size = 0;
    if (this.closed) return;
    try {
      fs.writeSync(this.fd, data);
    } catch (e) {
      if ((e as { code?: string }).code !== 'EPIPE') throw e;
      this.closed = true;
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  return runTool(DUMP, argv, toArgs, run);
}

/** The filter of an empty expression on the byte-for-byte path. */
const acceptAll: PacketFilter = () => MAXIMUM_SNAPLEN;

async function run(args: Args): Promise<number> {
  // The compiler is loaded only for a filter (or -d): `dump -r F -w G` alone starts without it.
  let filter: PacketFilter | null = null;
  let prog: BpfProgram = [];
  if (args.expression !== '' || args.dump > 0) {
    const [{ programFromText }, { compileProgram }, { interpretProgram }] = await Promise.all([
      import('../capture/filter.js'), import('../capture/jit.js'), import('../capture/interp.js'),
    ]);
    prog = programFromText(args.expression, { snaplen: args.snaplen, optimize: args.optimize });
    if (args.dump > 0) {
      process.stdout.write(formatProgram(prog, args.dump as 1 | 2 | 3));
      return 0;
    }
    if (args.expression !== '') filter = args.interpreted ? interpretProgram(prog) : compileProgram(prog);
  }
  const snaplen = args.snaplen;
  let writer: PcapWriter | PcapngWriter | null = null;
  const text = new TextOut(1, args.lineBuffered);
  const popts: PrintOptions = { ether: args.ether, quick: args.quick, nano: args.nano, hex: args.hex, utc: args.utc };
  // The printer is loaded only when packets are printed (`-w` alone never needs it).
  const { formatPacket } = args.write === undefined ? await import('../capture/print.js') : { formatPacket: null };
  let accepted = 0;
  let seen = 0;
  let status = 0;
  let stop = false;

  // The reader of our standard output went away (`dump -w - | head -c 100`): stop quietly.
  let pipeGone = false;
  const flushWriter = (): void => {
    try {
      (writer as PcapWriter | PcapngWriter | null)?.flush();
    } catch (e) {
      if (!isReaderGone(e)) throw e;
      pipeGone = true;
      stop = true;
    }
  };
  // Direction of the packet being handled, 0 unknown (a file, a port opened itself), 1 in, 2 out.
  let direction = 0;
  const handle = (u8: Uint8Array, o: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number): void => {
    if (stop) return;
    if (writer !== null) {
      try {
        if (writer instanceof PcapngWriter) writer.write(u8, o, caplen, wirelen, tsSec, tsNsec, 0, direction);
        else writer.write(u8, o, caplen, wirelen, tsSec, tsNsec);
      } catch (e) {
        if (!isReaderGone(e)) throw e;
        pipeGone = true;
        stop = true;
        return;
      }
      if (args.packetBuffered) flushWriter();
    } else if (formatPacket !== null) {
      const line = formatPacket(u8, o, caplen, wirelen, tsSec, tsNsec, popts);
      if (direction === 0) text.line(line);
      else { const sp = line.indexOf(' '); text.line(`${line.slice(0, sp)} ${direction === 2 ? 'Out' : 'In'}${line.slice(sp)}`); }
      if (text.closed) { pipeGone = true; stop = true; }
    }
    accepted++;
    if (args.count > 0 && accepted >= args.count) stop = true;
  };

  const openWriter = (linktype: number, fileSnaplen: number): void => {
    if (args.write === undefined) return;
    writer = args.pcapng
      ? new PcapngWriter(args.write, { interfaces: [{ linktype, snaplen: fileSnaplen, nanosecond: args.nano, name: args.iface }] })
      : new PcapWriter(args.write, { linktype, snaplen: fileSnaplen, nanosecond: args.nano });
    // With -U the file header goes out at once: a reader on a pipe (tshark -r -) starts now.
    if (args.packetBuffered) flushWriter();
  };

  let dropped = 0;
  try {
    if (args.read !== undefined) {
      const rd = openCaptureFile(args.read);
      try {
        if (args.write === undefined && rd.linktype !== 1) throw new NetmapError('EOPNOTSUPP', `printing link type ${rd.linktype} is not supported (use -w)`);
        if (filter !== null && rd.linktype !== 1) throw new NetmapError('EOPNOTSUPP', `filters are supported on Ethernet captures only (link type ${rd.linktype})`);
        // As libpcap on savefiles: -s does not cut records read from a file, and the output
        // keeps the input's snapshot length.
        openWriter(rd.linktype, rd.snaplen);
        const onRecord = filter === null ? handle : (u8: Uint8Array, o: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number): void => {
          if (filter(u8, o, caplen, wirelen) !== 0) handle(u8, o, caplen, wirelen, tsSec, tsNsec);
        };
        const batch = args.count > 0 ? 256 : 0;
        // Records that need no change go to the output file byte for byte (no decoding).
        const pcapWriter = writer as PcapWriter | PcapngWriter | null;
        const raw = pcapWriter instanceof PcapWriter && args.count === 0 && rd.format === 'pcap' && rd.littleEndian &&
          rd.nanosecond === args.nano && rd.snaplen <= pcapWriter.snaplen;
        const sink = (u8: Uint8Array, off: number, len: number, records: number): void => {
          (pcapWriter as PcapWriter).writeRaw(u8, off, len, records);
          accepted += records;
        };
        try {
          if (raw) while (rd.copyAccepted(0, filter ?? acceptAll, sink) > 0) { /* until the end of the file */ }
          else while (!stop && rd.dispatch(batch, onRecord) > 0) { /* until the end of the file or -c */ }
        } catch (e) {
          if (!(e instanceof NetmapError)) throw e;
          if (isReaderGone(e)) pipeGone = true;
          else {
            warn(`netmap dump: ${e.message}`);
            status = 1;
          }
        }
        seen = rd.delivered;
      } finally {
        rd.close();
      }
    } else if (args.iface !== undefined) {
      const [{ openLive }, { watchName }, { loadPortTypesFor }, { reserveCpu }, { shmDirectory }] = await Promise.all([
        import('../capture/live.js'), import('../capture/watch.js'), import('../port-types-lazy.js'), import('../ports/placement.js'), import('../memory/space.js'),
      ]);
      await loadPortTypesFor([args.iface]);
      // A port in use is watched through a copy monitor (-Q picks /r, /t or /rt); one nobody has
      // open is opened itself.
      const name = watchName(args.iface, args.direction, args.bufferBytes);
      const watching = name !== args.iface || /\/[a-zA-Z]*[rtz]/.test(args.iface);
      const cap = openLive(name, { snaplen, direction: args.direction });
      // the capture loop runs on this thread: it is the one pinned to the reserved CPU
      const placement = args.reserveCpu ? reserveCpu(shmDirectory(), true) : null;
      if (placement !== null && placement.note !== '' && args.verbose > 0) warn(`netmap dump: placement: ${placement.note}`);
      try {
        if (filter !== null) cap.setFilter(prog, args.interpreted ? 'interpreted' : 'compiled');
        openWriter(1, snaplen);
        const onSig = (): void => { stop = true; cap.breakloop(); };
        process.on('SIGINT', onSig);
        process.on('SIGTERM', onSig);
        warn(`netmap dump: listening on ${args.iface}${name !== args.iface ? ` (through ${cap.port.name})` : ''}, link-type EN10MB (Ethernet), snapshot length ${snaplen} bytes`);
        const deadline = args.duration === Infinity ? Infinity : Date.now() + args.duration * 1000;
        try {
          // A pcap file written with neither -c nor -U (the capture at full rate): each packet
          // goes straight to the writer, which counts them; a closed pipe (EPIPE) ends the loop.
          const pcap = writer as PcapWriter | PcapngWriter | null;
          const direct = pcap instanceof PcapWriter && args.count === 0 && !args.packetBuffered ? pcap : null;
          const onPacket: typeof handle = direct !== null
            ? (u8, o, caplen, wirelen, tsSec, tsNsec) => { direct.write(u8, o, caplen, wirelen, tsSec, tsNsec); }
            : (u8, o, caplen, wirelen, tsSec, tsNsec) => {
              if (watching) direction = cap.direction;
              handle(u8, o, caplen, wirelen, tsSec, tsNsec);
              if (pipeGone) cap.breakloop();
            };
          const packets0 = direct?.packets ?? 0;
          while (!stop) {
            let r: number;
            try {
              r = await cap.loop(args.count > 0 ? args.count - accepted : 0, onPacket, deadline);
            } catch (e) {
              if (direct === null || !isReaderGone(e)) throw e;
              pipeGone = true;
              break;
            } finally {
              if (direct !== null) accepted = direct.packets - packets0;
            }
            text.flush();
            if (r === -2 || Date.now() >= deadline || (args.count > 0 && accepted >= args.count)) break;
          }
        } finally {
          process.off('SIGINT', onSig);
          process.off('SIGTERM', onSig);
        }
        const st = cap.stats();
        seen = st.received;
        dropped = st.dropped;
      } finally {
        placement?.release();
        cap.close();
      }
    }
  } finally {
    text.flush();
    try {
      (writer as PcapWriter | PcapngWriter | null)?.close();
    } catch (e) {
      if (!isReaderGone(e)) throw e;
    }
  }
  warn(`${accepted} packets captured\n${seen} packets received by filter\n${dropped} packets dropped by kernel`);
  return status;
}
