/**
 * A copy of the compiled library that another user can load. Tests that run a child as an
 * unprivileged user (uid 65534) cannot import the library from the checkout when the checkout
 * lies in a private folder (a clone inside `mktemp -d`, mode 0700): the child would fail to read
 * it long before reaching what the test checks. This copies dist/src, the koffi package and its
 * native module for this platform into a fresh world-readable folder under /tmp, with
 * directories 0755 and files 0644.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface Staged {
  /** Root of the copy (holds src/, node_modules/koffi and a package.json). */
  dir: string;
  /** Absolute path of a module of the copy, given its path under dist/src (e.g. 'ports/index.js'). */
  module(rel: string): string;
  /** Removes the copy. */
  remove(): void;
}

/** Makes every directory 0755 and every file 0644 under `dir` (symlinks are not followed). */
function openUp(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) openUp(p);
    else if (e.isFile()) fs.chmodSync(p, 0o644);
  }
}

/** The folder of package `name` that holds the file `entry` (its package.json names it). */
function packageDir(entry: string, name: string): string {
  for (let d = path.dirname(entry); d !== path.dirname(d); d = path.dirname(d)) {
    const pj = path.join(d, 'package.json');
    if (fs.existsSync(pj) && (JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: string }).name === name) return d;
  }
  throw new Error(`no package.json of ${name} above ${entry}`);
}

export function stageLibrary(): Staged {
  const srcDir = fileURLToPath(new URL('../../src/', import.meta.url));
  // koffi as this checkout resolves it (node_modules may be a symlink into another tree)
  const koffiDir = packageDir(createRequire(import.meta.url).resolve('koffi'), 'koffi');
  const dir = fs.mkdtempSync('/tmp/nmts-staged-');
  try {
    fs.cpSync(srcDir, path.join(dir, 'src'), { recursive: true, dereference: true });
    fs.cpSync(koffiDir, path.join(dir, 'node_modules', 'koffi'), { recursive: true, dereference: true });
    // koffi's native module comes in a package of its own per platform (@koromix/koffi-<os>-<arch>)
    const scope = path.join(path.dirname(koffiDir), '@koromix');
    for (const p of fs.existsSync(scope) ? fs.readdirSync(scope) : []) {
      if (p.startsWith(`koffi-${process.platform}-${process.arch}`)) fs.cpSync(path.join(scope, p), path.join(dir, 'node_modules', '@koromix', p), { recursive: true, dereference: true });
    }
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }) + '\n');
    openUp(dir);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    module: (rel) => path.join(dir, 'src', rel),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
