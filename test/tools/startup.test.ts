/**
 * Start-up cost of the tools: which modules a command loads. `--help` loads no library, and a run
 * on pipes or VALE ports does not load the interfaces layer (about 30 ms); a `netmap:IF` name
 * still gets the interface port type.
 */
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

const dir = fs.mkdtempSync('/dev/shm/nmts-startup-');
process.env.NETMAP_TS_DIR = dir;
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const CLI = fileURLToPath(new URL('../../src/tools/cli.js', import.meta.url));
// a module loader hook that prints every module of the build it loads
const HOOK = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent('export async function load(u, c, n) { if (u.includes("/dist/src/")) process.stderr.write("LOADED " + u.slice(u.indexOf("/dist/src/") + 10) + "\\\\n"); return n(u, c); }'));`)}`;

function loaded(args: string[]): { status: number | null; modules: string[]; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', HOOK, CLI, ...args], { encoding: 'utf8', env: { ...process.env, NETMAP_TS_DIR: dir }, timeout: 30_000 });
  const modules = [...r.stderr.matchAll(/^LOADED (.*)$/gm)].map((m) => m[1]!);
  return { status: r.status, modules, stderr: r.stderr.replace(/^LOADED .*\n/gm, '') };
}

test('pkt-gen --help loads the parser and the option table only', () => {
  const r = loaded(['pkt-gen', '--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.modules.includes('tools/pkt-gen.js'), r.modules.join(' '));
  for (const m of r.modules) assert.doesNotMatch(m, /^(native|memory|ports|generator\/run|interfaces|bwrap)\b/, `--help loaded ${m}`);
});

test('pkt-gen on a VALE port and on a pipe: no interfaces layer; netmap:IF loads it', () => {
  const vale = loaded(['pkt-gen', '-i', 'valest0:a', '-f', 'tx', '-n', '1']);
  assert.equal(vale.status, 0, vale.stderr);
  assert.ok(vale.modules.includes('generator/run.js'));
  for (const m of vale.modules) assert.doesNotMatch(m, /^(interfaces\/port|bwrap)\b/, `a VALE run loaded ${m}`);
  const pipe = loaded(['pkt-gen', '-i', 'netmap:stp{0', '-f', 'tx', '-n', '1']);
  assert.equal(pipe.status, 0, pipe.stderr);
  for (const m of pipe.modules) assert.doesNotMatch(m, /^(interfaces\/port|bwrap)\b/, `a pipe run loaded ${m}`);
  // an interface that does not exist: the interface type is loaded, and it is the one that says so
  const nic = loaded(['pkt-gen', '-i', 'netmap:nmtsnone9', '-f', 'tx', '-n', '1', '-w', '0']);
  assert.equal(nic.status, 1, nic.stderr);
  assert.ok(nic.modules.includes('interfaces/port.js'), nic.modules.join(' '));
  assert.match(nic.stderr, /nmtsnone9/);
});

test('needsInterfaceType: interface names and pipes of interfaces, not VALE ports or other pipes', async () => {
  const { needsInterfaceType } = await import('../../src/port-types-lazy.js');
  assert.equal(needsInterfaceType('netmap:eth9'), true);
  assert.equal(needsInterfaceType('netmap:eth9^'), true);
  assert.equal(needsInterfaceType('vale0:a'), false);
  assert.equal(needsInterfaceType('netmap:p{0'), false);
  assert.equal(needsInterfaceType('netmap:lo{0'), true, 'a pipe whose parent is an interface (lo exists in every namespace)');
  assert.equal(needsInterfaceType('netmap:{{bad'), false, 'openPort reports what does not parse');
});
