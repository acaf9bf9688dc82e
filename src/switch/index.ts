/**
 * VALE switches: the control API (see README.md); the port type itself (valePortType) is plugged
 * into openPort by src/port-types.ts.
 */
export {
  VALE_MAX_RINGS, VALE_DEFAULT_RINGS, VALE_MAX_SLOTS, VALE_MIN_SLOTS, VALE_DEFAULT_SLOTS, VALE_MAX_EXTRA_BUFS,
  VALE_MAX_PORTS, VALE_MAX_SWITCHES, VALE_PIPE_ROOM,
  createPersistentPort, removePersistentPort, attach, detach, locate, switchPorts, listAll, switches,
  portCounters, persistentPorts, setLookup, getLookup, loadLookup, prepareLookup, splitValeName,
  type ValeGeometry, type PortCounters, type SwitchPortInfo, type InterfaceAttachRequest,
} from './control.js';
export { BROADCAST, DROP, macHash, LookupBatch, type LookupFn, type BatchLookupFn, type LookupContext, type LookupModule } from './lookup.js';
export { BATCH, SMALL_COPY } from './forward.js';
export { LEASE_RECORDS } from './lease.js';
