/**
 * The port types of this build, plugged into openPort() by one call. A new port type is its own
 * file exporting a PortType record (see ports/port.ts) plus one entry here.
 *
 * Import this module (or the package's top, src/index.ts, which does) in every program or worker
 * thread that opens ports by name.
 */
import { registerPortTypes } from './ports/port.js';
import { pipePortType, parentPortType } from './pipes/pipe.js';
import { valePortType } from './switch/control.js';
import { attachableInterfacePortType } from './bwrap/attach.js';
import { monitorPortType } from './monitor/monitor.js';

registerPortTypes([
  pipePortType,
  parentPortType,
  valePortType,
  attachableInterfacePortType,
  monitorPortType,
]);
