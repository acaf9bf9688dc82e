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

// VALE switches: control API (ports themselves are opened with openPort('valeX:NAME')).
export * as vale from './switch/index.js';

// Capture: pcap/pcapng files, pcap-filter expressions compiled to BPF, live capture on ports.
export { openLive, LiveCapture, type LiveOptions, type CaptureStats, type PacketHandler } from './capture/live.js';
export { openCaptureFile, CaptureFileReader, type ReaderOptions, type FileFormat, type FileMapper } from './capture/reader.js';
/** The mapper to pass as `openCaptureFile(path, { mapper: mapFileReadOnly })` to read large files through a mapping. */
export { mapFileReadOnly } from './native/index.js';
export { PcapWriter, PcapngWriter, type PcapWriterOptions, type PcapngWriterOptions } from './capture/writer.js';
export { compileFilter, makeFilter, programFromText, type FilterMode } from './capture/filter.js';
export { compileProgram } from './capture/jit.js';
export { interpretProgram } from './capture/interp.js';
export { validateProgram, formatProgram, type BpfInsn, type BpfProgram, type PacketFilter } from './capture/bpf.js';
export { replayFile, type ReplayOptions, type ReplayResult } from './capture/replay.js';
