/**
 * netmap-ts: netmap's fast packet I/O model in TypeScript. The public API.
 */
export { NetmapError, ERRNO, type ErrnoName } from './errors.js';
export { openPort, Port, POLLIN, POLLOUT, POLLERR, type OpenOptions, type PortAdapter } from './ports/port.js';
export { waitPort, portEvents, type WaitOptions } from './ports/events.js';
export { parsePortSpec, formatPortSpec, type PortSpec, type PortConf, type RegMode } from './ports/name.js';
export { Ring } from './rings/ring.js';
export { space, shmDirectory, AddressSpace } from './memory/space.js';
export * as layout from './memory/layout.js';
import './ports/index.js';
