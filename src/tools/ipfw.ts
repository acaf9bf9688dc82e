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

const USAGE = `usage: netmap ipfw [-s NAME] [-acdefnNqStT] COMMAND ...     (ipfw(8) syntax)
       netmap ipfw [-s NAME] [-q] FILE                  apply a rules file (one command a line), all or nothing
       netmap ipfw attach valeX [-D]                    plug a firewall named valeX into switch valeX's lookup
       netmap ipfw detach valeX                         unplug it (the learning bridge comes back)
  -s NAME   the firewall: a kipfw daemon's name, or a switch the firewall is attached to
            (default: $NETMAP_IPFW or 'ipfw'); must come first
commands: add, delete, list, show, flush, zero, resetlog, set, table, pipe, queue, sched
          (see src/firewall/README.md)`;

const COMMANDS = new Set(['add', 'delete', 'list', 'show', 'flush', 'zero', 'resetlog', 'set', 'table', 'pipe', 'queue', 'sched', 'enable', 'disable', 'sysctl', 'attach', 'detach']);

function print(r: ControlReply): number {
  if (r.stdout !== '') process.stdout.write(r.stdout);
  if (r.stderr !== '') process.stderr.write(r.stderr);
  return r.status;
}

async function confirmFlush(argv: string[]): Promise<boolean> {
  // FreeBSD asks before `flush` unless -f or -q, or when standard input is no terminal
  const flags = argv.filter((a) => /^-[a-zA-Z]+$/.test(a)).join('');
  if (!argv.includes('flush') || flags.includes('f') || flags.includes('q') || !process.stdin.isTTY) return true;
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  const answer = await new Promise<string>((r) => rl.question('Are you sure? [yn] ', r));
  rl.close();
  return /^y/i.test(answer.trim());
}

/** Runs a request on firewall `name`: through its daemon, or on its store when it has none. */
export async function request(name: string, req: ControlRequest): Promise<ControlReply> {
  if (await daemonRunning(name)) return sendControl(name, req);
  if (!FirewallStore.exists(name)) {
    return { status: 69, stdout: '', stderr: `ipfw: no firewall named '${name}': start one with 'netmap kipfw -s ${name} PORT_A PORT_B' or 'netmap ipfw attach valeX'\n` };
  }
  const { Firewall } = await import('../firewall/firewall.js');
  const { makeConfigDummynet } = await import('../firewall/dummynet-glue.js');
  const fw = Firewall.open(name);
  try {
    const dn = makeConfigDummynet(fw);
    const r = 'argv' in req ? fw.command(req.argv, dn) : fw.file(req.file, dn);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    fw.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  let name = process.env.NETMAP_IPFW || 'ipfw';
  if (argv[0] === '-s') {
    if (argv[1] === undefined) { console.error(`ipfw: option -s needs a firewall name\n${USAGE}`); return 64; }
    name = argv[1];
    argv = argv.slice(2);
  }
  if (argv.length === 0 || argv[0] === '-h' || argv[0] === '--help') {
    console.log(USAGE);
    return argv.length === 0 ? 64 : 0;
  }
  try {
    if (argv[0] === 'attach' || argv[0] === 'detach') {
      const { attachFirewall, detachFirewall } = await import('../firewall/attach.js');
      const switchName = argv[1];
      if (switchName === undefined || argv.length > 3 || (argv[2] !== undefined && argv[2] !== '-D')) { console.error(`ipfw: usage: ${argv[0]} valeX${argv[0] === 'attach' ? ' [-D]' : ''}`); return 64; }
      if (argv[0] === 'attach') await attachFirewall(switchName, { defaultAccept: argv[2] !== '-D' });
      else await detachFirewall(switchName);
      return 0;
    }
    // a rules file: the last word names an existing file and everything before it is flags
    const last = argv[argv.length - 1]!;
    if (argv.slice(0, -1).every((a) => /^-[a-zA-Z]+$/.test(a)) && !/^-/.test(last) && !COMMANDS.has(last) && fs.existsSync(last) && fs.statSync(last).isFile()) {
      const r = await request(name, { file: fs.readFileSync(last, 'utf8') });
      const quiet = argv.slice(0, -1).join('').includes('q');
      return print(quiet ? { ...r, stdout: '' } : r);
    }
    if (!(await confirmFlush(argv))) return 0;
    const flags = argv.filter((a) => /^-[a-zA-Z]+$/.test(a)).join('');
    const sent = argv.includes('flush') && !flags.includes('f') && !flags.includes('q') ? ['-f', ...argv] : argv;
    return print(await request(name, { argv: sent }));
  } catch (e) {
    if (e instanceof NetmapError) {
      console.error(`ipfw: ${e.message}`);
      // sysexits: a bad argument is a usage error, a missing firewall or switch unavailable
      return e.code === 'EINVAL' ? 64 : e.code === 'ENXIO' || e.code === 'ENOENT' ? 69 : 71;
    }
    throw e;
  }
}
