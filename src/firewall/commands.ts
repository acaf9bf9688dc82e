/**
 * One ipfw command line executed on a FirewallConfig, as FreeBSD's 2014 /sbin/ipfw and its
 * kernel side would: global flags, add/delete/flush/zero/resetlog/list/show, sets, tables, and
 * rules files. The config is immutable data: a command that changes it returns a new object
 * (version + 1); a command that fails returns the very same object and touches no counters or
 * states (every check runs before the first change). Output is ipfw's, split into stdout and
 * stderr, with ipfw's exit status.
 */
import {
  type FirewallConfig, type Rule, type TableConfig, type TableEntry, type TableType,
  DEFAULT_RULE, DEFAULT_SETTINGS, MAX_RULES, MAX_RULE_NUMBER, RESVD_SET, defaultRule,
} from './rule.js';
import { EX, IpfwError, ipfwFail, outOfRange, parseRule, validTableName, type ParseEnv } from './parse.js';
import { ruleLine, stateLine, counterWidth, type PrintOptions } from './print.js';
import { inetAton, inetPton6, inetNtoa, inetNtop6, hostV4, strtoul } from './names.js';

export interface RuleCounters { packets: number; bytes: number; lastMatch: number /* unix s, 0 = never */ }
export interface DynStateView {
  ruleNumber: number; packets: number; bytes: number; remaining: number /* s */;
  kind: 'STATE' | 'LIMIT' | 'PARENT'; parentCount?: number; proto: number; src: string; srcPort: number;
  dst: string; dstPort: number; name: string; expired: boolean;
}
export interface FirewallAccess {
  counters(slot: number): RuleCounters;
  zeroCounters(slot: number): void;
  resetLog(slot: number): void;
  states(includeExpired: boolean): DynStateView[];
  removeStatesOf(slot: number): void;
  flushStates(): void;
  /**
   * A dummynet command: `argv` from its first word (pipe, queue, flowset, sched), ipfw's options
   * taken off; with `testOnly` (-n) checked on a copy, changing nothing.
   */
  dummynet?(argv: string[], config: FirewallConfig, testOnly: boolean): CommandResult;
  /**
   * A dummynet of its own on a copy of `config.dummynet`. A rules file's dummynet lines run there
   * and reach `dummynet` only once every line has succeeded (all or nothing, as for the rules);
   * without it they reach `dummynet` as they come (fine where it keeps nothing but the
   * configuration it is handed: a failed file's configuration is dropped).
   */
  dummynetCheck?(config: FirewallConfig): NonNullable<FirewallAccess['dummynet']>;
}
/** `testOnly`: the command asked for -n (check the syntax only), so it changed nothing. */
export interface CommandResult { status: number; stdout: string; stderr: string; config: FirewallConfig; testOnly?: boolean }

/**
 * The access of a firewall that has seen no traffic: no counters, no states. For commands run
 * where no firewall exists (`ipfw -n`, which checks the syntax only, needs none).
 */
export const NO_TRAFFIC: FirewallAccess = {
  counters: () => ({ packets: 0, bytes: 0, lastMatch: 0 }),
  zeroCounters: () => { /* nothing counted */ },
  resetLog: () => { /* nothing logged */ },
  states: () => [],
  removeStatesOf: () => { /* no states */ },
  flushStates: () => { /* no states */ },
};

/** A firewall with only the default rule (allow or deny). */
export function emptyConfig(defaultAccept: boolean): FirewallConfig {
  return {
    version: 1, rules: [defaultRule(defaultAccept)], disabledSets: 0, tables: [],
    settings: { ...DEFAULT_SETTINGS, defaultAccept }, dummynet: null,
  };
}

/** ipfw's command-line options (struct cmdline_opts). */
interface Flags {
  acct: boolean; compact: boolean; dynamic: boolean; expired: boolean; force: boolean; testOnly: boolean;
  resolve: boolean; quiet: boolean; showSets: boolean; time: 0 | 1 | 2; useSet: number /* 0 = none, else set+1 */;
}

/** Output being built; deferred side effects run only when the command succeeds. */
class Run {
  stdout = '';
  stderr = '';
  status: number = EX.OK;
  readonly effects: Array<() => void> = [];
  constructor(readonly access: FirewallAccess, readonly flags: Flags) {}
  out(text: string): void { this.stdout += text; }
  warn(text: string): void { this.stderr += `ipfw: ${text}\n`; }
}

const WHITESPACE = /[ \t\f\v\n\r]/;

/**
 * ipfw_main's argument preparation: one string is split at blanks (a `#` ends it, blanks after
 * commas vanish); several words are glued when one ends in a comma (`1.2.3.4, 5.6.7.8`).
 */
export function prepareArgs(argv: readonly string[]): string[] {
  if (argv.some((a) => WHITESPACE.test(a)) || argv.length === 1) {
    const text = argv.join(' ');
    let out = '';
    let copy = false;
    for (const ch of text) {
      if (ch === '#') break;
      if (copy) { out += ch; copy = !(ch === ',' || WHITESPACE.test(ch)); }
      else { copy = !WHITESPACE.test(ch); if (copy) out += ch; }
    }
    return out.split(/[ \t\f\v\n\r]+/).filter((w) => w !== '');
  }
  const out: string[] = [];
  let pending = '';
  for (let i = 0; i < argv.length; i++) {
    pending += argv[i]!;
    if (!argv[i]!.endsWith(',') || i === argv.length - 1) { out.push(pending); pending = ''; }
  }
  return out.filter((w) => w !== '');
}

function fresh(config: FirewallConfig, changes: Partial<FirewallConfig>): FirewallConfig {
  return { ...config, ...changes, version: config.version + 1 };
}

/** Rules of number `n` in insertion order (config.rules is sorted, stable). */
function isDefault(rule: Rule): boolean { return rule.number === DEFAULT_RULE; }

function parseEnv(config: FirewallConfig, warnings: string[]): ParseEnv {
  return { verboseLimit: config.settings.verboseLimit, warnings };
}

/** Executes one ipfw command (argv after `ipfw`). */
export function runCommand(argv: string[], config: FirewallConfig, access: FirewallAccess, opts: { tty?: boolean } = {}): CommandResult {
  const flags: Flags = {
    acct: false, compact: false, dynamic: false, expired: false, force: false, testOnly: false,
    resolve: false, quiet: false, showSets: false, time: 0, useSet: 0,
  };
  const run = new Run(access, flags);
  try {
    const next = execute(prepareArgs(argv), config, run, opts);
    // Reaching here the command completed (a partial `zero` reports 69 but what it did stands).
    for (const effect of run.effects) effect();
    return { status: run.status, stdout: run.stdout, stderr: run.stderr, config: next, testOnly: flags.testOnly };
  } catch (e) {
    // A control request never takes the daemon down: a bug here becomes EX_SOFTWARE, config unchanged.
    if (!(e instanceof IpfwError)) {
      return { status: EX.SOFTWARE, stdout: run.stdout, stderr: run.stderr + `ipfw: internal error: ${String(e)}\n`, config, testOnly: flags.testOnly };
    }
    return { status: e.status, stdout: run.stdout, stderr: run.stderr + `ipfw: ${e.text}\n`, config, testOnly: flags.testOnly };
  }
}

function execute(input: string[], config: FirewallConfig, run: Run, opts: { tty?: boolean }): FirewallConfig {
  const f = run.flags;
  let av = input;
  // getopt: options until the first word that is not one.
  while (av.length > 0 && av[0]!.startsWith('-') && av[0]!.length > 1 && !/^-[0-9]/.test(av[0]!)) {
    const word = av[0]!;
    av = av.slice(1);
    if (word === '--') break;
    const letters = word.slice(1);
    for (let ci = 0; ci < letters.length; ci++) {
      const ch = letters[ci]!;
      switch (ch) {
        case 's': {
          // `-s field`: the sort order of dummynet's flow listings (accepted; they stay in
          // dummynet's own order)
          const value = letters.slice(ci + 1) !== '' ? letters.slice(ci + 1) : av[0];
          if (value === undefined) ipfwFail(EX.USAGE, 'option requires an argument -- s');
          if (letters.slice(ci + 1) === '') av = av.slice(1);
          ci = letters.length;
          break;
        }
        case 'a': f.acct = true; break;
        case 'c': f.compact = true; break;
        case 'd': f.dynamic = true; break;
        case 'e': f.expired = true; break;
        case 'f': f.force = true; break;
        case 'n': f.testOnly = true; break;
        case 'N': f.resolve = true; break;
        case 'q': f.quiet = true; break;
        case 'S': f.showSets = true; break;
        case 't': f.time = 1; break;
        case 'T': f.time = 2; break;
        default: ipfwFail(EX.USAGE, `illegal option -- ${ch}`);
      }
    }
  }
  if (!f.force) f.force = opts.tty !== true;
  if (av.length === 0) ipfwFail(EX.USAGE, 'bad arguments, for usage summary ``ipfw\'\'');
  // ipfw1 allowed the rule number first: `100 add allow ...`.
  if (av.length > 1 && /^[0-9]/.test(av[0]!)) av = [av[1]!, av[0]!, ...av.slice(2)];
  const head = av[0]!;
  const isPrefix = (word: string, of: string): boolean => of.startsWith(word);
  if (isPrefix(head, 'pipe') || head === 'queue' || head === 'flowset' || head === 'sched') {
    // `pipe|queue|sched [N] zero|resetlog`: FreeBSD's main.c sends these to ipfw_zero() whatever
    // the object (its do_pipe flag is not looked at there), so they clear the *rule* counters,
    // after the same swap of `N zero` into `zero N`. Dummynet's own counters have no zero command.
    let dv = av.slice(1);
    if (dv.length > 1 && /^[0-9]/.test(dv[0]!)) dv = [dv[1]!, dv[0]!, ...dv.slice(2)];
    const w = dv[0] ?? '';
    if (w !== '' && ('zero'.startsWith(w) || 'resetlog'.startsWith(w))) return cmdZero(dv.slice(1), config, run, 'resetlog'.startsWith(w));
    const access = run.access;
    if (access.dummynet === undefined) ipfwFail(EX.UNAVAILABLE, 'dummynet is not available in this firewall');
    const r = access.dummynet(av, config, f.testOnly);
    run.stdout += r.stdout; run.stderr += r.stderr; run.status = r.status;
    return r.config;
  }
  if (head === 'sysctl') return cmdSysctl(av.slice(1), config, run);
  if (isPrefix(head, 'nat')) ipfwFail(EX.UNAVAILABLE, 'nat is not supported by netmap-ts');
  if (isPrefix(head, 'set') && av.length > 1 && /^[0-9]/.test(av[1]!)) {
    const s = av[1]!;
    if (!/^[0-9]+$/.test(s) || Number(s) > RESVD_SET) ipfwFail(EX.DATAERR, `invalid set number ${s}`);
    f.useSet = Number(s) + 1;
    av = av.slice(2);
    if (av.length === 0) ipfwFail(EX.USAGE, 'missing command');
  }
  const cmd = av[0]!;
  const warnings: string[] = [];
  const sub = (keyword: string): boolean => {
    if (!keyword.startsWith(cmd)) return false;
    if (cmd.length !== keyword.length) warnings.push(`DEPRECATED: '${cmd}' matched '${keyword}' as a sub-string`);
    return true;
  };
  const flushWarnings = (): void => { for (const w of warnings) run.warn(w); warnings.length = 0; };
  if (f.useSet === 0) {
    if (sub('add')) { flushWarnings(); return cmdAdd(av.slice(1), config, run); }
    if (sub('set')) { flushWarnings(); return cmdSet(av.slice(1), config, run); }
    if (sub('table')) { flushWarnings(); return cmdTable(av.slice(1), config, run); }
    if (sub('enable')) { flushWarnings(); return cmdEnable(av.slice(1), config, run, true); }
    if (sub('disable')) { flushWarnings(); return cmdEnable(av.slice(1), config, run, false); }
  }
  if (sub('delete')) { flushWarnings(); return cmdDelete(av.slice(1), config, run); }
  if (sub('flush')) { flushWarnings(); return cmdFlush(config, run); }
  if (sub('zero')) { flushWarnings(); return cmdZero(av.slice(1), config, run, false); }
  if (sub('resetlog')) { flushWarnings(); return cmdZero(av.slice(1), config, run, true); }
  if (sub('print') || sub('list')) { flushWarnings(); cmdList(av.slice(1), config, run, f.acct); return config; }
  if (sub('show')) { flushWarnings(); cmdList(av.slice(1), config, run, true); return config; }
  if (sub('table')) { flushWarnings(); return cmdTable(av.slice(1), config, run); }
  return ipfwFail(EX.USAGE, `bad command \`${cmd}'`);
}

// ---- add ----------------------------------------------------------------------------------------

function cmdAdd(av: string[], config: FirewallConfig, run: Run): FirewallConfig {
  const warnings: string[] = [];
  const parsed = parseRule(av, parseEnv(config, warnings));
  for (const w of warnings) run.warn(w);
  const rule = parsed.rule;
  const printOpts: PrintOptions = { compact: run.flags.compact, resolve: run.flags.resolve, showSets: run.flags.showSets };
  if (run.flags.testOnly) {
    rule.number = parsed.number;
    if (!run.flags.quiet) run.out((ruleLine(rule, false, printOpts) ?? '') + '\n');
    return config;
  }
  if (parsed.number > MAX_RULE_NUMBER) ipfwFail(EX.UNAVAILABLE, `rule ${DEFAULT_RULE} is the default rule: it cannot be added (getsockopt(IP_FW_XADD): Invalid argument)`);
  const userRules = config.rules.filter((r) => !isDefault(r));
  let number = parsed.number;
  if (number === 0) {
    const last = userRules.length > 0 ? userRules[userRules.length - 1]!.number : 0;
    number = last < DEFAULT_RULE - config.settings.autoincStep ? last + config.settings.autoincStep : last;
  }
  rule.number = number;
  // Tables the rule names exist, or are created with the type its use implies.
  let tables = config.tables;
  for (const use of parsed.tables) {
    const t = tables.find((x) => x.name === use.name);
    if (t === undefined) tables = [...tables, { name: use.name, type: use.type, entries: [] }];
    else if (t.type !== use.type) ipfwFail(EX.UNAVAILABLE, 'getsockopt(IP_FW_XADD): Invalid argument');
  }
  const used = new Set(config.rules.map((r) => r.slot));
  let slot = -1;
  for (let s = 1; s < MAX_RULES; s++) if (!used.has(s)) { slot = s; break; }
  if (slot < 0) ipfwFail(EX.UNAVAILABLE, 'getsockopt(IP_FW_XADD): No space left on device');
  rule.slot = slot;
  let at = config.rules.length;
  for (let k = 0; k < config.rules.length; k++) if (config.rules[k]!.number > number) { at = k; break; }
  const rules = [...config.rules.slice(0, at), rule, ...config.rules.slice(at)];
  run.effects.push(() => run.access.zeroCounters(slot));
  if (!run.flags.quiet) run.out((ruleLine(rule, false, printOpts) ?? '') + '\n');
  return fresh(config, { rules, tables });
}

// ---- delete / flush / zero ----------------------------------------------------------------------

function cmdDelete(av: string[], config: FirewallConfig, run: Run): FirewallConfig {
  if (av.length === 0) ipfwFail(EX.USAGE, 'missing rule specification');
  let deleteSet = false;
  let k = 0;
  if ('set'.startsWith(av[0]!) && av[0] !== '') {
    if (run.flags.useSet !== 0) ipfwFail(EX.DATAERR, 'invalid syntax');
    deleteSet = true;
    k = 1;
  }
  const doomed = new Set<Rule>();
  const missing: string[] = [];
  for (; k < av.length && /^[0-9]/.test(av[k]!); k++) {
    const word = av[k]!;
    const m = /^([0-9]+)(?:-([0-9]+))?/.exec(word)!;
    // ipfw kept 16 bits of a rule number (delete 70000 deleted rule 4464) and 5 of a set number
    if (m[0] !== word) ipfwFail(EX.DATAERR, `invalid rule number ${word}`);
    const lo = Number(m[1]);
    const hi = m[2] !== undefined ? Number(m[2]) : lo;
    if (deleteSet && lo > RESVD_SET) outOfRange('set number', m[1]!, `0..${RESVD_SET - 1}`);
    for (const v of [lo, hi]) if (v > DEFAULT_RULE) outOfRange('rule number', String(v), `1..${MAX_RULE_NUMBER}`);
    if (!deleteSet && lo === DEFAULT_RULE) ipfwFail(EX.UNAVAILABLE, `rule ${DEFAULT_RULE} is the default rule: it cannot be deleted`);
    let hits = 0;
    for (const r of config.rules) {
      if (isDefault(r)) continue;
      let match: boolean;
      if (deleteSet) match = r.set === (lo & 31) && r.set !== RESVD_SET;
      else if (lo === 0 && hi === 0) match = r.set !== RESVD_SET;
      else match = r.number >= lo && r.number <= hi && (run.flags.useSet === 0 || r.set === run.flags.useSet - 1);
      if (match) { doomed.add(r); hits++; }
    }
    if (hits === 0) missing.push(lo !== hi ? `no rules rules in ${lo}-${hi} range` : `rule ${lo} not found`);
  }
  if (missing.length > 0) {
    // All or nothing: one missing rule leaves every rule in place.
    for (const m of missing.slice(0, -1)) run.warn(m);
    ipfwFail(EX.UNAVAILABLE, missing[missing.length - 1]!);
  }
  if (doomed.size === 0) return config;
  for (const r of doomed) run.effects.push(() => run.access.removeStatesOf(r.slot));
  return fresh(config, { rules: config.rules.filter((r) => !doomed.has(r)) });
}

function cmdFlush(config: FirewallConfig, run: Run): FirewallConfig {
  if (!run.flags.force && !run.flags.quiet) {
    // ipfw asks on a terminal; we cannot read an answer, which ipfw treats as "do not flush".
    run.out('Are you sure? [yn] ');
    return config;
  }
  const useSet = run.flags.useSet;
  const doomed = config.rules.filter((r) => !isDefault(r) &&
    (useSet !== 0 ? r.set === useSet - 1 : r.set !== RESVD_SET));
  if (!run.flags.quiet) run.out('Flushed all rules.\n');
  if (doomed.length === 0) return config;
  for (const r of doomed) run.effects.push(() => run.access.removeStatesOf(r.slot));
  const gone = new Set(doomed);
  return fresh(config, { rules: config.rules.filter((r) => !gone.has(r)) });
}

function cmdZero(av: string[], config: FirewallConfig, run: Run, logOnly: boolean): FirewallConfig {
  const apply = (r: Rule): void => {
    run.effects.push(() => {
      if (!logOnly) run.access.zeroCounters(r.slot);
      run.access.resetLog(r.slot);
    });
  };
  if (av.length === 0) {
    for (const r of config.rules) apply(r);
    if (!run.flags.quiet) run.out(logOnly ? 'Logging counts reset.\n' : 'Accounting cleared.\n');
    return config;
  }
  for (const word of av) {
    if (!/^[0-9]/.test(word)) ipfwFail(EX.USAGE, `invalid rule number \`\`${word}''`);
    if (!/^[0-9]+$/.test(word) || Number(word) > 0xffff) ipfwFail(EX.DATAERR, `invalid rule number ${word}`);
  }
  for (const word of av) {
    const n = Number(word);
    const hits = config.rules.filter((r) => r.number === n &&
      (run.flags.useSet === 0 || r.set === run.flags.useSet - 1));
    if (hits.length === 0) { run.out(`Entry ${n} not found\n`); run.status = EX.UNAVAILABLE; continue; }
    for (const r of hits) apply(r);
    if (!run.flags.quiet) run.out(`Entry ${n} ${logOnly ? 'logging count reset' : 'cleared'}.\n`);
  }
  return config;
}

// ---- list / show --------------------------------------------------------------------------------

/** Bytes FreeBSD's kernel would return for n states (16-byte container + 128 per state, amd64). */
function dynBytes(n: number): number { return 16 + 128 * n; }

function cmdList(av: string[], config: FirewallConfig, run: Run, counters: boolean): void {
  const f = run.flags;
  if (f.testOnly) { run.stderr += 'Testing only, list disabled\n'; return; }
  let first = 0, last = 0;
  for (const word of av) {
    const a = strtoul(word, 10);
    let rn = a.value;
    if (first === 0 || rn < first) first = rn;
    const rest = word.slice(a.used);
    if (rest[0] === '-') rn = strtoul(rest.slice(1), 10).value;
    if (last === 0 || rn > last) last = rn;
  }
  const inSet = (r: Rule): boolean => f.useSet === 0 || r.set === f.useSet - 1;
  // The rules the kernel returns (and the widths are computed over): from the first rule numbered
  // >= first through the first rule numbered > last, as FreeBSD's dump_config picks them.
  const findIndex = (key: number): number => {
    const i = config.rules.findIndex((r) => r.number >= key);
    return i < 0 ? config.rules.length - 1 : i;
  };
  const fetched = av.length === 0 || last === 0 ? config.rules
    : config.rules.slice(findIndex(Math.min(first, DEFAULT_RULE)), findIndex(last < DEFAULT_RULE ? last + 1 : DEFAULT_RULE) + 1);
  let packetWidth = 0, byteWidth = 0;
  const cnt = new Map<number, { packets: number; bytes: number; lastMatch: number }>();
  const needCounters = counters || f.time !== 0;
  for (const r of fetched) {
    if (needCounters) cnt.set(r.slot, run.access.counters(r.slot));
    if (!counters || !inSet(r)) continue;
    const c = cnt.get(r.slot)!;
    packetWidth = Math.max(packetWidth, counterWidth(c.packets));
    byteWidth = Math.max(byteWidth, counterWidth(c.bytes));
  }
  const allStates = f.dynamic ? run.access.states(true) : [];
  if (counters) for (const s of allStates) { packetWidth = Math.max(packetWidth, counterWidth(s.packets)); byteWidth = Math.max(byteWidth, counterWidth(s.bytes)); }
  const printOpts: PrintOptions = { compact: f.compact, resolve: f.resolve, showSets: f.showSets, time: f.time };
  const disabled = (r: Rule): boolean => r.set !== RESVD_SET && (config.disabledSets & (1 << r.set)) !== 0;
  const showRange = (lo: number, hi: number): number => {
    let seen = 0;
    for (const r of config.rules) {
      if (r.number > hi) break;
      if (!inSet(r) || r.number < lo) continue;
      const c = cnt.get(r.slot) ?? { packets: 0, bytes: 0, lastMatch: 0 };
      const line = ruleLine(r, disabled(r), printOpts,
        { packetWidth: counters ? packetWidth : 0, byteWidth: counters ? byteWidth : 0, packets: c.packets, bytes: c.bytes, lastMatch: c.lastMatch });
      if (line !== null) run.out(line + '\n');
      seen++;
    }
    return seen;
  };
  const showStates = (lo: number, hi: number): void => {
    for (const s of allStates) {
      if (s.ruleNumber > hi || s.ruleNumber < lo) continue;
      if (!f.expired && s.expired && s.kind !== 'PARENT') continue;
      run.out(stateLine(s, counters ? { packetWidth: packetWidth, byteWidth: byteWidth } : null) + '\n');
    }
  };
  if (av.length === 0) {
    showRange(0, DEFAULT_RULE);
    if (f.dynamic && allStates.length > 0) {
      run.out(`## Dynamic rules (${allStates.length} ${dynBytes(allStates.length)}):\n`);
      showStates(0, DEFAULT_RULE);
    }
    return;
  }
  const ranges: Array<[number, number]> = [];
  for (const word of av) {
    const a = strtoul(word, 10);
    let lo = a.value, hi = a.value;
    let rest = word.slice(a.used);
    if (rest[0] === '-') { const b = strtoul(rest.slice(1), 10); hi = b.value; rest = rest.slice(1 + b.used); }
    if (rest !== '' || a.used === 0 && word !== '') {
      if (run.status === EX.OK) run.status = EX.USAGE;
      run.warn(`invalid rule number: ${word}`);
      continue;
    }
    ranges.push([lo, hi]);
    if (showRange(lo, hi) === 0) {
      if (run.status === EX.OK) run.status = EX.UNAVAILABLE;
      run.warn(lo === hi ? `rule ${lo} does not exist` : `no rules in range ${lo}-${hi}`);
    }
  }
  if (f.dynamic && allStates.length > 0) {
    run.out('## Dynamic rules:\n');
    for (const [lo, hi] of ranges) showStates(lo, hi);
  }
}

// ---- sysctl ------------------------------------------------------------------------------------

/** The tunables netmap-ipfw's `ipfw sysctl` reaches, by FreeBSD name. */
const SYSCTLS: ReadonlyArray<readonly [string, keyof FirewallConfig['settings'], 'int' | 'bool']> = [
  ['net.inet.ip.fw.autoinc_step', 'autoincStep', 'int'],
  ['net.inet.ip.fw.one_pass', 'onePass', 'bool'],
  ['net.inet.ip.fw.verbose_limit', 'verboseLimit', 'int'],
  ['net.inet.ip.fw.dyn_max', 'dynMax', 'int'],
  ['net.inet.ip.fw.dyn_buckets', 'dynBuckets', 'int'],
  ['net.inet.ip.fw.dyn_ack_lifetime', 'dynAckLifetime', 'int'],
  ['net.inet.ip.fw.dyn_syn_lifetime', 'dynSynLifetime', 'int'],
  ['net.inet.ip.fw.dyn_fin_lifetime', 'dynFinLifetime', 'int'],
  ['net.inet.ip.fw.dyn_rst_lifetime', 'dynRstLifetime', 'int'],
  ['net.inet.ip.fw.dyn_udp_lifetime', 'dynUdpLifetime', 'int'],
  ['net.inet.ip.fw.dyn_short_lifetime', 'dynShortLifetime', 'int'],
  ['net.inet.ip.fw.dyn_keepalive', 'dynKeepalive', 'bool'],
  ['net.inet.ip.dummynet.io_fast', 'ioFast', 'bool'],
];

/** `sysctl -a`, `sysctl NAME`, `sysctl NAME=VALUE` (netmap-ipfw's emulation), output as sysctl(8). */
function cmdSysctl(av: string[], config: FirewallConfig, run: Run): FirewallConfig {
  const show = (v: number | boolean): string => String(typeof v === 'boolean' ? (v ? 1 : 0) : v);
  if (av.length !== 1) {
    run.out('sysctl emulation usage:\n\tipfw sysctl name[=value]\n\tipfw sysctl -a\n');
    return config;
  }
  const arg = av[0]!;
  if (arg === '-a') {
    for (const [name, key] of SYSCTLS) run.out(`${name}: ${show(config.settings[key])}\n`);
    return config;
  }
  const eq = arg.indexOf('=');
  const name = eq < 0 ? arg : arg.slice(0, eq);
  const entry = SYSCTLS.find(([n]) => n === name);
  if (entry === undefined) ipfwFail(EX.UNAVAILABLE, `unknown oid '${name}'`);
  const [, key, kind] = entry;
  const old = config.settings[key] as number | boolean;
  if (eq < 0) { run.out(`${name}: ${show(old)}\n`); return config; }
  const text = arg.slice(eq + 1);
  if (!/^[0-9]+$/.test(text) || (kind === 'bool' && Number(text) > 1) || Number(text) > 0x7fffffff ||
      (key === 'autoincStep' && (Number(text) < 1 || Number(text) > 1000)) || (key === 'dynMax' && Number(text) < 1)) {
    ipfwFail(EX.DATAERR, `invalid value '${text}' for ${name}`);
  }
  const value = kind === 'bool' ? Number(text) === 1 : Number(text);
  run.out(`${name}: ${show(old)} -> ${show(value)}\n`);
  if (value === old) return config;
  return fresh(config, { settings: { ...config.settings, [key]: value } });
}

/** `enable|disable one_pass|dyn_keepalive` (ipfw_sysctl_handler); other keywords warn, as ipfw does. */
function cmdEnable(av: string[], config: FirewallConfig, run: Run, on: boolean): FirewallConfig {
  const w = av[0];
  if (w === undefined) { run.warn('missing keyword to enable/disable'); return config; }
  const key = 'one_pass'.startsWith(w) ? 'onePass' : 'dyn_keepalive'.startsWith(w) ? 'dynKeepalive' : null;
  if (key === null) { run.warn(`unrecognize enable/disable keyword: ${w}`); return config; }
  if (config.settings[key] === on) return config;
  return fresh(config, { settings: { ...config.settings, [key]: on } });
}

// ---- sets ---------------------------------------------------------------------------------------

function cmdSet(av: string[], config: FirewallConfig, run: Run): FirewallConfig {
  if (av.length === 0) ipfwFail(EX.USAGE, 'set needs command');
  const w = av[0]!;
  const is = (k: string): boolean => k.startsWith(w);
  const digits = (s: string | undefined): boolean => s !== undefined && /^[0-9]/.test(s);
  if (is('show')) {
    const mask = (~config.disabledSets) >>> 0;
    let out = '';
    let msg = 'disable';
    for (let i = 0; i < RESVD_SET; i++) if ((mask & (1 << i)) === 0) { out += `${msg} ${i}`; msg = ''; }
    msg = mask !== 0xffffffff ? ' enable' : 'enable';
    for (let i = 0; i < RESVD_SET; i++) if ((mask & (1 << i)) !== 0) { out += `${msg} ${i}`; msg = ''; }
    run.out(out + '\n');
    return config;
  }
  if (is('swap')) {
    const a = av[1], b = av[2];
    if (a === undefined || b === undefined) ipfwFail(EX.USAGE, 'set swap needs 2 set numbers');
    const x = Number.parseInt(a, 10), y = Number.parseInt(b, 10);
    if (!digits(a) || x > RESVD_SET) ipfwFail(EX.DATAERR, `invalid set number ${a}`);
    if (!digits(b) || y > RESVD_SET) ipfwFail(EX.DATAERR, `invalid set number ${b}`);
    const rules = config.rules.map((r) => isDefault(r) ? r : r.set === x ? { ...r, set: y } : r.set === y ? { ...r, set: x } : r);
    return fresh(config, { rules });
  }
  if (is('move')) {
    let k = 1;
    let ruleMove = false;
    if (av[k] !== undefined && 'rule'.startsWith(av[k]!)) { ruleMove = true; k++; }
    const src = av[k], to = av[k + 1], dst = av[k + 2];
    if (src === undefined || to === undefined || dst === undefined || av[k + 3] !== undefined || !'to'.startsWith(to)) {
      ipfwFail(EX.USAGE, 'syntax: set move [rule] X to Y');
    }
    const n = Number.parseInt(src, 10), target = Number.parseInt(dst, 10);
    if (!digits(src) || (!ruleMove && n > RESVD_SET) || (ruleMove && n >= DEFAULT_RULE)) ipfwFail(EX.DATAERR, `invalid source number ${src}`);
    if (!digits(dst) || target > RESVD_SET) ipfwFail(EX.DATAERR, `invalid dest. set ${to}`);
    const rules = config.rules.map((r) => isDefault(r) ? r : (ruleMove ? r.number === n : r.set === n) ? { ...r, set: target } : r);
    return fresh(config, { rules });
  }
  if (is('disable') || is('enable')) {
    let which = is('enable') ? 1 : 0;
    const masks = [0, 0];
    for (const word of av.slice(1)) {
      if (digits(word)) {
        const i = Number.parseInt(word, 10);
        if (i > RESVD_SET) ipfwFail(EX.DATAERR, `invalid set number ${i}`);
        masks[which] = (masks[which]! | (1 << i)) >>> 0;
      } else if ('disable'.startsWith(word)) which = 0;
      else if ('enable'.startsWith(word)) which = 1;
      else ipfwFail(EX.DATAERR, `invalid set command ${word}`);
    }
    if ((masks[0]! & masks[1]!) !== 0) ipfwFail(EX.DATAERR, 'cannot enable and disable the same set');
    // Set 31 (the default rule's) is never disabled.
    const disabledSets = ((config.disabledSets | masks[0]!) & ~masks[1]! & ~(1 << RESVD_SET)) >>> 0;
    if (disabledSets === config.disabledSets) return config;
    return fresh(config, { disabledSets });
  }
  return ipfwFail(EX.USAGE, `invalid set command ${w}`);
}

// ---- tables -------------------------------------------------------------------------------------

const TABLE_CMDS = ['add', 'delete', 'create', 'destroy', 'flush', 'modify', 'swap', 'info', 'detail', 'list', 'lookup', 'atomic', 'lock', 'unlock'];

/** match_token_relaxed + get_token: a unique prefix; ipfw reports every miss as "ambiguous". */
function relaxedToken(list: readonly string[], word: string, what: string): string {
  const hits = word === '' ? [] : list.filter((k) => k.startsWith(word));
  if (hits.length !== 1) ipfwFail(EX.USAGE, `ambiguous ${what} ${word}`);
  return hits[0]!;
}

/** A table key parsed for a table type: the text `list` prints, and its sort key. */
interface ParsedKey { key: string; sort: [number, ...number[]] }

function parseKey(type: TableType, arg: string): ParsedKey {
  if (type === 'addr') {
    const slash = arg.indexOf('/');
    const host = slash < 0 ? arg : arg.slice(0, slash);
    const lenText = arg.slice(slash + 1);
    // digits only: '/abc' was read as /0 (every address)
    const len = slash < 0 ? null : /^[0-9]+$/.test(lenText) ? Number(lenText) : 999;
    const v4 = /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host) ? inetAton(host) : null;
    if (v4 !== null) {
      if (len !== null && len > 32) ipfwFail(EX.DATAERR, `bad IPv4 mask width: ${arg.slice(slash + 1)}`);
      const m = len ?? 32;
      const mask = m === 0 ? 0 : (0xffffffff << (32 - m)) >>> 0;
      const base = (v4 & mask) >>> 0;
      // Listed as FreeBSD's radix walk goes: by address, the longer prefix first for the same address.
      return { key: `${inetNtoa(base)}/${m}`, sort: [4, base, 32 - m] };
    }
    const v6 = inetPton6(host);
    if (v6 !== null) {
      if (v6.slice(0, 6).every((x) => x === 0) && (v6[6] !== 0 || v6[7]! > 1)) ipfwFail(EX.DATAERR, 'Use IPv4 instead of v4-compatible');
      if (len !== null && len > 128) ipfwFail(EX.DATAERR, `bad IPv6 mask width: ${arg.slice(slash + 1)}`);
      const m = len ?? 128;
      const masked = v6.map((w, k) => { const bits = Math.max(0, Math.min(16, m - 16 * k)); return bits === 0 ? 0 : w & ((0xffff << (16 - bits)) & 0xffff); });
      return { key: `${inetNtop6(masked)}/${m}`, sort: [6, ...masked, 128 - m] };
    }
    const named = hostV4(host);
    if (named === null) ipfwFail(EX.NOHOST, `hostname \`\`${host}'' unknown`);
    return { key: `${inetNtoa(named)}/32`, sort: [4, named, 0] };
  }
  if (type === 'number') {
    if (!/^-?[0-9]+$/.test(arg)) ipfwFail(EX.DATAERR, `Invalid number: ${arg}`);
    // 32 bits (ipfw wrapped 4294967296 to 0; a negative key read back as its 32-bit value)
    const big = Number(arg);
    if (big > 0xffffffff || big < -0x80000000) outOfRange('table key', arg, '0..4294967295');
    const n = big >>> 0;
    return { key: String(n), sort: [0, n] };
  }
  const name = arg.slice(0, 15);
  return { key: name, sort: [0] };
}

/** Sort keys of entries already parsed once (binary searches compare the same entries often). */
const sortKeys = new WeakMap<TableEntry, number[]>();

function sortKey(type: TableType, e: TableEntry): number[] {
  let k = sortKeys.get(e);
  if (k === undefined) { k = parseKey(type, e.key).sort; sortKeys.set(e, k); }
  return k;
}

function compareEntries(type: TableType, a: TableEntry, b: TableEntry): number {
  if (type === 'iface') return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
  const ka = sortKey(type, a), kb = sortKey(type, b);
  for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
    const d = (ka[i] ?? 0) - (kb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Legacy table values: a number (base 0), a dotted quad, or a hosts-file name. */
function parseValue(arg: string): number {
  const n = strtoul(arg);
  if (n.used === arg.length && arg.length > 0) return n.value <= 0xffffffff ? n.value : outOfRange('table value', arg, '0..4294967295');
  const a = inetAton(arg) ?? hostV4(arg);
  if (a !== null) return a >>> 0;
  return ipfwFail(EX.OSERR, `Unable to parse value ${arg}`);
}

function tableInfo(t: TableConfig, index: number, config: FirewallConfig): string {
  const refs = config.rules.filter((r) => r.cmds.some((c) =>
    (c.op === 'table' && c.table === t.name) || (c.op === 'lookup' && c.table === t.name) || (c.op === 'iface' && c.table === t.name))).length;
  const algo = t.type === 'addr' ? 'addr:radix' : t.type === 'number' ? 'number:array' : 'iface:array';
  return `--- table(${t.name}), set(0) ---\n kindex: ${index}, type: ${t.type}\n references: ${refs}, valtype: legacy\n` +
    ` algorithm: ${algo}\n items: ${t.entries.length}, size: ${t.entries.length}\n`;
}

function tableList(t: TableConfig): string {
  let out = `--- table(${t.name}), set(0) ---\n`;
  for (const e of t.entries) out += `${e.key} ${e.value >>> 0}\n`;
  return out;
}

function byTableName(a: TableConfig, b: TableConfig): number {
  return a.name.length - b.name.length || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

function cmdTable(av: string[], config: FirewallConfig, run: Run): FirewallConfig {
  if (av.length === 0) ipfwFail(EX.USAGE, 'table needs name');
  const name = av[0]!;
  const isAll = name === 'all';
  if (!isAll && !validTableName(name)) ipfwFail(EX.USAGE, `table name ${name} is invalid`);
  if (av.length < 2) ipfwFail(EX.USAGE, 'table needs command');
  let tcmd = relaxedToken(TABLE_CMDS, av[1]!, 'table command');
  let rest = av.slice(2);
  if (tcmd === 'atomic') {
    if (rest.length === 0) ipfwFail(EX.USAGE, 'atomic needs command');
    tcmd = relaxedToken(TABLE_CMDS, rest[0]!, 'table command');
    if (tcmd !== 'add') ipfwFail(EX.USAGE, `atomic is not compatible with ${rest[0]}`);
    rest = rest.slice(1);
  }
  if (isAll && !['list', 'info', 'detail', 'flush'].includes(tcmd)) ipfwFail(EX.USAGE, 'table name required');
  const idx = config.tables.findIndex((t) => t.name === name);
  const table = idx >= 0 ? config.tables[idx]! : null;
  const replace = (t: TableConfig | null, tables = config.tables): TableConfig[] =>
    t === null ? tables.filter((x) => x.name !== name) : tables.some((x) => x.name === t.name) ? tables.map((x) => x.name === t.name ? t : x) : [...tables, t];
  switch (tcmd) {
    case 'create': {
      let type: TableType = 'addr';
      for (let k = 0; k < rest.length;) {
        const opt = relaxedToken(['type', 'valtype', 'algo', 'limit', 'locked'], rest[k]!, 'option');
        k++;
        if (opt === 'type') {
          const v = rest[k];
          if (v === undefined) ipfwFail(EX.USAGE, 'table type required');
          if (v !== 'addr' && v !== 'iface' && v !== 'number') {
            ipfwFail(EX.USAGE, v === 'flow' ? 'table type flow is not supported by netmap-ts' : `Unknown tabletype: ${v}. Supported: addr, iface, number, flow`);
          }
          type = v;
          k++;
        } else if (opt === 'valtype') {
          const v = rest[k];
          if (v === undefined) ipfwFail(EX.USAGE, 'table value type required');
          ipfwFail(EX.USAGE, `valtype ${v} is not supported by netmap-ts (values are legacy numbers)`);
        } else if (opt === 'algo' || opt === 'limit') {
          if (rest[k] === undefined) ipfwFail(EX.USAGE, opt === 'algo' ? 'table algorithm name required' : 'limit value required');
          k++;
        }
      }
      if (table !== null) ipfwFail(EX.OSERR, 'Table creation failed: File exists');
      return fresh(config, { tables: replace({ name, type, entries: [] }) });
    }
    case 'destroy': {
      if (table === null) ipfwFail(EX.OSERR, `failed to destroy table ${name}: No such process`);
      const referenced = config.rules.some((r) => r.cmds.some((c) =>
        (c.op === 'table' || c.op === 'lookup' || c.op === 'iface') && c.table === name));
      if (referenced) ipfwFail(EX.OSERR, `failed to destroy table ${name}: Device busy`);
      return fresh(config, { tables: replace(null) });
    }
    case 'flush': {
      if (isAll) {
        if (config.tables.every((t) => t.entries.length === 0)) return config;
        return fresh(config, { tables: config.tables.map((t) => ({ ...t, entries: [] })) });
      }
      if (table === null) ipfwFail(EX.OSERR, `failed to flush table ${name} info: No such process`);
      if (table.entries.length === 0) return config;
      return fresh(config, { tables: replace({ ...table, entries: [] }) });
    }
    case 'list': case 'info': case 'detail': {
      const show = (t: TableConfig): string => tcmd === 'list' ? tableList(t) : tableInfo(t, config.tables.indexOf(t) + 1, config);
      if (isAll) { for (const t of [...config.tables].sort(byTableName)) run.out(show(t)); return config; }
      if (table === null) ipfwFail(EX.OSERR, 'failed to request table info: No such process');
      run.out(show(table));
      return config;
    }
    case 'swap': {
      const other = rest[0];
      if (other === undefined) ipfwFail(EX.USAGE, 'second table name required');
      if (!validTableName(other)) ipfwFail(EX.USAGE, `table name ${other} is invalid`);
      const t2 = config.tables.find((t) => t.name === other);
      if (table === null || t2 === undefined) ipfwFail(EX.OSERR, 'failed to swap tables: No such process');
      if (table.type !== t2.type) ipfwFail(EX.USAGE, 'Unable to swap table: check types');
      const tables = config.tables.map((t) => t.name === name ? { ...t, entries: t2.entries } : t.name === other ? { ...t, entries: table.entries } : t);
      return fresh(config, { tables });
    }
    case 'lookup': {
      const key = rest[0];
      if (key === undefined) ipfwFail(EX.USAGE, 'address required');
      if (table === null) ipfwFail(EX.UNAVAILABLE, `Table ${name} not found`);
      const hit = lookupEntry(table, key);
      if (hit === null) ipfwFail(EX.UNAVAILABLE, `Entry ${key} not found`);
      run.out(`${hit.key} ${hit.value >>> 0}\n`);
      return config;
    }
    case 'add': case 'delete': {
      const add = tcmd === 'add';
      if (rest.length === 0) ipfwFail(EX.USAGE, 'address required');
      let t = table;
      let created = false;
      if (t === null) {
        if (!add) ipfwFail(EX.DATAERR, `Table ${name} does not exist`);
        const host = rest[0]!.split('/')[0]!;
        if (!(/^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host) && inetAton(host) !== null) && inetPton6(host) === null) {
          ipfwFail(EX.USAGE, `Table ${name} does not exist, cannot guess key '${host}' type`);
        }
        run.stderr += `DEPRECATED: inserting data info non-existent table ${name}. (auto-created)\n`;
        t = { name, type: 'addr', entries: [] };
        created = true;
      }
      // Entries stay sorted: each change is a binary search and one splice on a private copy
      // (inside a rules file, tables the file already copied are edited in place: a failing file
      // discards them all, and a 100k-line table file stays linear).
      const owned = ownedTables !== null && ownedTables.has(t);
      const entries = owned ? t.entries : [...t.entries];
      const type = t.type;
      const find = (key: string): { at: number; found: boolean } => {
        const probe = { key, value: 0 };
        let lo = 0, hi = entries.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          const c = compareEntries(type, entries[mid]!, probe);
          if (c === 0) return { at: mid, found: true };
          if (c < 0) lo = mid + 1; else hi = mid;
        }
        return { at: lo, found: false };
      };
      const lines: string[] = [];
      for (let k = 0; k < rest.length;) {
        const key = parseKey(t.type, rest[k]!).key;
        k++;
        let value = 0;
        if (add && k < rest.length) { value = parseValue(rest[k]!); k++; }
        const { at, found } = find(key);
        if (add) {
          if (found && !run.flags.quiet) {
            run.out(`exists: ${key} ${value}\n`);
            ipfwFail(EX.OSERR, 'Adding record failed: record already exists');
          }
          lines.push(`${found ? 'updated' : 'added'}: ${key} ${value}`);
          if (found) entries[at] = { key, value }; else entries.splice(at, 0, { key, value });
        } else {
          if (!found) {
            run.out(`notfound: ${key} 0\n`);
            ipfwFail(EX.OSERR, 'Deleting record failed: record not found');
          }
          lines.push(`deleted: ${key} ${entries[at]!.value >>> 0}`);
          entries.splice(at, 1);
        }
      }
      for (const l of lines) run.out(l + '\n');
      const next = owned ? t : { ...t, entries };
      if (ownedTables !== null) ownedTables.add(next);
      return fresh(config, { tables: created ? [...config.tables, next] : replace(next) });
    }
    default:
      return ipfwFail(EX.USAGE, `table ${tcmd} is not supported by netmap-ts`);
  }
}

/** `table T lookup KEY`: the most specific prefix for address tables, the exact key otherwise. */
function lookupEntry(t: TableConfig, key: string): TableEntry | null {
  if (t.type !== 'addr') {
    const k = parseKey(t.type, key).key;
    return t.entries.find((e) => e.key === k) ?? null;
  }
  const host = parseKey('addr', key);
  let best: TableEntry | null = null;
  let bestLen = -1;
  for (const e of t.entries) {
    const p = parseKey('addr', e.key);
    if (p.sort[0] !== host.sort[0]) continue;
    const len = Number(e.key.slice(e.key.indexOf('/') + 1));
    const width = host.sort[0] === 4 ? 1 : 8;
    let inside = true;
    for (let w = 0; w < width && inside; w++) {
      const bits = host.sort[0] === 4 ? Math.max(0, Math.min(32, len)) : Math.max(0, Math.min(16, len - 16 * w));
      const size = host.sort[0] === 4 ? 32 : 16;
      const mask = bits === 0 ? 0 : Number((BigInt(2 ** bits - 1) << BigInt(size - bits)));
      const a = host.sort[1 + w]!, b = p.sort[1 + w]!;
      if ((Number(BigInt(a) & BigInt(mask))) !== b) inside = false;
    }
    if (inside && len > bestLen) { best = e; bestLen = len; }
  }
  return best;
}

// ---- rules files --------------------------------------------------------------------------------

/** Splits a line like a shell: words, '...' and "..." quotes (no escapes inside single quotes). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'" || ch === '"') {
      const end = line.indexOf(ch, i + 1);
      if (end < 0) ipfwFail(EX.USAGE, 'unterminated quote');
      cur += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (ch === '\\' && i + 1 < line.length) {
      cur += line[i + 1]!;
      inWord = true;
      i++;
    } else if (WHITESPACE.test(ch)) {
      if (inWord) { words.push(cur); cur = ''; inWord = false; }
    } else if (ch === '#' && !inWord) {
      break;
    } else { cur += ch; inWord = true; }
  }
  if (inWord) words.push(cur);
  return words;
}

/** Tables copied by the rules file being run (runFile sets it; null otherwise). */
let ownedTables: WeakSet<TableConfig> | null = null;

/** Side effects recorded while a file runs, replayed only if every line succeeds. */
class DeferredAccess implements FirewallAccess {
  readonly log: Array<() => void> = [];
  /** The file's own dummynet (real.dummynetCheck), made at its first dummynet line. */
  private check: NonNullable<FirewallAccess['dummynet']> | null = null;
  constructor(private readonly real: FirewallAccess, private readonly start: FirewallConfig) {}
  counters(slot: number): RuleCounters { return this.real.counters(slot); }
  zeroCounters(slot: number): void { this.log.push(() => this.real.zeroCounters(slot)); }
  resetLog(slot: number): void { this.log.push(() => this.real.resetLog(slot)); }
  states(includeExpired: boolean): DynStateView[] { return this.real.states(includeExpired); }
  removeStatesOf(slot: number): void { this.log.push(() => this.real.removeStatesOf(slot)); }
  flushStates(): void { this.log.push(() => this.real.flushStates()); }
  get dummynet(): FirewallAccess['dummynet'] {
    const real = this.real.dummynet, makeCheck = this.real.dummynetCheck;
    if (real === undefined || makeCheck === undefined) return real;
    return (argv, config, testOnly) => {
      this.check ??= makeCheck(this.start);
      const r = this.check(argv, config, testOnly);
      // the same line on the real one at the end: it holds what the copy held before this line
      if (r.status === EX.OK && !testOnly) this.log.push(() => { real(argv, config, false); });
      return r;
    };
  }
}

/**
 * A rules file: one command per line, `#` comments, blank lines, optional leading `ipfw` and
 * flags. All or nothing: the first failing line (`Line N: <message>`) leaves the config as it was.
 */
export function runFile(text: string, config: FirewallConfig, access: FirewallAccess): CommandResult {
  const outer = ownedTables;
  ownedTables = new WeakSet();
  try {
    return runLines(text, config, access);
  } finally {
    ownedTables = outer;
  }
}

function runLines(text: string, config: FirewallConfig, access: FirewallAccess): CommandResult {
  const deferred = new DeferredAccess(access, config);
  let current = config;
  let stdout = '';
  let stderr = '';
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    let words: string[];
    try {
      words = shellWords(lines[n]!);
    } catch (e) {
      if (!(e instanceof IpfwError)) throw e;
      return { status: e.status, stdout: '', stderr: `Line ${n + 1}: ipfw: ${e.text}\n`, config };
    }
    if (words.length > 0 && (words[0] === 'ipfw' || words[0]!.endsWith('/ipfw'))) words = words.slice(1);
    if (words.length === 0) continue;
    const r = runCommand(words, current, deferred, { tty: false });
    stdout += r.stdout;
    if (r.status !== EX.OK) {
      const message = r.stderr.trimEnd().split('\n').filter((l) => l !== '').pop() ?? `exit status ${r.status}`;
      return { status: r.status, stdout: '', stderr: `Line ${n + 1}: ${message}\n`, config };
    }
    stderr += r.stderr;
    current = r.config;
  }
  for (const effect of deferred.log) effect();
  return { status: EX.OK, stdout, stderr, config: current };
}
