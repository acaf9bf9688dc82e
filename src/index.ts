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
import './port-types.js'; // every port type of the build, plugged into openPort

// Monitor ports are opened with openPort('PORT/r' | '/t' | '/rt' | '/z'); this names the
// monitor of a port in use (what `netmap dump -i` does).
export { monitorNameFor, monitorWithBuffer } from './monitor/monitor.js';

// VALE switches: control API (ports themselves are opened with openPort('valeX:NAME')).
export * as vale from './switch/index.js';

// Capture: pcap/pcapng files, pcap-filter expressions compiled to BPF, live capture on ports
// (also `netmap-ts/capture`).
export * from './capture/index.js';
