/**
 * The port types of this build, plugged into openPort() by one call. A new port type is its own
 * file exporting a PortType record (see ports/port.ts) plus one entry here (or, when it needs no
 * interface layer, in port-types-lazy.ts's SHARED_MEMORY_PORT_TYPES).
 *
 * Import this module (or the package's top, src/index.ts, which does) in every program or worker
 * thread that opens ports by name. Programs whose start-up time counts use port-types-lazy.ts.
 */
import { registerPortTypes } from './ports/port.js';
import { SHARED_MEMORY_PORT_TYPES } from './port-types-lazy.js';
import { attachableInterfacePortType } from './bwrap/attach.js';

registerPortTypes([
  ...SHARED_MEMORY_PORT_TYPES,
  attachableInterfacePortType,
]);
