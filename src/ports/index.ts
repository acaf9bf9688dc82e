/**
 * Ports: open any netmap name. Importing this module plugs in every port type of the build
 * (pipes, VALE, interfaces), so openPort() understands all names.
 */
export * from './port.js';
export { parsePortSpec, formatPortSpec, type PortSpec, type PortConf, type RegMode } from './name.js';
import '../pipes/pipe.js';
import '../switch/index.js';
import '../interfaces/index.js';
export { waitPort, portEvents, pendingWaits, type WaitOptions } from './events.js';
