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

const USAGE = `usage: netmap extcap --extcap-interfaces
       netmap extcap --extcap-dlts --extcap-interface PORT
       netmap extcap --extcap-config --extcap-interface PORT
       netmap extcap --capture --extcap-interface PORT --fifo PATH [--extcap-capture-filter EXPR]
                     [--snaplen N] [--direction in|out|inout]
       netmap extcap --install [--extcap-dir DIR]     put the wrapper into Wireshark's extcap folder
       netmap extcap --uninstall [--extcap-dir DIR]   remove it
  Wireshark calls the first four; a port is named as openPort names it, with '{', '}' and '%'
  written %7B, %7D, %25 (tshark -i 'netmap:p%7B1' captures on netmap:p{1).
  --install finds the folder with 'tshark -G folders' ("Personal Extcap path", Wireshark 4.2+;
  before 4.2 the only "Extcap path", which WIRESHARK_EXTCAP_DIR replaces for non-root users).`;

/** File name of the wrapper script in the extcap folder. */
export const WRAPPER_NAME = 'netmap-ts-extcap';

interface ExtcapArgs {
  op: 'interfaces' | 'dlts' | 'config' | 'capture' | 'install' | 'uninstall' | 'help' | null;
  iface?: string;
  fifo?: string;
  filter?: string;
  snaplen: number;
  direction: 'in' | 'out' | 'inout';
  dir?: string;
}

class UsageError extends Error {}

const OPS: Record<string, ExtcapArgs['op']> = {
  '--extcap-interfaces': 'interfaces', '--extcap-dlts': 'dlts', '--extcap-config': 'config', '--capture': 'capture',
  '--install': 'install', '--uninstall': 'uninstall', '--help': 'help', '-h': 'help',
};
/** Options Wireshark may pass that we accept and ignore (with a value or not). */
const IGNORED_WITH_VALUE = new Set(['--extcap-control-in', '--extcap-control-out', '--debug-file', '--extcap-reload-option']);
const IGNORED = new Set(['--debug', '--extcap-version']);

function parse(argv: string[]): ExtcapArgs {
  const a: ExtcapArgs = { op: null, snaplen: MAXIMUM_SNAPLEN, direction: 'inout' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const value = (): string => {
      const v = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`option '${name}' requires an argument`);
      return v;
    };
    const op = OPS[name];
    if (op !== undefined) {
      // --capture may come with --extcap-interface alone; the first operation named wins otherwise
      if (a.op === null || op === 'capture' || op === 'help') a.op = op;
      continue;
    }
    switch (name) {
      case '--extcap-interface': a.iface = decodeInterface(value()); break;
      case '--fifo': a.fifo = value(); break;
      case '--extcap-capture-filter': a.filter = value(); break;
      case '--extcap-dir': a.dir = value(); break;
      case '--snaplen': {
        const v = value();
        if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > MAXIMUM_SNAPLEN) throw new UsageError(`invalid snapshot length ${v} (1..${MAXIMUM_SNAPLEN})`);
        a.snaplen = Number(v);
        break;
      }
      case '--direction': {
        const v = value().toLowerCase();
        if (v !== 'in' && v !== 'out' && v !== 'inout') throw new UsageError(`unknown capture direction \`${v}'`);
        a.direction = v;
        break;
      }
      default:
        if (IGNORED.has(name)) break;
        if (IGNORED_WITH_VALUE.has(name)) { value(); break; }
        throw new UsageError(arg.startsWith('-') ? `unrecognized option '${arg}'` : `unexpected argument '${arg}'`);
    }
  }
  if (a.op === null) throw new UsageError('give --extcap-interfaces, --extcap-dlts, --extcap-config, --capture, --install or --uninstall');
  if ((a.op === 'dlts' || a.op === 'config' || a.op === 'capture') && a.iface === undefined) throw new UsageError('--extcap-interface is required');
  if (a.op === 'capture' && a.fifo === undefined) throw new UsageError('--capture needs --fifo');
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

function printConfig(): void {
  process.stdout.write([
    `arg {number=0}{call=--snaplen}{display=Snapshot length}{type=unsigned}{default=${MAXIMUM_SNAPLEN}}{range=1,${MAXIMUM_SNAPLEN}}{tooltip=Bytes kept of each packet}`,
    'arg {number=1}{call=--direction}{display=Direction}{type=selector}{tooltip=What to see of an existing port: received, sent or both (its monitor /r, /t, /rt)}',
    'value {arg=1}{value=inout}{display=received and sent}{default=true}',
    'value {arg=1}{value=in}{display=received (in)}{default=false}',
    'value {arg=1}{value=out}{display=sent (out)}{default=false}',
  ].join('\n') + '\n');
}

async function capture(a: ExtcapArgs): Promise<number> {
  const [{ openLive }, { watchName, CapturePump }, { PcapWriter }] = await Promise.all([
    import('../capture/live.js'), import('../capture/watch.js'), import('../capture/writer.js'),
  ]);
  const cap = openLive(watchName(a.iface!, a.direction), { snaplen: a.snaplen });
  let writer: InstanceType<typeof PcapWriter> | null = null;
  let pump: InstanceType<typeof CapturePump> | null = null;
  let ended = false;
  let status = 0;
  const isEpipe = (e: unknown): boolean => e instanceof NetmapError && /EPIPE/.test(e.message);
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
        if (!isEpipe(e)) { console.error(`netmap extcap: ${(e as Error).message}`); status = 1; }
        end(); // the reader went away: Wireshark stopped the capture
      }
    };
    pump = new CapturePump(cap, (u8, o, caplen, wirelen, sec, nsec) => {
      if (ended) return;
      try {
        w.write(u8, o, caplen, wirelen, sec, nsec);
      } catch (e) {
        if (!isEpipe(e)) { console.error(`netmap extcap: ${(e as Error).message}`); status = 1; }
        end();
        return;
      }
      // one flush per batch: after the dispatch that delivered this packet returns
      if (!dirty) { dirty = true; queueMicrotask(flush); }
    });
    pump.done.then(end, (e: unknown) => { console.error(`netmap extcap: ${(e as Error).message}`); status = 1; end(); });
    process.on('SIGTERM', end);
    process.on('SIGINT', end);
    process.on('SIGPIPE', end);
    await finished;
  } finally {
    process.off('SIGTERM', end);
    process.off('SIGINT', end);
    process.off('SIGPIPE', end);
    await pump?.stop();
    try { writer?.close(); } catch (e) { if (!isEpipe(e)) throw e; }
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
  let a: ExtcapArgs;
  try {
    a = parse(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`netmap extcap: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
  try {
    switch (a.op) {
      case 'help': console.log(USAGE); return 0;
      case 'interfaces': await listInterfaces(); return 0;
      case 'dlts': process.stdout.write('dlt {number=1}{name=EN10MB}{display=Ethernet}\n'); return 0;
      case 'config': printConfig(); return 0;
      case 'capture': return await capture(a);
      case 'install': case 'uninstall': return install(a);
      default: return 2;
    }
  } catch (e) {
    if (e instanceof NetmapError) {
      console.error(`netmap extcap: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
