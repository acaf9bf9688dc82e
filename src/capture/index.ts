/**
 * Capture (`netmap-ts/capture`, also re-exported by the package's top): pcap/pcapng files,
 * pcap-filter expressions compiled to BPF and to JavaScript, live capture on ports, watching the
 * ports in use (the npm pcap package's session API is `netmap-ts/pcap`), replay.
 */
// A package entry point (openLive opens ports by name): the port types are plugged in here as
// the package's top does.
import '../port-types.js';
export { openLive, LiveCapture, type LiveOptions, type CaptureStats, type PacketHandler } from './live.js';
export { openCaptureFile, CaptureFileReader, type ReaderOptions, type FileFormat, type FileMapper } from './reader.js';
/** The mapper to pass as `openCaptureFile(path, { mapper: mapFileReadOnly })` to read large files through a mapping. */
export { mapFileReadOnly } from '../native/index.js';
export { PcapWriter, PcapngWriter, type PcapWriterOptions, type PcapngWriterOptions } from './writer.js';
export { compileFilter, makeFilter, programFromText, type FilterMode } from './filter.js';
export { compileProgram } from './jit.js';
export { interpretProgram } from './interp.js';
export { validateProgram, formatProgram, parseDddProgram, type BpfInsn, type BpfProgram, type PacketFilter } from './bpf.js';
export { replayFile, type ReplayOptions, type ReplayResult } from './replay.js';
export { formatPacket, type PrintOptions } from './print.js';
export { watchablePorts, watchName, CapturePump, type WatchablePort, type Direction, type PumpOptions } from './watch.js';
