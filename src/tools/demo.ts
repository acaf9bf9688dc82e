/**
 * `netmap demo` (what `npm start` runs): pkt-gen tx and pkt-gen rx across a fresh VALE switch,
 * unpaced for a few seconds (the top speed, with the switch's drops), then paced with -R down to
 * the highest rate the receiver keeps up with. Options: -t seconds of the unpaced run (default 4),
 * -l frame size (default 60), --pipe (a netmap pipe instead of the switch).
 */
import { NetmapError, fail } from '../errors.js';
import { runDemo } from '../generator/demo.js';

const USAGE = `usage: netmap demo [-t seconds] [-l size] [--pipe]
  runs pkt-gen rx and pkt-gen tx (two processes) across a fresh VALE switch and prints their rates:
  1. unpaced: the sender's top speed; the switch drops what the receiver cannot take
  2. paced (-R): short runs from 90% of what the receiver took, 30% slower after each loss,
     until one loses nothing: the highest lossless rate found (VALE only; a pipe never drops)
  -t seconds   how long tx sends unpaced (default 4, at most 60; paced runs take 0.6 s each)
  -l size      frame size in bytes (default 60)
  --pipe       use a netmap pipe instead of a VALE switch`;

export async function main(argv: string[]): Promise<number> {
  let seconds = 4, size = 60, pipe = false;
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (a === '-h' || a === '--help') { console.log(USAGE); return 0; }
      if (a === '--pipe') { pipe = true; continue; }
      const v = argv[i + 1];
      if ((a === '-t' || a === '-l') && v !== undefined && /^\d+(\.\d+)?$/.test(v)) {
        if (a === '-t') seconds = Number(v); else size = Number(v);
        i++;
      } else fail('EINVAL', a === '-t' || a === '-l' ? `option ${a} needs a number` : `unknown argument '${a}'`);
    }
    if (!Number.isInteger(size) || size < 42 || size > 2048) fail('EINVAL', `-l ${size}: frame size must be 42..2048`);
  } catch (e) {
    if (!(e instanceof NetmapError)) throw e;
    console.error(`demo: ${e.message}\n${USAGE}`);
    return 2;
  }
  return runDemo({ seconds, size, pipe, out: (t) => { process.stdout.write(t); } });
}
