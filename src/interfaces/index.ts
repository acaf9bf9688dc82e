/** The interfaces layer: AF_PACKET rings, TAP devices, the host-stack split, interface look-ups. */
export * from './ifinfo.js';
export * from './packet.js';
export * from './tap.js';
export * from './split.js';
export { completeChecksum } from './csum.js';
export * from './port.js';
export * from './bridge.js';
export { GsoSplitter, VNET_HDR_LEN } from './gso.js';
