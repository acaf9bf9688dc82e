/**
 * netmap vale-ctl: manage VALE switches (netmap's vale-ctl options). Logic is in src/switch.
 */
import { NetmapError } from '../errors.js';
import type * as Vale from '../switch/index.js';
import { runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';

const VALE_CTL: ToolSpec = {
  name: 'vale-ctl',
  synopsis: ['[-n port | -r port | -a valeSW:port | -h valeSW:port | -d valeSW:port | -l valeSW:port | -s [valeSW]] [-C spec] [-H len] [-v]'],
  preamble: ['with no option: list every port of every switch, \'<name> bridge_idx <b> port_idx <p>\''],
  // netmap's vale-ctl options (getopt "d:a:h:g:l:n:r:C:p:P:m:v"), plus -s
  options: [
    { short: 'n', value: 'port', many: true, help: 'create persistent VALE port \'port\' (its own memory; -C sets its geometry)' },
    { short: 'r', value: 'port', many: true, help: 'remove persistent port \'port\' (EBUSY while attached or open)' },
    { short: 'a', value: 'valeSW:port', many: true, help: 'attach persistent port (or interface) \'port\' to switch valeSW' },
    { short: 'h', value: 'valeSW:port', many: true, help: 'attach an interface and its host stack (interfaces only)' },
    { short: 'd', value: 'valeSW:port', many: true, help: 'detach \'port\' from switch valeSW' },
    { short: 'l', value: 'valeSW:port', many: true, help: 'print bridge and port index of valeSW:port' },
    { short: 's', help: 'print per-port counters (tx/rx packets, bytes, drops) of the switch given\nas operand (-s valeSW), or of every switch' },
    { short: 'C', value: 'spec', many: true, help: 'tx_slots[,rx_slots[,tx_rings[,rx_rings]]]: geometry for -n\n(1 number: both slot counts; 3 numbers: 3rd is both ring counts)' },
    { short: 'H', value: 'len', help: 'virtio-net header length of the port -n makes: 0, 10 or 12 (ours;\nnetmap sets it with NETMAP_REQ_PORT_HDR_SET at open, as pkt-gen -H does)' },
    { short: 'g', value: 'port', many: true, help: 'netmap: port info (not supported here)' },
    { short: 'p', value: 'port', many: true, help: 'netmap: start polling kernel threads (not supported here)' },
    { short: 'P', value: 'port', many: true, help: 'netmap: stop polling (not supported here)' },
    { short: 'm', value: 'memid', many: true, help: 'netmap: memory region of -n (not supported here)' },
    { short: 'v', many: true, help: 'verbose' },
  ],
  // netmap's getopt on Linux permutes: the switch of -s may come anywhere
  permute: true,
};

const STRERROR: Record<string, string> = {
  EEXIST: 'File exists', EBUSY: 'Device or resource busy', ENXIO: 'No such device or address',
  ENOENT: 'No such file or directory', ENOMEM: 'Cannot allocate memory', EINVAL: 'Invalid argument',
  EOPNOTSUPP: 'Operation not supported', EACCES: 'Permission denied', EPERM: 'Operation not permitted',
};

type Action = 'n' | 'r' | 'a' | 'h' | 'd' | 'l' | 's' | 'list';
const ACTION_WORD: Record<Action, string> = { n: 'create', r: 'remove', a: 'attach', h: 'attach', d: 'detach', l: 'list', s: 'list', list: 'list' };

function parseConf(text: string): Vale.ValeGeometry | string {
  if (!/^\d+(,\d+){0,3}$/.test(text)) return `invalid -C '${text}' (expected tx_slots[,rx_slots[,tx_rings[,rx_rings]]])`;
  const v = text.split(',').map(Number);
  const g: Vale.ValeGeometry = { txSlots: v[0]!, rxSlots: v[0]!, txRings: 1, rxRings: 1, extraBufs: 0 };
  if (v.length >= 2) g.rxSlots = v[1]!;
  if (v.length >= 3) { g.txRings = v[2]!; g.rxRings = v[2]!; }
  if (v.length >= 4) g.rxRings = v[3]!;
  return g;
}

interface Args { action: Action; arg: string; conf: Vale.ValeGeometry | null; verbose: boolean; vnetHdr: number | null }

const ACTIONS = new Set<string>(['n', 'r', 'a', 'h', 'd', 'l', 's']);

function toArgs(p: ParsedArgs): Args {
  const a: Args = { action: 'list', arg: '', conf: null, verbose: p.has('v'), vnetHdr: null };
  for (const unsupported of ['g', 'p', 'P', 'm']) if (p.has(unsupported)) usageFail(`option -${unsupported} is not supported by netmap-ts vale-ctl`);
  // the last action option wins, as in netmap's vale-ctl
  for (const g of p.given) if (ACTIONS.has(g.key)) { a.action = g.key as Action; a.arg = g.value; }
  if (p.operands.length > (a.action === 's' ? 1 : 0)) usageFail(`unexpected argument '${p.operands.at(-1)}'`);
  if (a.action === 's') a.arg = p.operands[0] ?? '';
  const confText = p.value('C');
  if (confText !== undefined) {
    const g = parseConf(confText);
    if (typeof g === 'string') usageFail(g);
    a.conf = g;
  }
  const hdr = p.value('H');
  if (hdr !== undefined) {
    if (a.action !== 'n') usageFail('-H sets the header length of a port made with -n (a port\'s length is fixed when it is made)');
    if (hdr !== '0' && hdr !== '10' && hdr !== '12') usageFail(`-H: a virtio-net header is 0, 10 or 12 bytes, not '${hdr}'`);
    a.vnetHdr = Number(hdr);
  }
  return a;
}

export async function main(argv: string[]): Promise<number> {
  return runTool(VALE_CTL, argv, toArgs, run);
}

async function run({ action, arg, conf, verbose, vnetHdr }: Args): Promise<number> {
  try {
    // Listing reads the registry only (switch/listing.ts); the other commands load the switch and
    // every port type (the interface type's switchAttach serves -a/-h/-d).
    const listing = await import('../switch/listing.js');
    const control = async (): Promise<typeof Vale> => {
      await import('../port-types.js');
      return import('../switch/index.js');
    };
    switch (action) {
      case 'list':
        for (const p of listing.listAll()) console.log(`${p.name} bridge_idx ${p.bridge} port_idx ${p.port}`);
        return 0;
      case 's': {
        const ports = arg === '' ? listing.listAll() : listing.switchPorts(arg);
        for (const p of ports) {
          const c = p.counters;
          console.log(`${p.name} bridge_idx ${p.bridge} port_idx ${p.port} tx_packets ${c.txPackets} tx_bytes ${c.txBytes} tx_drops ${c.txDrops} rx_packets ${c.rxPackets} rx_bytes ${c.rxBytes} rx_drops ${c.rxDrops}`);
        }
        return 0;
      }
      case 'l': {
        // a port name that is not a VALE one fails as the lookup would (exit 1), not as a bad option
        if (!arg.startsWith('vale')) throw new NetmapError('EINVAL', `invalid vale port name: '${arg}'`);
        const r = listing.locate(arg);
        console.log(`bridge_idx: ${r.bridge}`);
        console.log(`port_idx:   ${r.port}`);
        return 0;
      }
      case 'n': {
        const vale = await control();
        vale.createPersistentPort(arg, { ...(conf ?? {}), ...(vnetHdr !== null ? { vnetHdr } : {}) });
        if (verbose) {
          const g = conf ?? { txSlots: vale.VALE_DEFAULT_SLOTS, rxSlots: vale.VALE_DEFAULT_SLOTS, txRings: 1, rxRings: 1 };
          console.log(`tx_slots: ${g.txSlots}\nrx_slots: ${g.rxSlots}\ntx_rings: ${g.txRings}\nrx_ring:  ${g.rxRings}`);
          if (vnetHdr !== null) console.log(`vnet_hdr: ${vnetHdr}`);
        }
        return 0;
      }
      case 'r': (await control()).removePersistentPort(arg); return 0;
      case 'a':
      case 'h': {
        const p = (await control()).attach(arg, { host: action === 'h' });
        if (verbose) console.log(`port_index: ${p}`);
        return 0;
      }
      case 'd': (await control()).detach(arg); return 0;
    }
  } catch (e) {
    if (!(e instanceof NetmapError)) throw e;
    const what = action === 'list' || (action === 's' && arg === '') ? 'all' : arg;
    // netmap's vale-ctl line (strerror), then the code and our reason
    const reason = e.message.replace(/ \([A-Z]+\)$/, '');
    const text = STRERROR[e.code];
    console.error(`failed to ${ACTION_WORD[action]} ${what}: ${text ?? e.code} (${text !== undefined ? `${e.code}: ` : ''}${reason})`);
    return 1;
  }
  return 1;
}
