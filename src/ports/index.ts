/**
 * Ports: open any netmap name. The port types themselves (pipes, VALE, interfaces) sit above this
 * layer and are plugged in by src/port-types.ts: a program (or worker thread) that opens ports
 * by name imports that module, or the package's top (src/index.ts), which does.
 */
export * from './port.js';
export { parsePortSpec, formatPortSpec, type PortSpec, type PortConf, type RegMode } from './name.js';
export { waitPort, portEvents, pendingWaits, type WaitOptions } from './events.js';
