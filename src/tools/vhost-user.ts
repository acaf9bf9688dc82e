/**
 * `netmap vhost-user --socket PATH valeX:vmN`: serves a QEMU virtio-net device (vhost-user) on a
 * VALE port until SIGINT/SIGTERM. The work is done by src/vhost.
 */
import { serveVhostUser } from '../vhost/index.js';
import { parseTool, runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';

const SPEC: ToolSpec = {
  name: 'vhost-user',
  synopsis: ['--socket PATH [-v] [--duration SECS] valeX:PORT'],
  // options may also follow the port (glibc getopt), as in `... valeX:PORT --duration 5`
  permute: true,
  preamble: [
    'valeX:PORT  the VALE port the guest joins (made once QEMU has negotiated the features)',
    'QEMU side: -chardev socket,id=c0,path=PATH,reconnect=1 -netdev vhost-user,id=n0,chardev=c0',
    '           -device virtio-net-pci,netdev=n0,vectors=0 (vectors=0 under TCG)',
    '           -object memory-backend-memfd,id=mem,size=MEM,share=on -machine memory-backend=mem',
  ],
  options: [
    { short: 's', long: 'socket', value: 'PATH', help: 'the unix socket QEMU connects to (a stale one is replaced)' },
    { short: 'v', help: 'print the counters every second' },
    { long: 'duration', value: 'SECS', help: 'stop after SECS seconds (default: until SIGINT/SIGTERM)' },
  ],
};

interface Args { socket: string; port: string; verbose: boolean; duration: number }

function toArgs(p: ParsedArgs): Args {
  const socket = p.value('socket');
  if (socket === undefined) usageFail('missing --socket PATH');
  if (p.operands.length !== 1) usageFail(p.operands.length === 0 ? 'missing the VALE port (valeX:PORT)' : `one port only, not '${p.operands.join(' ')}'`);
  return { socket, port: p.operands[0]!, verbose: p.has('v'), duration: p.number('duration', 0, { min: 0, max: 1e9, fraction: true }) };
}

export function parseArgs(argv: string[]): Args | null {
  return parseTool(SPEC, argv, toArgs);
}

export async function main(argv: string[]): Promise<number> {
  return runTool(SPEC, argv, toArgs, async (a) => {
    const backend = serveVhostUser({ socket: a.socket, port: a.port, onLog: (l) => console.log(`vhost-user ${a.port}: ${l}`) });
    let stop: () => void = () => {};
    const stopped = new Promise<void>((r) => { stop = r; });
    // `on`, not `once`, and kept until the backend is closed: a second SIGINT (timeout(1) signals
    // the child and then its process group; a user pressing ^C twice) during the asynchronous
    // close killed the process and left the socket behind. Before the line saying it listens: a
    // signal sent on seeing it would kill the process otherwise.
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    console.log(`vhost-user ${a.port}: listening on ${a.socket}`);
    const timers: NodeJS.Timeout[] = [];
    try {
      if (a.duration > 0) timers.push(setTimeout(stop, a.duration * 1000));
      if (a.verbose) timers.push(setInterval(() => console.log(JSON.stringify({ port: a.port, connected: backend.connected, ...backend.counters() })), 1000));
      await Promise.race([stopped, backend.whenStopped()]);
      for (const t of timers) clearTimeout(t);
      await backend.close();
    } finally {
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
    }
    console.log(JSON.stringify({ port: a.port, ...backend.counters() }));
    return 0;
  });
}
