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

type Direction = 'in' | 'out' | 'inout';

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
  /** -Q: which direction of a monitored port to capture. */
  direction: Direction;
  pcapng: boolean;
  nano: boolean;
  utc: boolean;
  interpreted: boolean;
  duration: number;
  expression: string;
  help: boolean;
}

class UsageError extends Error {}

/**
 * One option of the command line: a short letter and/or a long name, whether it takes a value
 * (`arg` names it in the help), its help text, and what it does to Args. The table below drives
 * both the parser and `--help`, getopt_long-style, so it can move to a shared parser as it is.
 */
interface OptionSpec {
  short?: string;
  long?: string;
  arg?: string;
  help: string;
  set(a: Args, value: string): void;
}

const num = (v: string, what: string, min: number, max: number): number => {
  if (!/^\d+$/.test(v)) throw new UsageError(`invalid ${what} ${v}`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`invalid ${what} ${v} (must be ${min}..${max})`);
  return n;
};

const OPTIONS: OptionSpec[] = [
  { short: 'i', arg: 'PORT', help: 'capture on a netmap port (netmap:p{1, vale0:a, netmap:eth1, ...)', set: (a, v) => { a.iface = v; } },
  { short: 'r', arg: 'FILE', help: "read packets from a pcap or pcapng file ('-' = standard input)", set: (a, v) => { a.read = v; } },
  { short: 'w', arg: 'FILE', help: "write accepted packets to FILE (pcap; '-' = standard output)", set: (a, v) => { a.write = v; } },
  { short: 'U', help: 'packet-buffered output: flush -w output after each packet', set: (a) => { a.packetBuffered = true; } },
  { short: 'c', arg: 'N', help: 'stop after N accepted packets', set: (a, v) => { a.count = num(v, 'packet count', 1, Number.MAX_SAFE_INTEGER); } },
  { short: 's', arg: 'SNAPLEN', help: 'keep at most SNAPLEN bytes of each captured packet (0 or default: 262144;\n' +
    'like tcpdump, records read with -r are not cut)', set: (a, v) => { a.snaplen = num(v, 'snaplen', 0, MAXIMUM_SNAPLEN) || MAXIMUM_SNAPLEN; } },
  { short: 'Q', long: 'direction', arg: 'in|out|inout', help: 'direction to capture when watching an existing port (monitor /r, /t, /rt);\n' +
    'ignored with -r, as tcpdump does', set: (a, v) => {
    const d = v.toLowerCase();
    if (d !== 'in' && d !== 'out' && d !== 'inout') throw new UsageError(`unknown capture direction \`${v}'`);
    a.direction = d;
  } },
  { short: 'n', help: 'numeric output (always; accepted for compatibility)', set: () => undefined },
  { short: 'S', help: 'absolute TCP sequence numbers (always; accepted)', set: () => undefined },
  { short: 'p', help: 'no promiscuous mode (netmap ports have none; accepted)', set: () => undefined },
  { short: 'e', help: 'print the link-level header', set: (a) => { a.ether = true; } },
  { short: 'q', help: 'quick output (less protocol detail)', set: (a) => { a.quick = true; } },
  { short: 'v', help: 'verbose (accepted, may repeat; lines stay in the -n -S form)', set: (a) => { a.verbose++; } },
  { short: 'l', help: 'line-buffered printing: flush each line', set: (a) => { a.lineBuffered = true; } },
  { short: 'x', help: 'hex dump of each packet (-xx: with its link header)', set: (a) => { a.hex = Math.min(2, a.hex + 1) as 1 | 2; } },
  { short: 'd', help: "print the compiled BPF program in tcpdump's formats and exit (-dd, -ddd)", set: (a) => { a.dump = Math.min(3, a.dump + 1) as 1 | 2 | 3; } },
  { short: 'O', help: 'do not optimise the filter', set: (a) => { a.optimize = false; } },
  { short: 'F', arg: 'FILE', help: 'read the filter expression from FILE', set: (a, v) => { a.filterFile = v; } },
  { long: 'pcapng', help: 'write pcapng instead of pcap (with -w)', set: (a) => { a.pcapng = true; } },
  { long: 'nano', help: 'nanosecond timestamps (output file and printing)', set: (a) => { a.nano = true; } },
  { long: 'utc', help: 'print times in UTC', set: (a) => { a.utc = true; } },
  { long: 'interpreted', help: 'run the filter in the BPF interpreter instead of compiling it', set: (a) => { a.interpreted = true; } },
  { long: 'duration', arg: 'SEC', help: 'stop a live capture after SEC seconds', set: (a, v) => {
    if (!/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`invalid duration ${v}`);
    a.duration = Number(v);
  } },
  { short: 'h', long: 'help', help: 'this text', set: (a) => { a.help = true; } },
];

function usageText(): string {
  const flags = OPTIONS.filter((o) => o.short !== undefined && o.arg === undefined && o.short !== 'h').map((o) => o.short).join('');
  const lines = [
    `usage: netmap dump [-${flags}] [-c count] [-i port | -r file] [-s snaplen] [-w file] [-Q in|out|inout]`,
    '                   [-F file] [--pcapng] [--nano] [--utc] [--interpreted] [--duration sec] [expression]',
    '  (options may also follow the expression, as with tcpdump on Linux; -- ends the options)',
  ];
  for (const o of OPTIONS) {
    const names = [o.short !== undefined ? `-${o.short}` : '', o.long !== undefined ? `--${o.long}` : ''].filter((n) => n !== '').join(', ');
    const head = `  ${names}${o.arg !== undefined ? ` ${o.arg}` : ''}`;
    const [first, ...more] = o.help.split('\n');
    lines.push(head.length < 17 ? `${head.padEnd(17)}${first}` : `${head}\n${''.padEnd(17)}${first}`);
    for (const m of more) lines.push(`${''.padEnd(17)}${m}`);
  }
  lines.push("  expression     a pcap-filter expression, or a raw program in -ddd format");
  return lines.join('\n');
}

const USAGE = usageText();

/**
 * getopt_long with GNU permutation, as tcpdump on Linux parses: options may come before, between
 * or after the words of the expression; `--` ends the options; a lone `-` is a word. Short
 * options cluster (`-nr FILE`, `-c5`, `-xx`, `-ddd`); long options take `--opt=V` or `--opt V`
 * and may be abbreviated to a unique prefix. POSIXLY_CORRECT stops at the first word, as getopt.
 * Returns the words (the expression).
 */
function getopt(table: OptionSpec[], argv: string[], a: Args): string[] {
  const words: string[] = [];
  const stopAtWord = process.env.POSIXLY_CORRECT !== undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') { words.push(...argv.slice(i + 1)); break; }
    if (!arg.startsWith('-') || arg === '-') {
      if (stopAtWord) { words.push(...argv.slice(i)); break; }
      words.push(arg);
      continue;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const exact = table.find((o) => o.long === name);
      const matches = exact !== undefined ? [exact] : table.filter((o) => o.long?.startsWith(name) === true);
      if (matches.length === 0) throw new UsageError(`unrecognized option '${arg}'`);
      if (matches.length > 1) throw new UsageError(`option '${arg}' is ambiguous`);
      const o = matches[0]!;
      if (o.arg === undefined) {
        if (eq >= 0) throw new UsageError(`option '--${o.long}' doesn't allow an argument`);
        o.set(a, '');
      } else {
        const v = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
        if (v === undefined) throw new UsageError(`option '--${o.long}' requires an argument`);
        o.set(a, v);
      }
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const c = arg[j]!;
      const o = table.find((x) => x.short === c);
      if (o === undefined) throw new UsageError(`invalid option -- '${c}'`);
      if (o.arg === undefined) { o.set(a, ''); continue; }
      const v = j + 1 < arg.length ? arg.slice(j + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`option requires an argument -- '${c}'`);
      o.set(a, v);
      break;
    }
  }
  return words;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    count: 0, snaplen: MAXIMUM_SNAPLEN, dump: 0, ether: false, quick: false, verbose: 0, hex: 0, optimize: true,
    packetBuffered: false, lineBuffered: false, direction: 'inout',
    pcapng: false, nano: false, utc: false, interpreted: false, duration: Infinity, expression: '', help: false,
  };
  a.expression = getopt(OPTIONS, argv, a).join(' ');
  if (a.help) return a;
  if (a.filterFile !== undefined) {
    if (a.expression !== '') throw new UsageError('-F and an expression on the command line are exclusive');
    try {
      a.expression = fs.readFileSync(a.filterFile, 'utf8').replace(/#.*$/gm, '').trim();
    } catch (e) {
      throw new UsageError(`cannot read filter file ${a.filterFile}: ${(e as Error).message}`);
    }
  }
  if (a.iface !== undefined && a.read !== undefined) throw new UsageError('-i and -r are exclusive');
  if (a.iface === undefined && a.read === undefined && a.dump === 0) throw new UsageError('give a port (-i) or a file (-r)');
  return a;
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

/** Exit status for a bad command line (tcpdump's is 1; the tools of this project use 2). */
export const EXIT_USAGE = 2;

export async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`netmap dump: ${e.message}\n${USAGE}`);
      return EXIT_USAGE;
    }
    throw e;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
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
  const isEpipe = (e: unknown): boolean => e instanceof NetmapError && e.code === 'EIO' && /EPIPE/.test(e.message);
  const flushWriter = (): void => {
    try {
      (writer as PcapWriter | PcapngWriter | null)?.flush();
    } catch (e) {
      if (!isEpipe(e)) throw e;
      pipeGone = true;
      stop = true;
    }
  };
  const handle = (u8: Uint8Array, o: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number): void => {
    if (stop) return;
    if (writer !== null) {
      try {
        writer.write(u8, o, caplen, wirelen, tsSec, tsNsec);
      } catch (e) {
        if (!isEpipe(e)) throw e;
        pipeGone = true;
        stop = true;
        return;
      }
      if (args.packetBuffered) flushWriter();
    } else if (formatPacket !== null) {
      text.line(formatPacket(u8, o, caplen, wirelen, tsSec, tsNsec, popts));
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
          if (isEpipe(e)) pipeGone = true;
          else {
            console.error(`netmap dump: ${e.message}`);
            status = 1;
          }
        }
        seen = rd.delivered;
      } finally {
        rd.close();
      }
    } else if (args.iface !== undefined) {
      const [{ openLive }, { watchName }] = await Promise.all([import('../capture/live.js'), import('../capture/watch.js')]);
      // An existing port is watched through its monitor (-Q picks /r, /t or /rt); a new name is
      // opened as a port of its own.
      const cap = openLive(watchName(args.iface, args.direction), { snaplen });
      try {
        if (filter !== null) cap.setFilter(prog, args.interpreted ? 'interpreted' : 'compiled');
        openWriter(1, snaplen);
        const onSig = (): void => { stop = true; cap.breakloop(); };
        process.on('SIGINT', onSig);
        process.on('SIGTERM', onSig);
        console.error(`netmap dump: listening on ${args.iface}, link-type EN10MB (Ethernet), snapshot length ${snaplen} bytes`);
        const deadline = args.duration === Infinity ? Infinity : Date.now() + args.duration * 1000;
        try {
          const onPacket: typeof handle = (u8, o, caplen, wirelen, tsSec, tsNsec) => {
            handle(u8, o, caplen, wirelen, tsSec, tsNsec);
            if (pipeGone) cap.breakloop();
          };
          while (!stop) {
            const r = await cap.loop(args.count > 0 ? args.count - accepted : 0, onPacket, deadline);
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
    try {
      (writer as PcapWriter | PcapngWriter | null)?.close();
    } catch (e) {
      if (!isEpipe(e)) throw e;
    }
  }
  console.error(`${accepted} packets captured\n${seen} packets received by filter\n${dropped} packets dropped by kernel`);
  return status;
}
