/**
 * Whether a poller may spin: the machine has a CPU to spare when the kernel's count of runnable
 * threads (the fourth field of /proc/loadavg, "running/total", the caller included) is at most
 * the number of CPUs. Linux's own busy polling stops the same way when another task wants the CPU
 * (busy_poll's need_resched(), KVM's halt polling's single_task_running()).
 *
 * Why: a spin before sleeping saves a sleep and a wake-up per batch when the peer runs on another
 * core (two processes on a pipe, 2 vCPUs, batch 512: ~15 Mpps sleeping at once, ~200 spinning),
 * but with more busy threads than cores the spinner takes the CPU its peers need (pkt-gen tx, rx
 * and `netmap dump` on 2 vCPUs: the receiver's CPU a frame doubled; a loaded machine: a pipe
 * fell from ~50 to ~13 Mpps). The count is sampled at most every SAMPLE_MS, by whichever poller
 * asks; a reading costs one pread of a small file (a few µs) and allocates nothing.
 */
import * as native from '../native/index.js';
import { cpuCount } from './placement.js';

/** How long a reading stays valid, ms. */
const SAMPLE_MS = 4;
const CPUS = cpuCount();
const buf = new Uint8Array(128);
let fd = -2; // -2 not opened yet, -1 not readable (no /proc: never spin)
let validUntilMs = -Infinity;
let spare = false;

/** Runnable threads now, from /proc/loadavg; -1 when it cannot be read. */
function runnable(): number {
  if (fd === -2) {
    try { fd = native.openFile('/proc/loadavg', native.O_RDONLY); } catch { fd = -1; }
  }
  if (fd < 0) return -1;
  const n = native.preadInto(fd, buf, buf.length, 0);
  // "0.20 0.18 0.12 3/80 11206\n": the digits after the third space, up to '/'
  let i = 0;
  for (let spaces = 0; i < n && spaces < 3; i++) if (buf[i] === 0x20) spaces++;
  let count = 0, digits = 0;
  for (; i < n && buf[i]! >= 0x30 && buf[i]! <= 0x39; i++, digits++) count = count * 10 + buf[i]! - 0x30;
  return digits > 0 && i < n && buf[i] === 0x2f ? count : -1;
}

/** True when no more threads are runnable than there are CPUs; `nowMs` is CLOCK_MONOTONIC in ms. */
export function spareCpu(nowMs: number): boolean {
  if (nowMs < validUntilMs) return spare;
  validUntilMs = nowMs + SAMPLE_MS;
  const r = runnable();
  spare = r > 0 && r <= CPUS;
  return spare;
}
