/**
 * Port types on demand, for programs whose start-up time counts (the tools, pkt-gen's workers).
 * Importing this module registers the port types made of shared memory alone, pipes, VALE
 * ports and monitors (small modules, which those programs load anyway). The interface type pulls in the
 * interfaces layer and src/bwrap (about 30 ms of start-up): loadPortTypesFor() loads it only
 * when a name needs it. src/port-types.ts registers every type at once, for the library's users.
 */
import { registerPortTypes, type PortType } from './ports/port.js';
import { parsePortSpec } from './ports/name.js';
import { pipePortType, parentPortType } from './pipes/pipe.js';
import { valePortType } from './switch/control.js';
import { monitorPortType } from './monitor/monitor.js';
import { interfaceExists } from './interfaces/ifinfo.js';

/** The port types that need no interface layer, registered on import (monitors watch any port). */
export const SHARED_MEMORY_PORT_TYPES: readonly PortType[] = [pipePortType, parentPortType, valePortType, monitorPortType];
registerPortTypes(SHARED_MEMORY_PORT_TYPES);

/**
 * Whether opening `name` needs the interface port type: `netmap:IF` names, and pipes whose parent
 * is an interface (`netmap:eth0{1`, lb's pipes). A name that does not parse does not (openPort
 * reports it).
 */
export function needsInterfaceType(name: string): boolean {
  let spec;
  try {
    spec = parsePortSpec(name);
  } catch {
    return false;
  }
  if (spec.subsystem === 'vale') return false;
  return spec.pipe === null || interfaceExists(spec.parentName);
}

/**
 * Makes sure the port types that `names` need are registered (every type when `names` is
 * absent). Cheap after the first call.
 */
export async function loadPortTypesFor(names?: readonly string[]): Promise<void> {
  if (names === undefined || names.some(needsInterfaceType)) await import('./port-types.js');
}
