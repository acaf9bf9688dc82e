/**
 * VALE names, listing and counters: what `vale-ctl` (no option, -l, -s) needs, from the registry
 * alone. control.ts re-exports all of it; this module imports neither the forwarder nor the port
 * types, so the listing commands start without loading them.
 */
import { fail } from '../errors.js';
import { registry, type Registry } from '../memory/registry.js';
import * as L from '../memory/layout.js';

// ---- names ------------------------------------------------------------------------------------

export const SWITCH_RE = /^vale[A-Za-z0-9_]*$/;
const PORT_RE = /^[A-Za-z0-9_.]+$/;

/** Splits 'valeX:PORT'; EINVAL on a malformed name (nothing here ever becomes a file name). */
export function splitValeName(name: string): { switchName: string; portName: string } {
  if (typeof name !== 'string') fail('EINVAL', 'the port name must be a string');
  const colon = name.indexOf(':');
  if (!name.startsWith('vale') || colon < 0) fail('EINVAL', `invalid vale port name: '${name}' (expected valeSWITCH:PORT)`);
  const switchName = name.slice(0, colon), portName = name.slice(colon + 1);
  if (!SWITCH_RE.test(switchName) || switchName.length >= 16) fail('EINVAL', `invalid switch name '${switchName}' in '${name}' ([A-Za-z0-9_], at most 15 characters with 'vale')`);
  checkPortName(portName, name);
  return { switchName, portName };
}

export function checkPortName(portName: string, context: string): void {
  if (typeof portName !== 'string' || !PORT_RE.test(portName) || portName === '.' || portName === '..' || portName.length >= 16) {
    fail('EINVAL', `invalid port name '${portName}' in '${context}' ([A-Za-z0-9_.], 1 to 15 characters)`);
  }
}

// ---- where a port is ------------------------------------------------------------------------

/** Switch and port number of `valeX:NAME` (vale-ctl -l); ENOENT if the switch is unknown. */
export function locate(name: string): { bridge: number; port: number } {
  const { switchName, portName } = splitValeName(name);
  const reg = registry();
  return reg.locked(() => {
    const switchIndex = reg.findSwitch(switchName);
    if (switchIndex < 0) fail('ENOENT', `no switch ${switchName}`);
    let index = reg.findPort(name);
    if (index < 0) index = reg.findPort(portName);
    if (index < 0 || reg.portGet(index, L.PE_SWITCH) !== switchIndex + 1) return { bridge: switchIndex, port: 255 };
    return { bridge: switchIndex, port: reg.portGet(index, L.PE_SWITCH_PORT) };
  });
}

// ---- listing and counters ---------------------------------------------------------------------

export interface PortCounters {
  txPackets: number; txBytes: number; txDrops: number;
  rxPackets: number; rxBytes: number; rxDrops: number;
}

export interface SwitchPortInfo {
  /** 'vale0:a' for an ephemeral port, 'vale0:NAME' for a persistent one or an interface. */
  name: string;
  /** Registry name ('vale0:a', 'NAME'). */
  portName: string;
  bridge: number;
  port: number;
  persistent: boolean;
  kind: number;
  users: number;
  counters: PortCounters;
}

function countersOf(reg: Registry, index: number): PortCounters {
  reg.region(reg.portGet(index, L.PE_MEM_ID)); // mapped in this thread
  const f64 = reg.sp.f64;
  const c = { txPackets: 0, txBytes: 0, txDrops: 0, rxPackets: 0, rxBytes: 0, rxDrops: 0 };
  const numTx = reg.portGet(index, L.PE_NUM_TX) + reg.portGet(index, L.PE_NUM_HOST_TX);
  const total = reg.totalRings(index);
  for (let k = 0; k < total; k++) {
    const k8 = (reg.ringOffset(index, k) + L.KR_PKTS) >>> 3;
    if (k < numTx) { c.txPackets += f64[k8]!; c.txBytes += f64[k8 + 1]!; c.txDrops += f64[k8 + 2]!; } else { c.rxPackets += f64[k8]!; c.rxBytes += f64[k8 + 1]!; c.rxDrops += f64[k8 + 2]!; }
  }
  return c;
}

function portsOfSwitch(reg: Registry, switchIndex: number): SwitchPortInfo[] {
  const out: SwitchPortInfo[] = [];
  const switchName = reg.switchName(switchIndex);
  for (let p = 0; p < L.MAX_SWITCH_PORTS; p++) {
    const plus = reg.sp.u32[reg.switchWord(switchIndex, L.SW_PORTS + 4 * p)]!;
    if (plus === 0 || !reg.portLive(plus - 1)) continue;
    const index = plus - 1;
    const portName = reg.portName(index);
    out.push({
      name: portName.startsWith(`${switchName}:`) ? portName : `${switchName}:${portName}`,
      portName, bridge: switchIndex, port: p,
      persistent: (reg.portGet(index, L.PE_FLAGS) & L.PORT_FLAG_PERSISTENT) !== 0,
      kind: reg.portGet(index, L.PE_KIND),
      users: reg.portGet(index, L.PE_USERS),
      counters: countersOf(reg, index),
    });
  }
  return out;
}

/** The ports of switch `name` ('vale0'), in port-number order; ENOENT if no such switch. */
export function switchPorts(name: string): SwitchPortInfo[] {
  const reg = registry();
  return reg.locked(() => {
    const switchIndex = reg.findSwitch(name);
    if (switchIndex < 0) fail('ENOENT', `no switch ${name}`);
    return portsOfSwitch(reg, switchIndex);
  });
}

/** Every port of every switch (vale-ctl without arguments), switches in table order. */
export function listAll(): SwitchPortInfo[] {
  const reg = registry();
  reg.collectGarbage();
  return reg.locked(() => reg.liveSwitches().flatMap((switchIndex) => portsOfSwitch(reg, switchIndex)));
}

/** Names of the live switches. */
export function switches(): string[] {
  const reg = registry();
  return reg.locked(() => reg.liveSwitches().map((switchIndex) => reg.switchName(switchIndex)));
}

/** Counters of a port by name ('vale0:a' or a persistent port name). */
export function portCounters(name: string): PortCounters {
  const reg = registry();
  return reg.locked(() => {
    let index = reg.findPort(name);
    if (index < 0 && name.includes(':')) index = reg.findPort(name.slice(name.indexOf(':') + 1));
    if (index < 0) fail('ENXIO', `no such port ${name}`);
    return countersOf(reg, index);
  });
}

/** Persistent VALE ports (attached or not). */
export function persistentPorts(): Array<{ name: string; attachedTo: string | null }> {
  const reg = registry();
  return reg.locked(() => reg.livePorts()
    .filter((i) => reg.portGet(i, L.PE_KIND) === L.PORT_KIND_VALE && (reg.portGet(i, L.PE_FLAGS) & L.PORT_FLAG_PERSISTENT) !== 0)
    .map((i) => ({ name: reg.portName(i), attachedTo: reg.portGet(i, L.PE_SWITCH) === 0 ? null : reg.switchName(reg.portGet(i, L.PE_SWITCH) - 1) })));
}
