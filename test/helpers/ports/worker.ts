/** Worker-thread entry of the ports, rings, pipes and memory tests: workerData = role arguments, reports as messages. */
import { parentPort, workerData } from 'node:worker_threads';
import { runRole } from './roles.js';

// Loaded outside a worker (the test runner loads every file under test/): do nothing.
if (parentPort !== null && Array.isArray(workerData)) {
  runRole(workerData as string[], (o) => parentPort!.postMessage(o)).catch((e: unknown) => {
    parentPort!.postMessage({ error: String((e as Error).stack ?? e) });
  });
}
