/** The interfaces layer: AF_XDP sockets and the XDP program, AF_PACKET rings, TAP devices, the host-stack split, interface look-ups. */
export * from './ifinfo.js';
export * from './packet.js';
export * from './tap.js';
export * from './split.js';
export { completeChecksum, completePartialChecksum } from './csum.js';
export { XskSocket, type XskOptions, type XskStats } from './xdp-socket.js';
export { attachXdp, detachXdp, setQueueSocket, redirectProgram, type XdpAttachment } from './xdp-program.js';
export * from './port.js';
export * from './bridge.js';
export { GsoSplitter, VNET_HDR_LEN } from './gso.js';
