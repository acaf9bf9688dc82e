/**
 * `netmap ipfw [-s NAME] COMMAND ...`: ipfw(8) for netmap-ts firewalls. Sends the command to the
 * kipfw daemon named NAME over its control socket; a firewall plugged into a VALE switch (`netmap
 * ipfw attach valeX`, then `-s valeX`) has no daemon, and its store is edited directly. The
 * output and exit status are ipfw's. `netmap ipfw FILE` applies a rules file, all or nothing.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { NetmapError } from '../errors.js';
import { daemonRunning, sendControl, type ControlReply, type ControlRequest } from '../firewall/control.js';
import { FirewallStore } from '../firewall/store.js';
import { EX_USAGE, runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';

const IPFW: ToolSpec = {
  name: 'ipfw',
  synopsis: [
    '[-s NAME] [-acdefnNqStT] COMMAND ...     (ipfw(8) syntax)',
    '[-s NAME] [-q] FILE                  apply a rules file (one command a line), all or nothing',
    'attach valeX [-D]                    plug a firewall named valeX into switch valeX\'s lookup',
    'detach valeX                         unplug it (the learning bridge comes back)',
  ],
  preamble: [
    '-s NAME   as the first option: the firewall, a kipfw daemon\'s name or a switch the firewall',
    '          is attached to (default: $NETMAP_IPFW or \'ipfw\')',
  ],
  // ipfw(8)'s global options; the firewall's command interpreter (src/firewall/commands.ts) acts on them
  options: [
    { short: 'a', help: 'list: with counters, as show' },
    { short: 'c', help: 'compact output: rules as they were entered' },
    { short: 'd', help: 'list: dynamic rules too' },
    { short: 'e', help: 'list -d: expired dynamic rules too' },
    { short: 'f', help: 'flush without asking' },
    { short: 'n', help: 'check the syntax only; change nothing' },
    { short: 'N', help: 'print addresses and services by name' },
    { short: 'q', help: 'quiet: no output for add, delete, flush, zero (implies -f)' },
    { short: 's', value: 'FIELD', help: 'after the first option: sort order of dummynet listings' },
    { short: 'S', help: 'show the set of each rule' },
    { short: 't', help: 'list: last match time of each rule' },
    { short: 'T', help: 'list: last match time in seconds since the epoch' },
  ],
  epilogue: ['commands: add, delete, list, show, flush, zero, resetlog, set, table, pipe, queue, sched', '          (see src/firewall/README.md)'],
};

const COMMANDS = new Set(['add', 'delete', 'list', 'show', 'flush', 'zero', 'resetlog', 'set', 'table', 'pipe', 'queue', 'sched', 'enable', 'disable', 'sysctl', 'attach', 'detach']);

function print(r: ControlReply): number {
  if (r.stdout !== '') process.stdout.write(r.stdout);
  if (r.stderr !== '') process.stderr.write(r.stderr);
  return r.status;
}

async function confirmFlush(): Promise<boolean> {
  // FreeBSD asks before `flush` unless -f or -q, or when standard input is no terminal
  if (!process.stdin.isTTY) return true;
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  const answer = await new Promise<string>((r) => rl.question('Are you sure? [yn] ', r));
  rl.close();
  return /^y/i.test(answer.trim());
}

/** Runs a request on firewall `name`: through its daemon, or on its store when it has none. */
export async function request(name: string, req: ControlRequest): Promise<ControlReply> {
  if (await daemonRunning(name)) return sendControl(name, req);
  const { makeConfigDummynet } = await import('../firewall/dummynet-glue.js');
  if (!FirewallStore.exists(name)) {
    // As ipfw(8) parses before it asks the kernel: -n (check the syntax only) needs no firewall,
    // and a command that does not parse says so rather than that the firewall is missing
    // (tried on an empty firewall: usage, data and host-name errors are the command's own; a rule
    // not found, or any other error of content, needs the real firewall to tell).
    const { runCommand, runFile, emptyConfig, NO_TRAFFIC } = await import('../firewall/commands.js');
    const { EX } = await import('../firewall/parse.js');
    const access = { ...NO_TRAFFIC, dummynet: makeConfigDummynet() };
    const dry = 'argv' in req ? runCommand(req.argv, emptyConfig(true), access) : runFile(req.file, emptyConfig(true), access);
    if (dry.testOnly === true || dry.status === EX.USAGE || dry.status === EX.DATAERR || dry.status === EX.NOHOST) return { status: dry.status, stdout: dry.stdout, stderr: dry.stderr };
    return { status: 69, stdout: '', stderr: `ipfw: no firewall named '${name}': start one with 'netmap kipfw -s ${name} PORT_A PORT_B' or 'netmap ipfw attach valeX'\n` };
  }
  const { Firewall } = await import('../firewall/firewall.js');
  const fw = Firewall.open(name);
  try {
    const dn = makeConfigDummynet();
    const r = 'argv' in req ? fw.command(req.argv, dn) : fw.file(req.file, dn);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    fw.close();
  }
}

interface Args {
  name: string;
  /** The words after `-s NAME`, as ipfw's interpreter reads them (global options first). */
  words: string[];
  /** attach/detach valeX [-D]; a rules file; or a command. */
  what: { attach: boolean; switchName: string; deny: boolean } | { file: string } | { command: string };
  quiet: boolean;
  force: boolean;
}

function toArgs(name: string, words: string[], p: ParsedArgs): Args {
  const [command, ...rest] = p.operands;
  if (command === undefined) usageFail('a command or a rules file is needed');
  const base = { name, words, quiet: p.has('q'), force: p.has('f') || p.has('q') };
  if (command === 'attach' || command === 'detach') {
    const switchName = rest[0];
    if (switchName === undefined || rest.length > 2 || (rest[1] !== undefined && (command === 'detach' || rest[1] !== '-D'))) {
      usageFail(`${command} valeX${command === 'attach' ? ' [-D]' : ''}`);
    }
    return { ...base, what: { attach: command === 'attach', switchName, deny: rest[1] === '-D' } };
  }
  // a rules file: one word naming an existing file after the global options
  if (rest.length === 0 && !COMMANDS.has(command) && fs.existsSync(command) && fs.statSync(command).isFile()) {
    return { ...base, what: { file: command } };
  }
  return { ...base, what: { command } };
}

export async function main(argv: string[]): Promise<number> {
  let name = process.env.NETMAP_IPFW || 'ipfw';
  if (argv[0] === '-s' && argv[1] !== undefined) {
    name = argv[1];
    argv = argv.slice(2);
  }
  const words = argv;
  return runTool(IPFW, words, (p) => toArgs(name, words, p), run);
}

async function run(args: Args): Promise<number> {
  const { name, what } = args;
  try {
    if ('attach' in what) {
      const { attachFirewall, detachFirewall } = await import('../firewall/attach.js');
      if (what.attach) await attachFirewall(what.switchName, { defaultAccept: !what.deny });
      else await detachFirewall(what.switchName);
      return 0;
    }
    if ('file' in what) {
      const r = await request(name, { file: fs.readFileSync(what.file, 'utf8') });
      return print(args.quiet ? { ...r, stdout: '' } : r);
    }
    // as before the table: any command with a flush in it (flush, pipe flush, table N flush)
    const flush = args.words.includes('flush');
    if (flush && !args.force && !(await confirmFlush())) return 0;
    // the daemon has no terminal to ask on: a confirmed flush goes as -f
    return print(await request(name, { argv: flush && !args.force ? ['-f', ...args.words] : args.words }));
  } catch (e) {
    if (e instanceof NetmapError) {
      console.error(`ipfw: ${e.message}`);
      // sysexits: a bad argument is a usage error, a missing firewall or switch unavailable
      return e.code === 'EINVAL' ? EX_USAGE : e.code === 'ENXIO' || e.code === 'ENOENT' ? 69 : 71;
    }
    throw e;
  }
}
