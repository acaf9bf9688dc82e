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
const names = all.map((f) => f.replace(/\.js$/, ''));
if (wanted.includes('-h') || wanted.includes('--help')) {
  console.log(`usage: npm run bench [-- NAME...]   every benchmark, or those named, each in its own process (JSON lines)
       node dist/bench/NAME.js [ARGS]   one, with its own arguments (see the top of bench/NAME.ts)
benchmarks: ${names.join(' ')}`);
  process.exit(0);
}
// every name must be one: a typo would otherwise drop a benchmark from the run unnoticed
const unknown = wanted.filter((w) => !names.includes(w));
if (unknown.length > 0) {
  console.error(`no benchmark named ${unknown.join(', ')}; available: ${names.join(' ')}`);
  process.exit(2);
}
const chosen = wanted.length === 0 ? all : all.filter((f) => wanted.includes(f.replace(/\.js$/, '')));
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
