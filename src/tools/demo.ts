/**
 * `netmap demo` (what `npm start` runs): pkt-gen tx and pkt-gen rx across a fresh VALE switch,
 * unpaced for a few seconds (the top speed, with the switch's drops), then paced with -R down to
 * the highest rate the receiver keeps up with. Options: -t seconds of the unpaced run (default 4),
 * -l frame size (default 60), --pipe (a netmap pipe instead of the switch).
 */
import { runDemo } from '../generator/demo.js';
import { runTool, usageFail, type ParsedArgs, type ToolSpec } from './args.js';

const DEMO: ToolSpec = {
  name: 'demo',
  synopsis: ['[-t seconds] [-l size] [--pipe]'],
  preamble: [
    'runs pkt-gen rx and pkt-gen tx (two processes) across a fresh VALE switch and prints their rates:',
    '1. unpaced: the sender\'s top speed; the switch drops what the receiver cannot take',
    '2. paced (-R, bursts of 64): short runs from 90% of what the receiver',
    '   took, halved after each loss until one loses nothing, then two between the last loss and it:',
    '   the highest lossless rate found (VALE only; a pipe never drops)',
  ],
  options: [
    { short: 't', value: 'seconds', help: 'how long tx sends unpaced (default 4, at most 60; paced runs take 0.6 s each)' },
    { short: 'l', value: 'size', help: 'frame size in bytes (default 60, 42..2048)' },
    { long: 'pipe', help: 'use a netmap pipe instead of a VALE switch' },
  ],
};

interface Args { seconds: number; size: number; pipe: boolean }

function toArgs(p: ParsedArgs): Args {
  if (p.operands.length > 0) usageFail(`unexpected argument '${p.operands[0]}'`);
  return { seconds: p.number('t', 4, { min: 0.001, max: 60, fraction: true }), size: p.number('l', 60, { min: 42, max: 2048 }), pipe: p.has('pipe') };
}

export async function main(argv: string[]): Promise<number> {
  return runTool(DEMO, argv, toArgs, (args) => runDemo({ ...args, out: (t) => { process.stdout.write(t); } }));
}
