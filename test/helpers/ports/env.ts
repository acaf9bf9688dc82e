/**
 * Imported first by every test that uses these helpers: gives the test file its own shared-memory directory under
 * /dev/shm (before the library is used) and removes it when the process exits.
 */
import fs from 'node:fs';

export const dir = fs.mkdtempSync('/dev/shm/nmts-test-');
process.env.NETMAP_TS_DIR = dir;
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

/** Files in the shared-memory directory (registry, mem-N regions). */
export function shmFiles(): string[] {
  return fs.readdirSync(dir).sort();
}
