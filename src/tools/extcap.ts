/**
 * `netmap extcap`: Wireshark's extcap interface, so that Wireshark and tshark list the netmap
 * ports in use (`tshark -D`) and capture from them (`tshark -i vale0:a`). Wireshark runs this
 * program (through a small wrapper script that `netmap extcap --install` puts in its extcap
 * folder) with:
 *   --extcap-interfaces                       the ports, one `interface {value=}{display=}` line each
 *   --extcap-dlts --extcap-interface X        the link type (Ethernet)
 *   --extcap-config --extcap-interface X      the capture options (snapshot length, direction)
 *   --capture --extcap-interface X --fifo F [--extcap-capture-filter EXPR] [--snaplen N] [--direction D]
 *                                             pcap records into the FIFO until Wireshark stops us
 * Ports are watched by name through the library (capture/watch.ts): an existing port through its
 * monitor, NAME/rt.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NetmapError } from '../errors.js';
import { MAXIMUM_SNAPLEN } from '../capture/bpf.js';
import type { Direction } from '../capture/watch.js';
import { runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';

const EXTCAP: ToolSpec = {
  name: 'extcap',
  synopsis: [
    '--extcap-interfaces',
    '--extcap-dlts --extcap-interface PORT',
    '--extcap-config --extcap-interface PORT',
    '--capture --extcap-interface PORT --fifo PATH [--extcap-capture-filter EXPR] [--snaplen N] [--direction D]',
    '--install | --uninstall [--extcap-dir DIR]',
  ],
  preamble: [
    "Wireshark calls the first four; a port is named as openPort names it, with '{', '}' and '%'",
    "written %7B, %7D, %25 (tshark -i 'netmap:p%7B1' captures on netmap:p{1).",
  ],
  options: [
    { long: 'extcap-interfaces', help: 'list the ports in use as extcap interfaces' },
    { long: 'extcap-dlts', help: "the interface's link type (Ethernet)" },
    { long: 'extcap-config', help: 'the capture options Wireshark offers (--snaplen, --direction)' },
    { long: 'capture', help: 'capture into --fifo until Wireshark stops us (SIGTERM)' },
    { long: 'extcap-interface', value: 'PORT', many: true, help: 'the port' },
    { long: 'fifo', value: 'PATH', many: true, help: 'where the pcap stream goes' },
    { long: 'extcap-capture-filter', value: 'EXPR', many: true, help: 'a pcap-filter expression' },
    { long: 'snaplen', value: 'N', many: true, help: `bytes kept of each packet (1..${MAXIMUM_SNAPLEN})` },
    { long: 'direction', value: 'in|out|inout', many: true, help: 'what to watch of the port (its monitor /r, /t, /rt)' },
    { long: 'install', help: "put the wrapper into Wireshark's extcap folder: the one 'tshark -G folders'\nreports as \"Personal Extcap path\" (Wireshark 4.2+), before 4.2 the only \"Extcap\npath\" (WIRESHARK_EXTCAP_DIR replaces it for non-root users)" },
    { long: 'uninstall', help: 'remove the wrapper' },
    { long: 'extcap-dir', value: 'DIR', many: true, help: 'the folder for --install and --uninstall' },
    { long: 'extcap-version', value: 'V', many: true, help: "Wireshark's version (accepted, ignored)" },
    { long: 'extcap-control-in', value: 'PATH', many: true, help: 'accepted, ignored (no toolbar controls)' },
    { long: 'extcap-control-out', value: 'PATH', many: true, help: 'accepted, ignored' },
    { long: 'extcap-reload-option', value: 'NAME', many: true, help: 'accepted, ignored' },
    { long: 'debug', many: true, help: 'accepted, ignored' },
    { long: 'debug-file', value: 'PATH', many: true, help: 'accepted, ignored' },
  ],
};

/** File name of the wrapper script in the extcap folder. */
export const WRAPPER_NAME = 'netmap-ts-extcap';

interface ExtcapArgs {
  op: 'interfaces' | 'dlts' | 'config' | 'capture' | 'install' | 'uninstall' | 'validate';
  iface?: string;
  fifo?: string;
  filter?: string;
  snaplen: number;
  direction: Direction;
  dir?: string;
}

function toArgs(p: ParsedArgs): ExtcapArgs {
  // --capture wins (Wireshark may add the others' options); then the first of the rest
  const ops = (['capture', 'extcap-interfaces', 'extcap-dlts', 'extcap-config', 'install', 'uninstall'] as const).filter((o) => p.has(o));
  // Wireshark checks a capture filter with --extcap-capture-filter F --extcap-interface X alone
  const validate = ops.length === 0 && p.has('extcap-capture-filter');
  if (ops.length === 0 && !validate) usageFail('give --extcap-interfaces, --extcap-dlts, --extcap-config, --capture, --install or --uninstall');
  if (p.operands.length > 0) usageFail(`unexpected argument '${p.operands[0]!}'`);
  const op = validate ? 'validate' : ({ 'capture': 'capture', 'extcap-interfaces': 'interfaces', 'extcap-dlts': 'dlts', 'extcap-config': 'config', 'install': 'install', 'uninstall': 'uninstall' } as const)[ops[0]!];
  const iface = p.value('extcap-interface');
  const a: ExtcapArgs = {
    op, iface: iface === undefined ? undefined : decodeInterface(iface), fifo: p.value('fifo'), filter: p.value('extcap-capture-filter'),
    snaplen: MAXIMUM_SNAPLEN, direction: 'inout', dir: p.value('extcap-dir'),
  };
  const s = p.value('snaplen');
  if (s !== undefined) {
    if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > MAXIMUM_SNAPLEN) usageFail(`invalid snapshot length ${s} (1..${MAXIMUM_SNAPLEN})`);
    a.snaplen = Number(s);
  }
  const d = p.value('direction');
  if (d !== undefined) {
    const v = d.toLowerCase();
    if (v !== 'in' && v !== 'out' && v !== 'inout') usageFail(`unknown capture direction \`${d}'`);
    a.direction = v;
  }
  if ((op === 'dlts' || op === 'config' || op === 'capture' || op === 'validate') && a.iface === undefined) usageFail('--extcap-interface is required');
  if (op === 'capture' && a.fifo === undefined) usageFail('--capture needs --fifo');
  return a;
}

/** The extcap interface value of a port name: '{', '}' and '%' (which Wireshark's parser or shells mind) escaped. */
export function encodeInterface(name: string): string {
  return name.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

export function decodeInterface(value: string): string {
  return value.replace(/%(7B|7D|25)/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** Text of an extcap sentence value: the braces that end a field are not allowed in it. */
const field = (s: string): string => s.replace(/[{}]/g, (c) => (c === '{' ? '(' : ')'));

async function listInterfaces(): Promise<void> {
  const { watchablePorts } = await import('../capture/watch.js');
  const lines = [`extcap {version=${packageVersion()}}{help=https://github.com/netmap-ts}{display=netmap-ts ports}`];
  for (const p of watchablePorts()) lines.push(`interface {value=${encodeInterface(p.name)}}{display=netmap ${field(p.description)}}`);
  process.stdout.write(lines.join('\n') + '\n');
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0';
  } catch {
    return '0';
  }
}

/** --extcap-config's answer (the same for every port). */
const CONFIG_TEXT = [
  `arg {number=0}{call=--snaplen}{display=Snapshot length}{type=unsigned}{default=${MAXIMUM_SNAPLEN}}{range=1,${MAXIMUM_SNAPLEN}}{tooltip=Bytes kept of each packet}`,
  'arg {number=1}{call=--direction}{display=Direction}{type=selector}{tooltip=What to see of an existing port: received, sent or both (its monitor /r, /t, /rt)}',
  'value {arg=1}{value=inout}{display=received and sent}{default=true}',
  'value {arg=1}{value=in}{display=received (in)}{default=false}',
  'value {arg=1}{value=out}{display=sent (out)}{default=false}',
].join('\n') + '\n';

/** --extcap-dlts's answer (every port is Ethernet). */
const DLTS_TEXT = 'dlt {number=1}{name=EN10MB}{display=Ethernet}\n';

async function capture(a: ExtcapArgs): Promise<number> {
  const [{ openLive }, { watchName, CapturePump }, { PcapWriter, isReaderGone }] = await Promise.all([
    import('../capture/live.js'), import('../capture/watch.js'), import('../capture/writer.js'),
  ]);
  await (await import('../port-types-lazy.js')).loadPortTypesFor([a.iface!]);
  const cap = openLive(watchName(a.iface!, a.direction), { snaplen: a.snaplen });
  let writer: InstanceType<typeof PcapWriter> | null = null;
  let pump: InstanceType<typeof CapturePump> | null = null;
  let ended = false;
  let status = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => { finish = resolve; });
  const end = (): void => {
    if (ended) return;
    ended = true;
    finish();
  };
  try {
    if (a.filter !== undefined && a.filter.trim() !== '') cap.setFilter(a.filter);
    // Opening a FIFO for writing waits for its reader (Wireshark's dumpcap).
    writer = new PcapWriter(a.fifo!, { snaplen: a.snaplen });
    writer.flush();
    const w = writer;
    let dirty = false;
    const flush = (): void => {
      dirty = false;
      if (ended) return;
      try {
        w.flush();
      } catch (e) {
        if (!isReaderGone(e)) { console.error(`netmap extcap: ${(e as Error).message}`); status = 1; }
        end(); // the reader went away: Wireshark stopped the capture
      }
    };
    pump = new CapturePump(cap, (u8, o, caplen, wirelen, sec, nsec) => {
      if (ended) return;
      try {
        w.write(u8, o, caplen, wirelen, sec, nsec);
      } catch (e) {
        if (!isReaderGone(e)) { console.error(`netmap extcap: ${(e as Error).message}`); status = 1; }
        end();
        return;
      }
      // one flush per batch: after the dispatch that delivered this packet returns
      if (!dirty) { dirty = true; queueMicrotask(flush); }
    });
    pump.done.then(end, (e: unknown) => { console.error(`netmap extcap: ${(e as Error).message}`); status = 1; end(); });
    // The reader going away (tshark -c N, Wireshark's stop) is a write failing with EPIPE, as for
    // dump -w -: no SIGPIPE listener (removing it would restore SIGPIPE's default action, and the
    // last flush in close() then killed the process: exit 141).
    process.on('SIGTERM', end);
    process.on('SIGINT', end);
    await finished;
  } finally {
    process.off('SIGTERM', end);
    process.off('SIGINT', end);
    await pump?.stop();
    try { writer?.close(); } catch (e) { if (!isReaderGone(e)) throw e; }
    cap.close();
  }
  return status;
}

/** The folder Wireshark reads personal extcap programs from, as `tshark -G folders` reports it. */
export function extcapFolder(): { dir: string; source: string } {
  const r = spawnSync('tshark', ['-G', 'folders'], { encoding: 'utf8', timeout: 30000 });
  if (r.status === 0 && typeof r.stdout === 'string') {
    const personal = /^Personal Extcap path:\s*(.+)$/m.exec(r.stdout);
    if (personal !== null) return { dir: personal[1]!.trim(), source: 'tshark -G folders (Personal Extcap path)' };
    const only = /^Extcap path:\s*(.+)$/m.exec(r.stdout);
    if (only !== null) return { dir: only[1]!.trim(), source: 'tshark -G folders (Extcap path)' };
  }
  return { dir: path.join(os.homedir(), '.local', 'lib', 'wireshark', 'extcap'), source: 'the Wireshark 4.2+ default (tshark not found)' };
}

/**
 * The wrapper's own answers to --extcap-dlts and --extcap-config (the same text as main()'s,
 * written at install): Wireshark asks them for every port at every start, and each answer from
 * Node costs a Node start (0.2-0.5 s on a busy 2-core machine), before the capture's own. Only
 * argument lists made of exactly those options (with --extcap-interface PORT, --extcap-version,
 * --debug) are answered here; anything else goes to Node as before.
 */
function staticAnswers(): string[] {
  const heredoc = (text: string): string[] => ["cat <<'NETMAP_TS_EOF'", ...text.replace(/\n$/, '').split('\n'), 'NETMAP_TS_EOF'];
  return [
    'op= port= skip= skip_port=',
    'for arg in "$@"; do',
    '  if [ -n "$skip" ]; then skip=; [ "$skip_port" = 1 ] && port=1; skip_port=; continue; fi',
    '  case "$arg" in',
    '    --extcap-dlts) op=dlts ;;',
    '    --extcap-config) [ "$op" = dlts ] || op=config ;;',
    '    --extcap-interface) skip=1 skip_port=1 ;;',
    '    --extcap-interface=?*) port=1 ;;',
    '    --extcap-version) skip=1 ;;',
    '    --extcap-version=*|--debug) ;;',
    '    *) op=node; break ;;',
    '  esac',
    'done',
    'if [ -n "$port" ] && [ -z "$skip" ]; then',
    '  case "$op" in',
    '    dlts)',
    ...heredoc(DLTS_TEXT),
    '      exit 0 ;;',
    '    config)',
    ...heredoc(CONFIG_TEXT),
    '      exit 0 ;;',
    '  esac',
    'fi',
  ];
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function install(a: ExtcapArgs): number {
  const { dir, source } = a.dir !== undefined ? { dir: a.dir, source: '--extcap-dir' } : extcapFolder();
  const file = path.join(dir, WRAPPER_NAME);
  if (a.op === 'uninstall') {
    try {
      fs.unlinkSync(file);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw new NetmapError('EPERM', `cannot remove ${file}: ${(e as Error).message}`);
      console.error(`netmap extcap: ${file} was not installed`);
      return 1;
    }
    console.log(`removed ${file}`);
    return 0;
  }
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  const dirEnv = process.env.NETMAP_TS_DIR;
  const script = [
    '#!/bin/sh',
    '# netmap-ts ports for Wireshark/tshark (extcap); written by `netmap extcap --install`.',
    ...(dirEnv !== undefined ? [`NETMAP_TS_DIR="\${NETMAP_TS_DIR:-${dirEnv.replace(/["\\$`]/g, '\\$&')}}"`, 'export NETMAP_TS_DIR'] : []),
    ...staticAnswers(),
    `exec ${shellQuote(process.execPath)} ${shellQuote(cli)} extcap "$@"`,
    '',
  ].join('\n');
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(file, script, { mode: 0o755 });
    fs.chmodSync(file, 0o755);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new NetmapError(code === 'EACCES' || code === 'EPERM' ? 'EPERM' : 'EIO',
      `cannot write ${file} (folder from ${source}): ${(e as Error).message}; give another folder with --extcap-dir` +
      (source.endsWith('(Extcap path)') ? ' (Wireshark before 4.2 has no personal extcap folder: set WIRESHARK_EXTCAP_DIR, honoured for non-root users)' : ''));
  }
  console.log(`installed ${file} (folder from ${source})`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  return runTool(EXTCAP, argv, toArgs, async (a) => {
    switch (a.op) {
      case 'interfaces': await listInterfaces(); return 0;
      case 'dlts': process.stdout.write(DLTS_TEXT); return 0;
      case 'config': process.stdout.write(CONFIG_TEXT); return 0;
      case 'capture': return capture(a);
      case 'install': case 'uninstall': return install(a);
      case 'validate': {
        // Wireshark's rule: nothing on stdout for a valid filter, else the reason on its first line
        const { compileFilter } = await import('../capture/filter.js');
        try {
          if (a.filter!.trim() !== '') compileFilter(a.filter!);
        } catch (e) {
          if (!(e instanceof NetmapError)) throw e;
          process.stdout.write(`${e.message.replace(/ \([A-Z0-9]+\)$/, '').split('\n')[0]}\n`);
        }
        return 0;
      }
    }
  });
}
