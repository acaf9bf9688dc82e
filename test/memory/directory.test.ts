/**
 * NETMAP_TS_DIR that cannot serve: a regular file, a path through a file, a special directory
 * (/proc), a shared sticky directory, a path whose parent does not exist (refused, nothing
 * created), each an errno and a sentence naming the variable and the path; a new directory in an
 * existing parent is created 0700, and an existing one of ours is made 0700. Each case runs in a
 * child process (the address space is one per thread and directory).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SPACE = new URL('../../src/memory/space.js', import.meta.url).href;
const CLI = new URL('../../src/tools/cli.js', import.meta.url).pathname;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nmts-dir-'));
after(() => {
  fs.chmodSync(work, 0o700);
  fs.rmSync(work, { recursive: true, force: true });
});

/** space() in a child with NETMAP_TS_DIR=value: 'OK' or 'CODE message'. */
function open(value: string): string {
  const script = `import(${JSON.stringify(SPACE)}).then((m) => { try { m.space(); console.log('OK'); } catch (e) { console.log(e.code + ' ' + e.message); } });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NETMAP_TS_DIR: value }, timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  return r.stdout.trim();
}

test('a bad NETMAP_TS_DIR is refused with ENOTDIR / ENOENT / EACCES naming the variable and the path', () => {
  const file = path.join(work, 'file');
  fs.writeFileSync(file, 'x');
  const cases: [string, RegExp][] = [
    ['/etc/passwd', /^ENOTDIR NETMAP_TS_DIR=\/etc\/passwd: not a directory \(ENOTDIR\)$/],
    [path.join(file, 'sub'), /^ENOTDIR NETMAP_TS_DIR=.*\/file\/sub: .*not a directory \(ENOTDIR\)$/],
    ['/proc', /^EACCES NETMAP_TS_DIR=\/proc: /],
    [path.join(work, 'no', 'such', 'dir'), /^ENOENT NETMAP_TS_DIR=.*\/no\/such\/dir: its parent .*\/no\/such does not exist/],
  ];
  for (const [value, want] of cases) assert.match(open(value), want, value);
  assert.equal(fs.existsSync(path.join(work, 'no')), false, 'a missing parent is not created');
  // a shared sticky directory would be made 0700 under everybody: refused, left as it is
  const shared = path.join(work, 'shared');
  fs.mkdirSync(shared);
  fs.chmodSync(shared, 0o1777);
  assert.match(open(shared), /^EACCES NETMAP_TS_DIR=.*\/shared: a shared directory \(sticky, mode 1777\)/);
  assert.equal(fs.statSync(shared).mode & 0o7777, 0o1777);
  // a relative value is named as given, with the path it means
  const rel = path.relative(process.cwd(), path.join(work, 'gone', 'x'));
  assert.match(open(rel), new RegExp(`^ENOENT NETMAP_TS_DIR=${rel.replace(/[.]/g, '\\.')} \\(${path.join(work, 'gone', 'x').replace(/[.]/g, '\\.')}\\): its parent`));
  if (process.getuid?.() !== 0) {
    // (root writes anywhere: no such case for it; /proc above covers "cannot create files")
    const ro = path.join(work, 'ro');
    fs.mkdirSync(ro, { mode: 0o500 });
    assert.match(open(ro), /^EACCES NETMAP_TS_DIR=.*\/ro: cannot create files in it/);
  }
});

test('a new NETMAP_TS_DIR in an existing parent is created 0700; an existing one of ours is made 0700', () => {
  const fresh = path.join(work, 'fresh');
  assert.equal(open(fresh), 'OK');
  assert.equal(fs.statSync(fresh).mode & 0o7777, 0o700);
  assert.deepEqual(fs.readdirSync(fresh).filter((f) => f.startsWith('.probe')), [], 'the probe file is gone');
  const open755 = path.join(work, 'open755');
  fs.mkdirSync(open755);
  fs.chmodSync(open755, 0o755);
  assert.equal(open(open755), 'OK');
  assert.equal(fs.statSync(open755).mode & 0o7777, 0o700);
});

test('the tools print the reason on one line and exit 1 (no stack trace)', () => {
  const r = spawnSync(process.execPath, [CLI, 'vale-ctl'], { encoding: 'utf8', env: { ...process.env, NETMAP_TS_DIR: '/etc/passwd' }, timeout: 30_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^[^\n]*ENOTDIR[^\n]*NETMAP_TS_DIR=\/etc\/passwd: not a directory[^\n]*\n$/); // vale-ctl's own form: 'failed to list all: ENOTDIR (...)'
  const p = spawnSync(process.execPath, [CLI, 'pkt-gen', '-f', 'rx', '-i', 'vale0:a', '-n', '1'], { encoding: 'utf8', env: { ...process.env, NETMAP_TS_DIR: '/proc/self' }, timeout: 30_000 });
  assert.equal(p.status, 1, p.stderr);
  assert.match(p.stderr, /^netmap pkt-gen: NETMAP_TS_DIR=\/proc\/self: [^\n]*\(EACCES\)\n$/);
});
