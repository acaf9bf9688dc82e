/**
 * AF_PACKET sockets with memory-mapped rings: the receiver (packet-receiver.ts), the transmitter
 * (packet-transmitter.ts) and their common socket set-up and kernel ABI (packet-socket.ts).
 */
export { PacketReceiver, type ReceiverOptions, type ReceiverStats } from './packet-receiver.js';
export { PacketTransmitter, type TransmitterOptions } from './packet-transmitter.js';
export { FANOUT_HASH, FANOUT_LB, FANOUT_CPU, FANOUT_QM, VNET_HDR_LEN, RX_CSUM_NOT_READY, RX_VLAN_VALID, pow2AtLeast, mapScratch } from './packet-socket.js';
