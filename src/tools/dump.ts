/**
 * `netmap dump`: tcpdump-like capture on a netmap port or a capture file, with pcap-filter
 * expressions compiled to BPF (then to JavaScript). The work is done by src/capture.
 */
import * as fs from 'node:fs';
import { NetmapError } from '../errors.js';
import { formatProgram, MAXIMUM_SNAPLEN, type BpfProgram, type PacketFilter } from '../capture/bpf.js';
import { openCaptureFile } from '../capture/reader.js';
import { PcapWriter, PcapngWriter } from '../capture/writer.js';
import type { PrintOptions } from '../capture/print.js';

const USAGE = `usage: netmap dump [-deqnOSx] [-c count] [-i port | -r file] [-Q in|out|inout] [-s snaplen]
                   [-w file] [-F file] [--pcapng] [--nano] [--utc] [--interpreted] [--duration sec]
                   [expression]
  -i PORT        capture on a netmap port (netmap:p{1, vale0:a, netmap:eth1, ...); a port that
                 is in use is watched through a copy monitor (PORT/rt), without disturbing it
  -Q DIR         direction on a watched port: in (what it receives), out (what it sends),
                 inout (both, the default); printed as In/Out, in pcapng as epb_flags
  -r FILE        read packets from a pcap or pcapng file ('-' = standard input)
  -w FILE        write accepted packets to FILE (pcap; '-' = standard output)
  -c N           stop after N accepted packets
  -s SNAPLEN     keep at most SNAPLEN bytes of each captured packet (default 262144;
                 like tcpdump, records read with -r are not cut)
  -n             numeric output (always; accepted for compatibility)
  -e             print the link-level header
  -q             quick output (less protocol detail)
  -x, -xx        hex dump of each packet (without / with its link header)
  -d, -dd, -ddd  print the compiled BPF program in tcpdump's formats and exit
  -O             do not optimise the filter
  -F FILE        read the filter expression from FILE
  --pcapng       write pcapng instead of pcap (with -w)
  --nano         nanosecond timestamps (output file and printing)
  --utc          print times in UTC
  --interpreted  run the filter in the BPF interpreter instead of compiling it
  --duration S   stop a live capture after S seconds
  expression     a pcap-filter expression, or a raw program in -ddd format`;

interface Args {
  iface?: string;
  read?: string;
  write?: string;
  count: number;
  snaplen: number;
  dump: 0 | 1 | 2 | 3;
  ether: boolean;
  quick: boolean;
  hex: 0 | 1 | 2;
  optimize: boolean;
  pcapng: boolean;
  nano: boolean;
  utc: boolean;
  interpreted: boolean;
  duration: number;
  expression: string;
  direction: 'in' | 'out' | 'inout';
}

class UsageError extends Error {}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    count: 0, snaplen: MAXIMUM_SNAPLEN, dump: 0, ether: false, quick: false, hex: 0, optimize: true,
    pcapng: false, nano: false, utc: false, interpreted: false, duration: Infinity, expression: '',
    direction: 'inout',
  };
  const rest: string[] = [];
  let filterFile: string | undefined;
  const num = (v: string | undefined, what: string, min: number, max: number): number => {
    if (v === undefined || !/^\d+$/.test(v)) throw new UsageError(`${what} needs a number, got '${v ?? ''}'`);
    const n = Number(v);
    if (n < min || n > max) throw new UsageError(`${what} must be ${min}..${max}, got ${n}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (rest.length > 0 || !arg.startsWith('-') || arg === '-') { rest.push(arg); continue; }
    if (arg === '--') { rest.push(...argv.slice(i + 1)); break; }
    if (arg.startsWith('--')) {
      switch (arg) {
        case '--pcapng': a.pcapng = true; break;
        case '--nano': a.nano = true; break;
        case '--utc': a.utc = true; break;
        case '--interpreted': a.interpreted = true; break;
        case '--duration': {
          const v = argv[++i];
          if (v === undefined || !/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`--duration needs seconds, got '${v ?? ''}'`);
          a.duration = Number(v);
          break;
        }
        default: throw new UsageError(`unknown option '${arg}'`);
      }
      continue;
    }
    // Clustered short options, tcpdump style: -nr FILE, -c5, -xx, -ddd.
    for (let j = 1; j < arg.length; j++) {
      const c = arg[j]!;
      const takesArg = 'irwcsFQ'.includes(c);
      if (takesArg) {
        const v = j + 1 < arg.length ? arg.slice(j + 1) : argv[++i];
        if (v === undefined) throw new UsageError(`option -${c} needs an argument`);
        switch (c) {
          case 'i': a.iface = v; break;
          case 'r': a.read = v; break;
          case 'w': a.write = v; break;
          case 'c': a.count = num(v, '-c', 1, Number.MAX_SAFE_INTEGER); break;
          case 's': a.snaplen = num(v, '-s', 0, MAXIMUM_SNAPLEN) || MAXIMUM_SNAPLEN; break;
          case 'F': filterFile = v; break;
          case 'Q':
            if (v !== 'in' && v !== 'out' && v !== 'inout') throw new UsageError(`-Q takes in, out or inout, not '${v}'`);
            a.direction = v;
            break;
        }
        break;
      }
      switch (c) {
        case 'd': a.dump = Math.min(3, a.dump + 1) as 1 | 2 | 3; break;
        case 'e': a.ether = true; break;
        case 'q': a.quick = true; break;
        case 'n': case 'S': case 'p': break;
        case 'x': a.hex = Math.min(2, a.hex + 1) as 1 | 2; break;
        case 'O': a.optimize = false; break;
        default: throw new UsageError(`unknown option '-${c}'`);
      }
    }
  }
  a.expression = rest.join(' ');
  if (filterFile !== undefined) {
    if (a.expression !== '') throw new UsageError('-F and an expression on the command line are exclusive');
    try {
      a.expression = fs.readFileSync(filterFile, 'utf8').replace(/#.*$/gm, '').trim();
    } catch (e) {
      throw new UsageError(`cannot read filter file ${filterFile}: ${(e as Error).message}`);
    }
  }
  if (a.iface !== undefined && a.read !== undefined) throw new UsageError('-i and -r are exclusive');
  if (a.read !== undefined && a.direction !== 'inout') throw new UsageError('-Q applies to a port (-i), not to a file');
  if (a.iface === undefined && a.read === undefined && a.dump === 0) throw new UsageError('give a port (-i) or a file (-r)');
  return a;
}

/** Buffered text output on a file descriptor (console.log per packet is far too slow). */
class TextOut {
  private buf: string[] = [];
  private size = 0;
  constructor(private readonly fd: number) {}
  line(s: string): void {
    this.buf.push(s);
    this.size += s.length;
    if (this.size > 65536) this.flush();
  }
  flush(): void {
    if (this.buf.length === 0) return;
    const data = this.buf.join('\n') + '\n';
    this.buf = [];
    this.size = 0;
    try {
      fs.writeSync(this.fd, data);
    } catch (e) {
      if ((e as { code?: string }).code !== 'EPIPE') throw e;
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`netmap dump: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
  try {
    return await run(args);
  } catch (e) {
    if (e instanceof NetmapError) {
      console.error(`netmap dump: ${e.message}`);
      return 1;
    }
    throw e;
  }
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
  const text = new TextOut(1);
  const popts: PrintOptions = { ether: args.ether, quick: args.quick, nano: args.nano, hex: args.hex, utc: args.utc };
  // The printer is loaded only when packets are printed (`-w` alone never needs it).
  const { formatPacket } = args.write === undefined ? await import('../capture/print.js') : { formatPacket: null };
  let accepted = 0;
  let seen = 0;
  let status = 0;
  let stop = false;

  // Direction of the packet being handled, 0 unknown (a file, a port opened itself), 1 in, 2 out.
  let direction = 0;
  const handle = (u8: Uint8Array, o: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number): void => {
    if (stop) return;
    if (writer instanceof PcapngWriter) writer.write(u8, o, caplen, wirelen, tsSec, tsNsec, 0, direction);
    else if (writer !== null) writer.write(u8, o, caplen, wirelen, tsSec, tsNsec);
    else if (formatPacket !== null) {
      const line = formatPacket(u8, o, caplen, wirelen, tsSec, tsNsec, popts);
      if (direction === 0) text.line(line);
      else { const sp = line.indexOf(' '); text.line(`${line.slice(0, sp)} ${direction === 2 ? 'Out' : 'In'}${line.slice(sp)}`); }
    }
    accepted++;
    if (args.count > 0 && accepted >= args.count) stop = true;
  };

  const openWriter = (linktype: number, fileSnaplen: number): void => {
    if (args.write === undefined) return;
    writer = args.pcapng
      ? new PcapngWriter(args.write, { interfaces: [{ linktype, snaplen: fileSnaplen, nanosecond: args.nano, name: args.iface }] })
      : new PcapWriter(args.write, { linktype, snaplen: fileSnaplen, nanosecond: args.nano });
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
        const w = writer as PcapWriter | PcapngWriter | null;
        const raw = w instanceof PcapWriter && args.count === 0 && rd.format === 'pcap' && rd.littleEndian &&
          rd.nanosecond === args.nano && rd.snaplen <= w.snaplen;
        const sink = (u8: Uint8Array, off: number, len: number, records: number): void => {
          (w as PcapWriter).writeRaw(u8, off, len, records);
          accepted += records;
        };
        try {
          if (raw) while (rd.copyAccepted(0, filter ?? acceptAll, sink) > 0) { /* until the end of the file */ }
          else while (!stop && rd.dispatch(batch, onRecord) > 0) { /* until the end of the file or -c */ }
        } catch (e) {
          if (!(e instanceof NetmapError)) throw e;
          console.error(`netmap dump: ${e.message}`);
          status = 1;
        }
        seen = rd.delivered;
      } finally {
        rd.close();
      }
    } else if (args.iface !== undefined) {
      const { openLive } = await import('../capture/live.js');
      const { monitorNameFor } = await import('../monitor/monitor.js');
      // A port in use is watched through a copy monitor; one nobody has open is opened itself.
      const watch = monitorNameFor(args.iface, args.direction);
      const cap = openLive(watch ?? args.iface, { snaplen, direction: args.direction });
      let handler = handle;
      if (watch !== null) handler = (u8, o, caplen, wirelen, tsSec, tsNsec): void => { direction = cap.direction; handle(u8, o, caplen, wirelen, tsSec, tsNsec); };
      try {
        if (filter !== null) cap.setFilter(prog, args.interpreted ? 'interpreted' : 'compiled');
        openWriter(1, snaplen);
        const onSig = (): void => { stop = true; cap.breakloop(); };
        process.on('SIGINT', onSig);
        process.on('SIGTERM', onSig);
        console.error(`netmap dump: listening on ${args.iface}${watch !== null ? ` (through ${cap.port.name})` : ''}, link-type EN10MB (Ethernet), snapshot length ${snaplen} bytes`);
        const deadline = args.duration === Infinity ? Infinity : Date.now() + args.duration * 1000;
        try {
          while (!stop) {
            const r = await cap.loop(args.count > 0 ? args.count - accepted : 0, handler, deadline);
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
        cap.close();
      }
    }
  } finally {
    text.flush();
    (writer as PcapWriter | PcapngWriter | null)?.close();
  }
  console.error(`${accepted} packets captured\n${seen} packets received by filter\n${dropped} packets dropped by kernel`);
  return status;
}
