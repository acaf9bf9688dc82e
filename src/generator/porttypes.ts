/**
 * Loads every port type of the build: pipes always, VALE switches and interfaces when their
 * modules exist (they are optional parts of the build; a missing one is not an error).
 */
const OPTIONAL = ['../switch/index.js', '../interfaces/index.js'];

let loaded: Promise<string[]> | null = null;

/** Resolves to the names of the optional port types that are available ('switch', 'interfaces'). */
export function loadPortTypes(): Promise<string[]> {
  if (loaded === null) loaded = load();
  return loaded;
}

async function load(): Promise<string[]> {
  await import('../port-types.js');
  const have: string[] = [];
  for (const spec of OPTIONAL) {
    try {
      await import(spec);
      have.push(spec.split('/')[1]!);
    } catch (e) {
      const err = e as { code?: string; message?: string };
      // only "this very module is absent" is tolerated; a broken module is reported
      if (err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(spec.slice(3))) continue;
      throw e;
    }
  }
  return have;
}
