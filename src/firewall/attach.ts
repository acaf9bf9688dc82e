/**
 * Plugging a firewall into a VALE switch: `netmap ipfw attach valeX` creates the firewall store
 * named valeX (if there is none) and installs vale.ts as the switch's lookup, with the store's
 * name as its configuration; `detach` restores the learning bridge and removes the store.
 */
import { setLookup } from '../switch/index.js';
import { Firewall } from './firewall.js';
import { FirewallStore } from './store.js';

export async function attachFirewall(switchName: string, opts: { defaultAccept?: boolean } = {}): Promise<void> {
  let created = false;
  if (!FirewallStore.exists(switchName)) {
    Firewall.create(switchName, { defaultAccept: opts.defaultAccept ?? true }).close();
    created = true;
  }
  try {
    await setLookup(switchName, new URL('./vale.js', import.meta.url).href, switchName);
  } catch (e) {
    if (created) {
      const fw = Firewall.open(switchName);
      fw.store.remove();
      fw.close();
    }
    throw e;
  }
}

export async function detachFirewall(switchName: string): Promise<void> {
  await setLookup(switchName, null, '');
  if (FirewallStore.exists(switchName)) {
    const fw = Firewall.open(switchName);
    fw.store.remove();
    fw.close();
  }
}
