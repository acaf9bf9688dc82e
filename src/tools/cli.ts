#!/usr/bin/env node
/**
 * `netmap <tool> [options]`: one command, one subcommand per tool. Each tool lives in its own
 * module under src/tools/ and exports `main(argv): Promise<number>` (the exit status); the tools
 * stay thin and call the library for everything they do.
 */
import { NetmapError } from '../errors.js';
import { EX_USAGE } from './args.js';

interface ToolEntry { module: string; summary: string }

const TOOLS: Record<string, ToolEntry> = {
  'demo': { module: './demo.js', summary: 'the main job: pkt-gen tx and rx across a fresh VALE switch, printing rates' },
  'pkt-gen': { module: './pkt-gen.js', summary: 'packet generator and sink (tx, rx, ping, pong, txseq, rxseq)' },
  'vale-ctl': { module: './vale-ctl.js', summary: 'manage VALE switches: create, remove, attach, detach, list ports' },
  'bridge': { module: './bridge.js', summary: 'forward between two ports, both ways' },
  'lb': { module: './lb.js', summary: 'spread flows of one port over pipes by a symmetric 5-tuple hash' },
  'dump': { module: './dump.js', summary: 'tcpdump-like capture on a port or a pcap file, with filters' },
  'nmreplay': { module: './nmreplay.js', summary: 'replay a pcap file onto a port' },
  'extcap': { module: './extcap.js', summary: 'Wireshark/tshark extcap: list and capture the ports in use (--install)' },
  'kipfw': { module: './kipfw.js', summary: 'the firewall daemon: ipfw + dummynet between pairs of ports' },
  'vhost-user': { module: './vhost-user.js', summary: 'serve a QEMU virtio-net device (vhost-user) on a VALE port' },
  'ipfw': { module: './ipfw.js', summary: 'manage a kipfw daemon or a VALE switch\'s firewall (ipfw(8) syntax)' },
};

function usage(): string {
  const lines = ['usage: netmap <tool> [options]   (netmap <tool> --help for its options)', '', 'tools:'];
  for (const [name, entry] of Object.entries(TOOLS)) lines.push(`  ${name.padEnd(10)} ${entry.summary}`);
  return lines.join('\n');
}

async function run(argv: string[]): Promise<number> {
  const [tool, ...rest] = argv;
  if (tool === undefined || tool === '--help' || tool === '-h' || tool === 'help') {
    if (tool === undefined) { console.error(usage()); return EX_USAGE; }
    console.log(usage());
    return 0;
  }
  const entry = TOOLS[tool];
  if (entry === undefined) {
    console.error(`netmap: unknown tool '${tool}'\n${usage()}`);
    return EX_USAGE;
  }
  let mod: { main(argv: string[]): Promise<number> };
  try {
    mod = await import(entry.module);
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      console.error(`netmap: tool '${tool}' is not available in this build`);
      return 69; // EX_UNAVAILABLE
    }
    throw e;
  }
  return mod.main(rest);
}

run(process.argv.slice(2)).then(
  (status) => { process.exitCode = status; },
  (e: unknown) => {
    if (e instanceof NetmapError) console.error(`netmap: ${e.message}`);
    else console.error(e);
    process.exitCode = 1;
  },
);
