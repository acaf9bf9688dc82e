/**
 * Ports: open any netmap name. The port types themselves (pipes, VALE, interfaces) sit above this
 * layer and are plugged in by src/port-types.ts.
 */
export * from './port.js';
export { parsePortSpec, formatPortSpec, type PortSpec, type PortConf, type RegMode } from './name.js';
export { waitPort, portEvents, pendingWaits, type WaitOptions } from './events.js';
// Transitional (issue 13 §1): entry points under src/firewall, src/generator and src/capture still
// count on this module to plug in every port type. Once they import '../port-types.js' themselves,
// this line goes and the ports layer no longer points up.
import '../port-types.js';
