/**
 * Dummynet as the firewall plugs it in. The kipfw daemon owns one Dummynet (its packets wait in
 * the daemon's buffer pool, its counters live in its memory): `pipe`/`queue`/`sched` commands
 * reach it through the control socket, and the configuration it ends up with is kept in the
 * published FirewallConfig too (`dummynet`), so that it survives as text like the rules.
 * A firewall without a daemon (inside a VALE switch) keeps only the configuration: a lookup
 * cannot hold packets, so its pipe/queue rules drop (see vale.ts), and `pipe show` prints the
 * configuration with zero counters.
 */
import { Dummynet, FlowKey } from './dummynet/index.js';
import { flowKeyFromFrame } from './dummynet/flowkey.js';
import type { FirewallAccess, CommandResult } from './commands.js';
import type { FirewallConfig } from './rule.js';
import type { DaemonDummynet } from './daemon.js';

/** Commands that change dummynet's configuration (the others only read it). */
function changes(argv: string[]): boolean {
  return argv.some((a) => a === 'config' || a === 'delete' || a === 'flush');
}

/** A dummynet holding configuration `json` (a FirewallConfig's `dummynet`; none when null). */
function dummynetFrom(json: unknown): Dummynet {
  const dn = new Dummynet();
  if (json !== null && json !== undefined) dn.loadConfig(json);
  return dn;
}

function run(dn: Dummynet, argv: string[], config: FirewallConfig, testOnly: boolean): CommandResult {
  if (testOnly) {
    // ipfw -n: the command on a copy of the configuration, which is then dropped
    const r = dummynetFrom(dn.configJSON()).command(argv);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, config };
  }
  const r = dn.command(argv);
  const next = r.status === 0 && changes(argv) ? { ...config, dummynet: dn.configJSON() } : config;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, config: next };
}

/** The daemon's dummynet: the data path side and the command side. */
export function makeDaemonDummynet(): DaemonDummynet {
  const dn = new Dummynet();
  const key = new FlowKey();
  return {
    enqueue(kind, n, handle, len, u8, off, ruleIndex, nowNs) {
      flowKeyFromFrame(u8, off, len, key);
      return dn.enqueue(kind, n, handle, len, key, ruleIndex, nowNs);
    },
    nextEventNs: () => dn.nextEventNs(),
    dequeueDue: (nowNs, handles, rules, max) => dn.dequeueDue(nowNs, handles, rules, max),
    settings(s) { dn.settings.ioFast = s.ioFast; dn.settings.onePass = s.onePass; },
    command: (argv, config, testOnly) => run(dn, argv, config, testOnly),
    flushAll() { dn.flushAll(() => { /* the path takes every pool buffer back itself */ }); },
    lateness: () => dn.releaseLateness(),
  };
}

/** For a firewall without a daemon (or none at all: ipfw -n): dummynet commands on the configuration alone. */
export function makeConfigDummynet(): NonNullable<FirewallAccess['dummynet']> {
  return (argv, config, testOnly) => run(dummynetFrom(config.dummynet), argv, config, testOnly);
}

/**
 * A dummynet on a copy of `config.dummynet` (FirewallAccess.dummynetCheck): one instance, so that
 * a rules file's lines build on each other there before any reaches the daemon's own.
 */
export function checkingDummynet(config: FirewallConfig): NonNullable<FirewallAccess['dummynet']> {
  const dn = dummynetFrom(config.dummynet);
  return (argv, cfg, testOnly) => run(dn, argv, cfg, testOnly);
}
