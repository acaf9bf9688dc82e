/**
 * VALE attach of interfaces (vale-ctl -a / -h / -d). Attaching starts a background process (see
 * attach-daemon.ts) that holds the interface in netmap mode and forwards between it and a switch
 * port `valeX:IF` (with -h also between its host stack and `valeX:IF.h`, our name for netmap's
 * `valeX:IF^`). The daemon's pid is kept in `<NETMAP_TS_DIR>/attach-<netns>-<IF>.json`; detaching
 * stops it (SIGTERM, SIGKILL after 5 s) and, if it had died, cleans what it left.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fail } from '../errors.js';
import type { PortType, SwitchAttachRequest } from '../ports/port.js';
import { interfacePortType } from '../interfaces/port.js';
import { shmDirectory, ensureShmDirectory } from '../memory/space.js';
import { pause } from '../memory/lock.js';
import * as native from '../native/index.js';
import { interfaceExists, currentNetnsId, checkInterfaceName } from '../interfaces/ifinfo.js';
import { isHelperDevice, removeStaleSplit } from '../interfaces/split.js';

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

export interface AttachRecord {
  pid: number; switchName: string; ifName: string; host: boolean;
  /** The interface port's backend ('xdp native copy', 'packet', 'tap', ...: Port.backend). */
  backend?: string;
}

export function recordPath(ifName: string): string {
  return path.join(shmDirectory(), `attach-${currentNetnsId()}-${ifName}.json`);
}

export function readRecord(ifName: string): AttachRecord | null {
  try {
    const r = JSON.parse(fs.readFileSync(recordPath(ifName), 'utf8')) as AttachRecord;
    return typeof r.pid === 'number' ? r : null;
  } catch {
    return null;
  }
}

/** The host-stack switch port of an attached interface (netmap calls it valeX:IF^). */
export function hostPortName(ifName: string): string {
  return `${ifName}.h`;
}

/** Attaches interface `ifName` (and its host stack with `host`) to switch `switchName`. */
export function attachInterface(switchName: string, ifName: string, host: boolean): void {
  checkInterfaceName(ifName);
  if (!interfaceExists(ifName)) fail('ENXIO', `no such interface ${ifName}`);
  if (isHelperDevice(ifName)) fail('EINVAL', `${ifName} is a netmap-ts helper device`);
  if (host && hostPortName(ifName).length >= 16) fail('EINVAL', `interface name ${ifName} is too long for a host-stack switch port`);
  const old = readRecord(ifName);
  if (old !== null && native.processAlive(old.pid)) fail('EBUSY', `${ifName} is already attached to ${old.switchName}`);
  if (old !== null) fs.rmSync(recordPath(ifName), { force: true });
  const log = path.join(ensureShmDirectory(), `attach-${currentNetnsId()}-${ifName}.log`);
  fs.rmSync(log, { force: true });
  const out = fs.openSync(log, 'w', 0o600);
  const daemon = new URL('./attach-daemon.js', import.meta.url).pathname;
  let pid = 0;
  try {
    // child_process is loaded here, not at start: every netmap:IF open loads this module
    const { spawn } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
    const child = spawn(process.execPath, [daemon, switchName, ifName, host ? 'host' : 'nic'], {
      detached: true, stdio: ['ignore', out, out], env: { ...process.env, NETMAP_TS_DIR: shmDirectory() },
    });
    child.unref();
    pid = child.pid ?? 0;
  } finally {
    fs.closeSync(out);
  }
  if (pid <= 0) fail('EIO', `cannot start the forwarding process for ${ifName}`);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    let text = '';
    try { text = fs.readFileSync(log, 'utf8'); } catch { /* not yet */ }
    if (text.includes('ready')) break;
    const m = /error (E[A-Z]+): (.*)/.exec(text);
    if (m !== null || !native.processAlive(pid)) {
      fs.rmSync(log, { force: true });
      const code = (m?.[1] ?? 'EIO') as 'EIO';
      fail(code, m?.[2] ?? `the forwarding process for ${ifName} died: ${text.trim()}`);
    }
    if (Date.now() > deadline) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      fail('EIO', `the forwarding process for ${ifName} did not start in time`);
    }
    pause(20);
  }
}

/** Detaches interface `ifName` from switch `switchName`: stops its forwarding process. */
export function detachInterface(switchName: string, ifName: string): void {
  const rec = readRecord(ifName);
  if (rec === null || rec.switchName !== switchName) fail('ENXIO', `${ifName} is not attached to ${switchName}`);
  if (native.processAlive(rec.pid)) {
    try { process.kill(rec.pid, 'SIGTERM'); } catch { /* gone */ }
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (native.processAlive(rec.pid) && Date.now() < deadline) pause(20);
    if (native.processAlive(rec.pid)) {
      try { process.kill(rec.pid, 'SIGKILL'); } catch { /* gone */ }
      while (native.processAlive(rec.pid) && Date.now() < deadline + 2000) pause(20);
    }
  }
  fs.rmSync(recordPath(ifName), { force: true });
  fs.rmSync(recordPath(ifName).replace(/\.json$/, '.log'), { force: true });
  // a daemon that died (or was killed) leaves the interface split: clean it
  try { if (interfaceExists(ifName)) removeStaleSplit(ifName); } catch { /* held by someone else now */ }
}

/** What vale-ctl -a/-h/-d do with an interface name (the interface port type's switchAttach). */
export function switchAttachInterface(req: SwitchAttachRequest): void {
  if (req.op === 'attach') attachInterface(req.switchName, req.ifName, req.host);
  else detachInterface(req.switchName, req.ifName);
}

/**
 * The interface port type as this build registers it: interfaces/port.ts's record plus what bwrap
 * adds, attaching an interface to a VALE switch (vale-ctl -a/-h/-d).
 */
export const attachableInterfacePortType: PortType = { ...interfacePortType, switchAttach: switchAttachInterface };
