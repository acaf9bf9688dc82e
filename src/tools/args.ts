/**
 * The tools' one argument parser, getopt-like. Each tool declares its options in one table (a
 * ToolSpec), which both drives the parser and produces its `--help` text:
 *
 * - short options, alone (`-v`), clustered (`-vv`, `-zZ`), with a value attached (`-n100`) or in
 *   the next word (`-n 100`); a value-taking option ends its cluster (`-vn100`);
 * - long options, `--json`, `--spin 200`, `--spin=200`;
 * - `--help` always, and `-h` unless the tool declares `-h` itself (vale-ctl's attach);
 * - operands; with `permute` options may also follow them (glibc getopt, tcpdump), otherwise the
 *   first operand ends the options (POSIX getopt, ipfw). `--` always ends them.
 *
 * A bad argument is a UsageError (a NetmapError EINVAL). runTool() prints it as `netmap TOOL:
 * message` followed by the usage, on stderr, and exits EX_USAGE (64, sysexits.h) for every tool.
 */
import { NetmapError } from '../errors.js';

/** sysexits.h's EX_USAGE: the status of every tool for a bad argument. */
export const EX_USAGE = 64;

/** One option of a tool. Its key (for ParsedArgs' accessors) is `short`, else `long`. */
export interface OptionSpec {
  /** The letter of `-x`. */
  readonly short?: string;
  /** The name of `--name`. */
  readonly long?: string;
  /** The value's name in the help (`port`, `SECS`); absent for an option that takes no value. */
  readonly value?: string;
  /** The help text; a '\n' starts a line indented under the first. */
  readonly help: string;
  /** May be given more than once (flags then count, values accumulate); otherwise a repeat is an error. */
  readonly many?: boolean;
}

export interface ToolSpec {
  /** The tool's name under `netmap` ('pkt-gen'). */
  readonly name: string;
  /** The usage lines, without `usage: netmap NAME ` (the first) and `       netmap NAME ` (the others). */
  readonly synopsis: readonly string[];
  readonly options: readonly OptionSpec[];
  /** Help lines printed before the options (operands' meaning...). */
  readonly preamble?: readonly string[];
  /** Help lines printed after the options. */
  readonly epilogue?: readonly string[];
  /** Options may follow operands (GNU getopt's permutation, as tcpdump on Linux allows). */
  readonly permute?: boolean;
}

/** A bad argument: the message names it; runTool prints it with the tool's usage and exits EX_USAGE. */
export class UsageError extends NetmapError {
  /** The sentence alone (the message ends with ' (EINVAL)', as every NetmapError's). */
  readonly reason: string;
  constructor(reason: string) {
    super('EINVAL', reason);
    this.name = 'UsageError';
    this.reason = reason;
  }
}

/** Fails with a UsageError. */
export function usageFail(message: string): never {
  throw new UsageError(message);
}

/** How a numeric option's value is read. */
export interface NumberRule {
  readonly min: number;
  readonly max: number;
  /** Fractions allowed (default: integers only). */
  readonly fraction?: boolean;
  /** k/M/G suffixes (×1e3, ×1e6, ×1e9) allowed, as pkt-gen's -n and -R take them; without
   * `fraction` the value must still come out whole ('1.5k' yes, '1.5' no). */
  readonly units?: boolean;
}

const UNIT: Record<string, number> = { '': 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6, g: 1e9, G: 1e9 };

/** Reads `text` as the value of `what` under `rule`; a UsageError names both when it is not one. */
export function parseNumber(text: string, what: string, rule: NumberRule): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)$/.exec(text);
  const integerOnly = rule.fraction !== true && rule.units !== true;
  if (m === null || (rule.units !== true && m[2] !== '') || (integerOnly && m[1]!.includes('.'))) {
    usageFail(`${what}: '${text}' is not ${integerOnly ? 'an integer' : rule.units === true ? 'a number (k/M/G suffixes allowed)' : 'a number'}`);
  }
  let v = Number(m[1]) * UNIT[m[2]!]!;
  if (rule.fraction !== true) {
    // '1.5k' is 1500, but '1.5' (or '1.0005k') is not a whole count: refuse it rather than round
    const whole = Math.round(v);
    if (Math.abs(v - whole) > 1e-9 * Math.max(1, whole)) usageFail(`${what}: '${text}' is not a whole number`);
    v = whole;
  }
  if (!(v >= rule.min && v <= rule.max)) usageFail(`${what}: ${text} is out of range (${rule.min}..${rule.max})`);
  return v;
}

interface Given { readonly key: string; readonly value: string }

/** The options and operands of one command line, read against a ToolSpec. */
export class ParsedArgs {
  /** Operands in order. */
  readonly operands: string[] = [];
  /** Every option given, in order (flags with value ''). */
  readonly given: Given[] = [];
  /** `--help` (or `-h` where it is not the tool's own) was given. */
  help = false;

  constructor(private readonly keys: ReadonlyMap<string, string>) {}

  private key(name: string): string {
    const k = this.keys.get(name);
    if (k === undefined) throw new Error(`no option '${name}' in the tool's table`); // a programming error
    return k;
  }

  /** Whether option `name` (its letter or long name) was given. */
  has(name: string): boolean {
    return this.count(name) > 0;
  }

  /** How many times option `name` was given (`-vv`: 2). */
  count(name: string): number {
    const k = this.key(name);
    let n = 0;
    for (const g of this.given) if (g.key === k) n++;
    return n;
  }

  /** The values of option `name`, in order. */
  values(name: string): string[] {
    const k = this.key(name);
    return this.given.filter((g) => g.key === k).map((g) => g.value);
  }

  /** The value of option `name` (the last one for an option given many times), or undefined. */
  value(name: string): string | undefined {
    return this.values(name).at(-1);
  }

  /** The value of option `name` read as a number under `rule`, or `def` when it is absent. */
  number(name: string, def: number, rule: NumberRule): number {
    const v = this.value(name);
    return v === undefined ? def : parseNumber(v, optionLabel(name), rule);
  }
}

function optionLabel(name: string): string {
  return name.length === 1 ? `-${name}` : `--${name}`;
}

/** Reads `argv` against `spec`. Throws UsageError on an unknown option, a missing value or a repeat. */
export function parseCommandLine(spec: ToolSpec, argv: readonly string[]): ParsedArgs {
  const byShort = new Map<string, OptionSpec>(), byLong = new Map<string, OptionSpec>(), keys = new Map<string, string>();
  for (const o of spec.options) {
    const key = o.short ?? o.long;
    if (key === undefined) throw new Error(`${spec.name}: an option without a name`);
    if (o.short !== undefined) { byShort.set(o.short, o); keys.set(o.short, key); }
    if (o.long !== undefined) { byLong.set(o.long, o); keys.set(o.long, key); }
  }
  const p = new ParsedArgs(keys);
  const add = (o: OptionSpec, value: string): void => {
    const key = o.short ?? o.long!;
    if (o.many !== true && o.value !== undefined && p.given.some((g) => g.key === key)) usageFail(`option ${optionLabel(key)} given twice`);
    p.given.push({ key, value });
  };
  let optionsEnded = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (optionsEnded || arg === '-' || !arg.startsWith('-')) {
      p.operands.push(arg);
      if (spec.permute !== true) optionsEnded = true;
      continue;
    }
    if (arg === '--') { optionsEnded = true; continue; }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      if (name === 'help') { p.help = true; return p; }
      const o = byLong.get(name);
      if (o === undefined) usageFail(`unknown option '--${name}'`);
      if (o.value === undefined) {
        if (eq >= 0) usageFail(`option --${name} takes no value`);
        add(o, '');
      } else {
        const v = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
        if (v === undefined) usageFail(`option --${name} needs a value`);
        add(o, v);
      }
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const c = arg[j]!;
      const o = byShort.get(c);
      if (o === undefined) {
        if (c === 'h') { p.help = true; return p; }
        usageFail(arg.length === 2 ? `unknown option '${arg}'` : `unknown option '-${c}' in '${arg}'`);
      }
      if (o.value === undefined) { add(o, ''); continue; }
      const v = j + 1 < arg.length ? arg.slice(j + 1) : argv[++i];
      if (v === undefined) usageFail(`option -${c} needs a value`);
      add(o, v);
      break;
    }
  }
  return p;
}

/** The tool's usage lines (`usage: netmap NAME ...`). */
export function usageText(spec: ToolSpec): string {
  return spec.synopsis.map((s, k) => `${k === 0 ? 'usage:' : '      '} netmap ${spec.name} ${s}`).join('\n');
}

/** The tool's `--help`: usage, preamble, one entry per option of the table, epilogue. */
export function helpText(spec: ToolSpec): string {
  const label = (o: OptionSpec): string => {
    const names = [o.short !== undefined ? `-${o.short}` : '', o.long !== undefined ? `--${o.long}` : ''].filter((n) => n !== '').join(', ');
    return o.value === undefined ? names : `${names} ${o.value}`;
  };
  const ownH = spec.options.some((o) => o.short === 'h');
  const labels = [...spec.options.map(label), ownH ? '--help' : '-h, --help'];
  const width = Math.min(16, Math.max(...labels.map((l) => l.length)));
  const lines = [usageText(spec), ...(spec.preamble ?? []).map((l) => `  ${l}`)];
  spec.options.forEach((o, k) => {
    const [first, ...more] = o.help.split('\n');
    const l = labels[k]!;
    if (l.length > width) lines.push(`  ${l}`, `  ${''.padEnd(width)}  ${first}`);
    else lines.push(`  ${l.padEnd(width)}  ${first}`);
    for (const m of more) lines.push(`  ${''.padEnd(width)}  ${m}`);
  });
  lines.push(`  ${labels.at(-1)!.padEnd(width)}  this help`);
  for (const l of spec.epilogue ?? []) lines.push(`  ${l}`);
  return lines.join('\n');
}

/**
 * Parses `argv` against `spec` and turns it into the tool's arguments with `interpret`; returns
 * null for --help. Any NetmapError thrown while interpreting (a UsageError, a library parser's
 * EINVAL) is a usage error: it comes out as a UsageError.
 */
export function parseTool<A>(spec: ToolSpec, argv: readonly string[], interpret: (p: ParsedArgs) => A): A | null {
  const p = parseCommandLine(spec, argv);
  if (p.help) return null;
  try {
    return interpret(p);
  } catch (e) {
    if (e instanceof UsageError || !(e instanceof NetmapError)) throw e;
    throw new UsageError(e.message.replace(/ \([A-Z0-9]+\)$/, ''));
  }
}

/**
 * A tool's main(): parses (`--help` prints the help, exit 0; a bad argument prints the message
 * and the usage on stderr, exit EX_USAGE), then runs. A NetmapError from `run` is printed as
 * `netmap TOOL: message` with exit status 1; `run` returns the status otherwise.
 */
export async function runTool<A>(spec: ToolSpec, argv: readonly string[], interpret: (p: ParsedArgs) => A, run: (args: A) => Promise<number>): Promise<number> {
  let args: A | null;
  try {
    args = parseTool(spec, argv, interpret);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`netmap ${spec.name}: ${e.reason}\n${usageText(spec)}\n(netmap ${spec.name} --help for the options)`);
    return EX_USAGE;
  }
  if (args === null) {
    console.log(helpText(spec));
    return 0;
  }
  try {
    return await run(args);
  } catch (e) {
    if (!(e instanceof NetmapError)) throw e;
    console.error(`netmap ${spec.name}: ${e.message}`);
    return 1;
  }
}
