/**
 * bwrap: interfaces attached to VALE switches (netmap's bwrap adapter) — attach/detach and the
 * forwarding daemon, receive hooks that take frames from a NIC ring where they lie, direct
 * delivery from a switch onto an attached interface, TCP segment coalescing. See README.md.
 */
export { hostPortName, readRecord as attachRecord, attachInterface, detachInterface, switchAttachInterface, attachableInterfacePortType } from './attach.js';
export { setReceiveHook, hookedFrames, HOOK_BATCH, type ReceiveHook, type WholeFrameHook } from './receive-hook.js';
export { enableDirect, injectWhole, type DirectSink, type DirectSinkOpener } from './direct.js';
export { TcpCoalescer } from './coalesce.js';
