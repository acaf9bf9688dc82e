/**
 * The package surface: every `import ... from '...'` in the code blocks of the READMEs (the top
 * one and every one under src/) names a module a reader can import and names it exports.
 * `netmap-ts...` specifiers are resolved by Node's own resolver through package.json's `exports`
 * (a self-reference), so a README cannot show a path the package forbids; relative specifiers
 * (internal modules, shown from the README's folder) must name an existing module.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';

process.env.NETMAP_TS_DIR ??= '/dev/shm/nmts-exports-test';
const ROOT = path.resolve(fileURLToPath(import.meta.url), '../../..'); // dist/test/x.js -> repo

interface ReadmeImport { readme: string; line: number; specifier: string; names: string[] }

function readmes(): string[] {
  const out = [path.join(ROOT, 'README.md')];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'README.md') out.push(p);
    }
  };
  walk(path.join(ROOT, 'src'));
  return out;
}

/** The static and dynamic imports in a README's ts/js code blocks, with the names they bind. */
export function readmeImports(file: string): ReadmeImport[] {
  const text = fs.readFileSync(file, 'utf8');
  const found: ReadmeImport[] = [];
  for (const block of text.matchAll(/```(?:ts|js|typescript|javascript)\n([\s\S]*?)```/g)) {
    const code = block[1]!;
    const start = block.index! + block[0].indexOf(code);
    const lineOf = (at: number): number => text.slice(0, start + at).split('\n').length;
    for (const m of code.matchAll(/\bimport\s+(?!type\s)([\w*{}\s,$]+?)\s+from\s+'([^']+)'/g)) {
      const clause = m[1]!.trim();
      const names: string[] = [];
      const braces = /\{([^}]*)\}/.exec(clause);
      if (braces !== null) {
        for (const part of braces[1]!.split(',')) {
          const name = part.trim().split(/\s+as\s+/)[0]!.trim();
          if (name !== '' && !name.startsWith('type ')) names.push(name);
        }
      }
      const head = clause.replace(/\{[^}]*\}/, '').replace(/,/g, ' ').trim();
      if (head !== '' && !head.startsWith('*')) names.push('default');
      found.push({ readme: path.relative(ROOT, file), line: lineOf(m.index), specifier: m[2]!, names });
    }
    for (const m of code.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) {
      found.push({ readme: path.relative(ROOT, file), line: lineOf(m.index), specifier: m[1]!, names: [] });
    }
  }
  return found;
}

test('the extractor finds imports, their names and dynamic imports', () => {
  const tmp = fs.mkdtempSync('/dev/shm/nmts-readme-');
  try {
    const f = path.join(tmp, 'README.md');
    fs.writeFileSync(f, "text import { no } from 'x'\n```ts\nimport { a, b as c, type T } from 'netmap-ts';\nimport * as v from 'netmap-ts/vale';\nimport d, { e } from './e.js';\nconst m = await import('netmap-ts/capture');\n```\n```sh\nimport { z } from 'nope'\n```\n");
    assert.deepEqual(readmeImports(f).map((i) => [i.specifier, i.names, i.line]), [
      ['netmap-ts', ['a', 'b'], 3], ['netmap-ts/vale', [], 4], ['./e.js', ['e', 'default'], 5], ['netmap-ts/capture', [], 6],
    ]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('the exports map: every entry has its module and its types', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; exports: Record<string, string | { types: string; default: string }> };
  assert.equal(pkg.name, 'netmap-ts');
  for (const [sub, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') { assert.ok(fs.existsSync(path.join(ROOT, target)), `${sub}: ${target}`); continue; }
    assert.ok(fs.existsSync(path.join(ROOT, target.default)), `${sub}: ${target.default}`);
    assert.ok(fs.existsSync(path.join(ROOT, target.types)), `${sub}: ${target.types}`);
    assert.equal(import.meta.resolve(path.posix.join('netmap-ts', sub)), pathToFileURL(path.join(ROOT, target.default)).href);
  }
  // what the map does not list is refused, as a reader's import would be
  assert.throws(() => import.meta.resolve('netmap-ts/dist/src/switch/index.js'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
});

test('every README imports only what the package exports (or, relative, an existing module), and names exports it has', async () => {
  const all = readmes().flatMap(readmeImports);
  assert.ok(all.length >= 10, `${all.length} imports found`);
  const problems: string[] = [];
  for (const imp of all) {
    const where = `${imp.readme}:${imp.line} '${imp.specifier}'`;
    let url: string;
    if (imp.specifier === 'netmap-ts' || imp.specifier.startsWith('netmap-ts/')) {
      try {
        url = import.meta.resolve(imp.specifier);
      } catch (e) {
        problems.push(`${where}: not allowed by package.json exports (${(e as { code?: string }).code})`);
        continue;
      }
    } else if (imp.specifier.startsWith('.')) {
      // relative to the README's folder, in the compiled tree
      url = new URL(imp.specifier, pathToFileURL(path.join(ROOT, 'dist', path.dirname(imp.readme)) + '/')).href;
      if (!fs.existsSync(fileURLToPath(url))) { problems.push(`${where}: no such module`); continue; }
    } else if (imp.specifier.startsWith('node:')) {
      continue;
    } else {
      problems.push(`${where}: neither the package, a relative module nor node:`);
      continue;
    }
    const mod = await import(url) as Record<string, unknown>;
    for (const name of imp.names) if (!(name in mod)) problems.push(`${where}: no export '${name}'`);
  }
  assert.deepEqual(problems, []);
});
