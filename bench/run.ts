/**
 * `npm run bench`: runs every benchmark of bench/ in turn, each in its own process, and passes
 * their JSON lines through. `npm run bench -- vale pipes` runs only those named.
 * Benchmarks are not tests: they print figures, they do not judge them.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const all = fs.readdirSync(here).filter((f) => f.endsWith('.js') && f !== 'run.js').sort();
const chosen = wanted.length === 0 ? all : all.filter((f) => wanted.includes(f.replace(/\.js$/, '')));
if (chosen.length === 0) {
  console.error(`no benchmark matches ${wanted.join(' ')}; available: ${all.map((f) => f.replace(/\.js$/, '')).join(' ')}`);
  process.exit(2);
}
let failed = 0;
for (const file of chosen) {
  console.error(`# bench ${file.replace(/\.js$/, '')}`);
  const r = spawnSync(process.execPath, [path.join(here, file)], { stdio: 'inherit', timeout: 15 * 60 * 1000 });
  if (r.status !== 0) {
    failed++;
    console.log(JSON.stringify({ bench: file.replace(/\.js$/, ''), error: r.error?.message ?? `exit status ${r.status}` }));
  }
}
process.exit(failed === 0 ? 0 : 1);
