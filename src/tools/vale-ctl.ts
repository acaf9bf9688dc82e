/**
 * netmap vale-ctl: manage VALE switches (netmap's vale-ctl options). Logic is in src/switch.
 */
import { NetmapError } from '../errors.js';
import * as vale from '../switch/index.js';

const USAGE = `usage: netmap vale-ctl [-n port | -r port | -a valeSW:port | -h valeSW:port | -d valeSW:port | -l valeSW:port | -s [valeSW]] [-C spec] [-v]
  (no option)       list every port of every switch: <name> bridge_idx <b> port_idx <p>
  -n port           create persistent VALE port 'port' (its own memory; -C sets its geometry)
  -r port           remove persistent port 'port' (EBUSY while attached or open)
  -a valeSW:port    attach persistent port (or interface) 'port' to switch valeSW
  -h valeSW:port    attach an interface and its host stack (interfaces only)
  -d valeSW:port    detach 'port' from switch valeSW
  -l valeSW:port    print bridge and port index of valeSW:port
  -s [valeSW]       print per-port counters (tx/rx packets, bytes, drops) of one or every switch
  -C tx_slots[,rx_slots[,tx_rings[,rx_rings]]]
                    geometry for -n (1 number: both slot counts; 3 numbers: 3rd is both ring counts)
  -v                verbose
  --help            this text`;

const STRERROR: Record<string, string> = {
  EEXIST: 'File exists', EBUSY: 'Device or resource busy', ENXIO: 'No such device or address',
  ENOENT: 'No such file or directory', ENOMEM: 'Cannot allocate memory', EINVAL: 'Invalid argument',
  EOPNOTSUPP: 'Operation not supported', EACCES: 'Permission denied', EPERM: 'Operation not permitted',
};

type Action = 'n' | 'r' | 'a' | 'h' | 'd' | 'l' | 's' | 'list';
const ACTION_WORD: Record<Action, string> = { n: 'create', r: 'remove', a: 'attach', h: 'attach', d: 'detach', l: 'list', s: 'list', list: 'list' };

function parseConf(text: string): vale.ValeGeometry | string {
  if (!/^\d+(,\d+){0,3}$/.test(text)) return `invalid -C '${text}' (expected tx_slots[,rx_slots[,tx_rings[,rx_rings]]])`;
  const v = text.split(',').map(Number);
  const g: vale.ValeGeometry = { txSlots: v[0]!, rxSlots: v[0]!, txRings: 1, rxRings: 1, extraBufs: 0 };
  if (v.length >= 2) g.rxSlots = v[1]!;
  if (v.length >= 3) { g.txRings = v[2]!; g.rxRings = v[2]!; }
  if (v.length >= 4) g.rxRings = v[3]!;
  return g;
}

export async function main(argv: string[]): Promise<number> {
  let action: Action = 'list';
  let arg = '';
  let conf: vale.ValeGeometry | null = null;
  let verbose = false;
  const bad = (msg: string): number => { console.error(`vale-ctl: ${msg}\n${USAGE}`); return 1; };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help') { console.log(USAGE); return 0; }
    if (a === '-v') { verbose = true; continue; }
    const m = /^-([nrahdlsCmpPg])(.*)$/.exec(a);
    if (m === null) return bad(a.startsWith('-') ? `bad option ${a}` : `unexpected argument '${a}'`);
    const opt = m[1]!;
    let value = m[2]!;
    if (value === '') {
      const nextArg = argv[i + 1];
      if (opt === 's' && (nextArg === undefined || nextArg.startsWith('-'))) { action = 's'; arg = ''; continue; }
      if (nextArg === undefined) return bad(`option -${opt} needs an argument`);
      value = nextArg;
      i++;
    }
    if (opt === 'C') {
      const g = parseConf(value);
      if (typeof g === 'string') return bad(g);
      conf = g;
    } else if (opt === 'm' || opt === 'p' || opt === 'P' || opt === 'g') {
      return bad(`option -${opt} is not supported by netmap-ts vale-ctl`);
    } else {
      action = opt as Action; // the last action option wins, as in netmap's vale-ctl
      arg = value;
    }
  }
  try {
    // Every port type and the interfaces layer's attach hook, for the actions that create,
    // attach or detach; listing reads the switches only (and starts faster without them).
    // every port type (the interface type's switchAttach serves -a/-h/-d); listing needs none (start-up time)
    if (action !== 'list' && action !== 's' && action !== 'l') await import('../port-types.js');
    switch (action) {
      case 'list':
        for (const p of vale.listAll()) console.log(`${p.name} bridge_idx ${p.bridge} port_idx ${p.port}`);
        return 0;
      case 's': {
        const ports = arg === '' ? vale.listAll() : vale.switchPorts(arg);
        for (const p of ports) {
          const c = p.counters;
          console.log(`${p.name} bridge_idx ${p.bridge} port_idx ${p.port} tx_packets ${c.txPackets} tx_bytes ${c.txBytes} tx_drops ${c.txDrops} rx_packets ${c.rxPackets} rx_bytes ${c.rxBytes} rx_drops ${c.rxDrops}`);
        }
        return 0;
      }
      case 'l': {
        if (!arg.startsWith('vale')) return bad(`invalid vale port name: '${arg}'`);
        const r = vale.locate(arg);
        console.log(`bridge_idx: ${r.bridge}`);
        console.log(`port_idx:   ${r.port}`);
        return 0;
      }
      case 'n': {
        vale.createPersistentPort(arg, conf ?? {});
        if (verbose) {
          const g = conf ?? { txSlots: vale.VALE_DEFAULT_SLOTS, rxSlots: vale.VALE_DEFAULT_SLOTS, txRings: 1, rxRings: 1 };
          console.log(`tx_slots: ${g.txSlots}\nrx_slots: ${g.rxSlots}\ntx_rings: ${g.txRings}\nrx_ring:  ${g.rxRings}`);
        }
        return 0;
      }
      case 'r': vale.removePersistentPort(arg); return 0;
      case 'a':
      case 'h': {
        const p = vale.attach(arg, { host: action === 'h' });
        if (verbose) console.log(`port_index: ${p}`);
        return 0;
      }
      case 'd': vale.detach(arg); return 0;
    }
  } catch (e) {
    if (!(e instanceof NetmapError)) throw e;
    const what = action === 'list' || (action === 's' && arg === '') ? 'all' : arg;
    console.error(`failed to ${ACTION_WORD[action]} ${what}: ${STRERROR[e.code] ?? e.code} (${e.message.replace(/ \([A-Z]+\)$/, '')})`);
    return 1;
  }
  return 1;
}
