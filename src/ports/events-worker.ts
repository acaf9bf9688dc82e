/**
 * The waiter thread of the event-loop API (see events.ts). Stateless: each message is one wait
 * request — absolute addresses of futex words and the values they had when armed — and the
 * thread answers once any word changed, a bounded time passed, or the control word was bumped.
 * It blocks in futex_waitv, so an idle wait costs no CPU; the main thread never blocks.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as native from '../native/index.js';

// made off a pinned thread's CPU; it runs only while that thread waits: join it there (placement.ts)
const joinCpu = (workerData as { joinCpu?: number } | null)?.joinCpu ?? -1;
if (joinCpu >= 0) { try { native.setAffinity(0, joinCpu); } catch { /* stay where we are */ } }

interface WaitRequest { addresses: number[]; values: number[]; capMs: number }

const port = parentPort;
if (port !== null) {
  port.on('message', (m: WaitRequest) => {
    let woken = true;
    try {
      woken = native.futexWaitAny(m.addresses, m.values, m.addresses.length, m.capMs);
    } catch {
      // EFAULT (a region went away under us) and the like: report a wake-up, the main thread re-polls.
    }
    port.postMessage(woken);
  });
}
