/**
 * Background forwarding for an interface attached to a VALE switch (started by vale-ctl -a/-h,
 * see attach.ts): `attach-daemon.js SWITCH IF nic|host`. Holds netmap:IF (and netmap:IF^) and the
 * switch ports valeSWITCH:IF (and valeSWITCH:IF.h, flagged as owned so users get EBUSY), and runs
 * a bridge between each pair until SIGTERM/SIGINT. Prints `ready` or `error CODE: message`.
 */
import fs from 'node:fs';
import { NetmapError } from '../errors.js';
import '../port-types.js';
import { openPort, type Port } from '../ports/index.js';
import { registry } from '../memory/registry.js';
import { pause } from '../memory/lock.js';
import * as L from '../memory/layout.js';
import { setReceiveHook, hookedFrames } from './receive-hook.js';
import { Bridge, waitPorts, passSlot } from '../interfaces/bridge.js';
import type { Ring } from '../rings/ring.js';
import { recordPath, hostPortName } from './attach.js';
import { interfaceExists, interfaceIndex, currentNetnsId } from '../interfaces/ifinfo.js';
import { isTapDevice, tapGone, tapDescriptor, NIC_TX_OPTIONS } from '../interfaces/port.js';
import { PacketTransmitter } from '../interfaces/packet.js';
import { TcpCoalescer } from './coalesce.js';
import type { ValeAdapter } from '../switch/forward.js';
import { enableDirect, injectWhole, type DirectSink } from './direct.js';

/**
 * Slots moved per ring pair per pass. Small on purpose: a send on a veth runs the receiver's
 * stack inline (several microseconds a frame), so a 1024-frame pass kept this process away from
 * the other direction (TCP's ACKs) and from the switch's RX ring for milliseconds; with 128,
 * iperf3 TCP through VALE went from 1.18-1.60 to 1.50-1.71 Gbit/s, with fewer retransmits.
 */
const DAEMON_BURST = 128;

/**
 * The switch ports' geometry: RX rings of 4096 slots. The switch drops what does not fit a
 * receiver's ring (netmap's rule), and this process empties its switch ports only between its
 * sends, each of which runs the receiving stack inline; with 1024 slots TCP through VALE lost
 * about 1% of its segments to such drops (and a third of its throughput to the retransmissions).
 */
const SWITCH_PORT_CONF = '@conf:rx-slots=4096';

/**
 * A TAP device is attached as a virtio-net header port (netmap's VALE ports of VMs): the TAP
 * gets IFF_VNET_HDR with a 12-byte header and offloads (TSO4/6, USO, partial checksums), and so
 * does its switch port, so the stack behind the TAP sends and receives 64 KiB super-frames.
 */
const TAP_VNET_HDR = 12;

/**
 * Wake-up moderation (a NIC's interrupt coalescing): after a short burst (fewer than
 * MODERATION_BURST frames) the daemon sleeps MODERATION_MS without asking to be woken, so that
 * a trickle (TCP's ACKs) is forwarded in batches rather than a wake-up a frame; after a long
 * burst, or once idle, it sleeps until woken. Each wake-up costs this VM tens of microseconds;
 * without moderation the ACK direction of iperf3 through VALE took 2.0-2.2 us of CPU per data
 * segment, with it 1.4-1.8 (as with the notifier's former 1 ms pause). A lone frame (ping) is
 * not delayed: the pause comes after it is forwarded.
 */
const MODERATION_MS = 0.5;
const MODERATION_BURST = 32;

/**
 * Longest sleep while idle. Frames wake the daemon (the switch port's futex, the notifier for
 * the interface), so this only bounds how late SIGTERM is noticed (handled between turns).
 */
const IDLE_WAIT_MS = 100;

const [switchName, ifName, mode] = process.argv.slice(2);
const ports: Port[] = [];
let stop = false;
process.on('SIGTERM', () => { stop = true; });
process.on('SIGINT', () => { stop = true; });

/**
 * Marks switch port `p` as owned by this daemon; `ifindex` (wire side only) lets other daemons
 * in this namespace transmit straight onto the interface, `tapFd` (a TAP's descriptor) lets any
 * daemon write into the TAP (direct.ts enableDirect).
 */
function own(p: Port, ifindex: number, tapFd = 0): void {
  const reg = registry();
  reg.locked(() => {
    reg.portSet(p.index, L.PE_VALE_DIRECT_TAP_PID, tapFd > 0 ? process.pid : 0);
    reg.portSet(p.index, L.PE_VALE_DIRECT_TAP_FD, tapFd);
    reg.portSet(p.index, L.PE_VALE_DIRECT_IF, ifindex);
    reg.portSet(p.index, L.PE_VALE_DIRECT_NETNS, currentNetnsId() >>> 0);
    reg.portSet(p.index, L.PE_FLAGS, reg.portGet(p.index, L.PE_FLAGS) | L.PORT_FLAG_ATTACHED);
  });
}

/**
 * A transmit ring of this process on the interface behind switch port `portName` (`SWITCH:IF`),
 * the same kind the interface's own NIC TX ring uses (qdisc bypass: the wire, not the host).
 */
function openDirectSink(ifindex: number, portName: string): DirectSink | null {
  const name = portName.slice(portName.indexOf(':') + 1);
  if (!interfaceExists(name) || interfaceIndex(name) !== ifindex) return null;
  return new PacketTransmitter(name, NIC_TX_OPTIONS);
}

/** An AF_XDP NIC RX ring whose frames the daemon puts into the switch itself (intake()). */
interface Intake { ring: Ring; merger: TcpCoalescer; via: Ring }
const intakes: Intake[] = [];
const intakeOffs = new Float64Array(DAEMON_BURST), intakeLens = new Uint16Array(DAEMON_BURST);

/**
 * AF_XDP: takes up to DAEMON_BURST frames from each NIC RX ring (the bridge's step synced them)
 * into the switch, where they lie in their netmap buffers: through the TCP coalescer, as the
 * receive hooks do with AF_PACKET's ring; a fragment chain (NS_MOREFRAG, a frame over 1792 bytes)
 * goes as one frame through the switch port's TX ring. Returns the frames taken.
 */
function intake(list: Intake[], nic: Port, vNic: Port): number {
  let taken = 0, chains = 0;
  for (const { ring, merger, via } of list) {
    let n = 0, i = ring.head;
    const tail = ring.tail;
    while (i !== tail && n < DAEMON_BURST) {
      if ((ring.slotFlags(i) & L.NS_MOREFRAG) !== 0) break;
      intakeOffs[n] = ring.slotBufOffset(i);
      intakeLens[n] = ring.slotLen(i);
      n++;
      i = ring.next(i);
    }
    if (n > 0) {
      merger.forward(intakeOffs, intakeLens, n);
      ring.advance(i);
      taken += n;
    }
    if (i !== tail && (ring.slotFlags(i) & L.NS_MOREFRAG) !== 0) chains += passChain(ring, via, nic);
  }
  if (chains > 0) vNic.txsync();
  return taken + chains;
}

/** Moves the NS_MOREFRAG chain at `ring`'s head to switch port TX ring `via` (buffer swaps, as the bridge does). */
function passChain(ring: Ring, via: Ring, nic: Port): number {
  let end = ring.head, count = 0, complete = false;
  while (end !== ring.tail) {
    count++;
    complete = (ring.slotFlags(end) & L.NS_MOREFRAG) === 0;
    end = ring.next(end);
    if (complete) break;
  }
  if (!complete || via.space() < count) return 0; // the rest of the chain is not in yet, or no room
  let k = via.head;
  for (let j = ring.head; j !== end; j = ring.next(j), k = via.next(k)) passSlot(ring, j, via, k, true, nic.mem);
  ring.advance(end);
  via.advance(k);
  return 1;
}

async function main(): Promise<number> {
  if (switchName === undefined || ifName === undefined) {
    console.log('error EINVAL: usage: attach-daemon SWITCH IF nic|host');
    return 2;
  }
  const bridges: Bridge[] = [];
  let hookedPort: Port | null = null;
  let tap = false;
  try {
    // a TAP whose descriptor another process holds (a QEMU guest's -netdev tap) is attached by
    // its network device, as any interface (AF_PACKET): the guest is then behind it as behind a veth
    let tapNic: Port | null = null;
    if (isTapDevice(ifName)) {
      if (mode === 'host') throw new NetmapError('EINVAL', `${ifName} is a TAP device: it has no host stack rings to attach (use -a)`);
      try {
        tapNic = openPort(`netmap:${ifName}@conf:vnet-hdr=${TAP_VNET_HDR}`);
      } catch (e) {
        if (!(e instanceof NetmapError) || e.code !== 'EBUSY') throw e;
      }
    }
    if (tapNic !== null) {
      tap = true;
      // a TAP: its port and its switch port carry virtio-net headers; the bridge swaps buffers
      // (NS_MOREFRAG chains of super-frames whole), the switch converts for ports without header
      const nic = tapNic;
      ports.push(nic);
      const vNic = openPort(`${switchName}:${ifName}@${nic.memId}${SWITCH_PORT_CONF},vnet-hdr=${TAP_VNET_HDR}`, { owner: true });
      ports.push(vNic);
      // other daemons may write into the TAP themselves (a copy of its descriptor); this one
      // writes into theirs, and onto attached interfaces of its namespace for ports without header
      own(vNic, 0, tapDescriptor(nic));
      enableDirect(vNic.adapter as ValeAdapter, openDirectSink, currentNetnsId());
      hookedPort = nic;
      bridges.push(new Bridge(nic, vNic, { burst: DAEMON_BURST }));
    } else {
      // The interface first, then its switch ports in the interface's memory (`@memId`), so each
      // bridge swaps buffers instead of copying them. AF_PACKET with receive hooks (below) unless
      // NETMAP_TS_IF_BACKEND names one: on veths with the end points' offloads on it carries TCP
      // as 64 KB super-frames, where AF_XDP (frames land in netmap buffers, swapped into the
      // switch port) carries wire-sized ones; quiet, iperf3 through the switch made 9.1-11.1
      // Gbit/s over AF_PACKET against 4.6-5.0 over AF_XDP (bench/vnet, README).
      // (a TAP held by another process: by its network device, which backend=packet asks for)
      const chosen = process.env.NETMAP_TS_IF_BACKEND !== undefined && !isTapDevice(ifName);
      const nic = openPort(chosen ? `netmap:${ifName}` : `netmap:${ifName}@conf:backend=packet`);
      const xdp = nic.backend?.startsWith('xdp') === true;
      ports.push(nic);
      const vNic = openPort(`${switchName}:${ifName}@${nic.memId}${SWITCH_PORT_CONF}`, { owner: true });
      ports.push(vNic);
      own(vNic, interfaceIndex(ifName));
      // what this daemon forwards to another attached interface goes straight onto its wire
      const vale = vNic.adapter as ValeAdapter;
      enableDirect(vale, openDirectSink, currentNetnsId());
      // and what the interface receives goes into the switch without passing through a slot of
      // the switch port: with AF_PACKET from the kernel's ring (receive hooks), with AF_XDP from
      // the netmap buffers the frames landed in (intake()); the bridge then only carries switch
      // -> interface
      for (const r of nic.rxRings) {
        if (r.host) continue;
        const via = vNic.txRings[r.id % vNic.txRings.length]!;
        // GSO super-frames for another attached interface go to it whole, and so do runs of TCP
        // segments, merged (coalesce.ts); the rest goes into the switch frame by frame
        const whole = (at: number, len: number, hdrAt: number): boolean => injectWhole(vale, via, at, len, hdrAt);
        const merger = new TcpCoalescer((offs, lens, n, from) => vale.inject(via, offs, lens, n, from), whole);
        if (xdp) intakes.push({ ring: r, merger, via });
        else setReceiveHook(nic, r.id, (offs, lens, n) => merger.forward(offs, lens, n), DAEMON_BURST, whole);
      }
      hookedPort = nic;
      bridges.push(new Bridge(nic, vNic, { burst: DAEMON_BURST, onlyBtoA: true }));
      if (mode === 'host') {
        const host = openPort(`netmap:${ifName}^`);
        ports.push(host);
        const vHost = openPort(`${switchName}:${hostPortName(ifName)}@${nic.memId}${SWITCH_PORT_CONF}`, { owner: true });
        ports.push(vHost);
        own(vHost, 0);
        enableDirect(vHost.adapter as ValeAdapter, openDirectSink, currentNetnsId());
        bridges.push(new Bridge(host, vHost, { burst: DAEMON_BURST }));
      }
    }
    const backend = hookedPort?.backend ?? undefined;
    fs.writeFileSync(recordPath(ifName), JSON.stringify({ pid: process.pid, switchName, ifName, host: mode === 'host', backend }), { mode: 0o600 });
    console.log('ready');
  } catch (e) {
    const code = e instanceof NetmapError ? e.code : 'EIO';
    console.log(`error ${code}: ${(e as Error).message}`);
    for (const p of ports.reverse()) p.close();
    return 1;
  }
  let idle = 0, streak = 0;
  let nextCheck = Date.now() + 1000;
  while (!stop) {
    if (Date.now() >= nextCheck) {
      nextCheck = Date.now() + 1000;
      // the interface went away: nothing left to forward (a TAP may have been moved into another
      // namespace, a container's: its descriptor tells when the device is deleted)
      if (tap ? tapGone(hookedPort!) : !interfaceExists(ifName)) break;
    }
    const turnEnd = Date.now() + 50;
    do {
      let moved = -hookedFrames(hookedPort!);
      for (const b of bridges) moved += b.step();
      if (intakes.length > 0) moved += intake(intakes, hookedPort!, ports[1]!);
      moved += hookedFrames(hookedPort!);
      if (moved === 0) {
        idle++;
        if (idle === 1 && streak < MODERATION_BURST) pause(MODERATION_MS);
        else waitPorts(ports, idle > 3 ? IDLE_WAIT_MS : 1);
        streak = 0;
      } else {
        idle = 0;
        streak += moved;
      }
    } while (Date.now() < turnEnd);
    await new Promise((r) => setImmediate(r));
  }
  for (const p of ports.reverse()) p.close();
  try { fs.rmSync(recordPath(ifName), { force: true }); } catch { /* gone */ }
  return 0;
}

process.exitCode = await main();
