/**
 * The firewall's public API (`netmap-ts/firewall`): the kipfw daemon, a firewall's store as any
 * process sees it, the VALE attachment, and the rule language.
 */
// A package entry point (netmap-ts/firewall): Kipfw opens ports by name, so the port types are
// plugged in here as the package's top does.
import '../port-types.js';

export { Kipfw, ifaceName, type KipfwOptions } from './daemon.js';
export { Firewall, type FirewallOptions } from './firewall.js';
export { attachFirewall, detachFirewall } from './attach.js';
export { sendControl, daemonRunning, type ControlReply, type ControlRequest } from './control.js';
export { runCommand, runFile, emptyConfig, type CommandResult, type FirewallAccess } from './commands.js';
export { buildEvaluator } from './engine.js';
export { Dummynet } from './dummynet/index.js';
export type { Rule, Cmd, Action, FirewallConfig, Settings } from './rule.js';
