/**
 * The generator as a library (`netmap-ts/generator`): pkt-gen's runs from a GenConfig, and the
 * demo. `netmap pkt-gen` (src/tools/pkt-gen.ts) only turns argv into a GenConfig.
 */
export { runPktGen, validateConfig, type Output, type RunResult } from './run.js';
export { runDemo, type DemoOptions } from './demo.js';
export { DEFAULTS, FUNCTIONS, type GenConfig, type GenFunction } from './config.js';
export { parseRange, parseMac, formatRange, formatMac, type AddrRange } from './addr.js';
