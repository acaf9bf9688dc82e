/**
 * The packet loops make no garbage. Every minor GC (scavenge) stops the thread that runs it for
 * 0.2-3 ms, and on a machine whose cores are busy longer (V8's parallel phases wait for helper
 * threads): enough for a 1024-slot receive ring to overflow at 200 kpps, or for dummynet to
 * release late. The loops used to read clocks that allocate (Date.now(), performance.now() and
 * process.hrtime.bigint() all make a heap object a call) and made 15-30 scavenges a second.
 *
 * Here pkt-gen tx -> VALE -> pkt-gen rx run under `node --trace-gc`, unpaced and paced, and the
 * scavenges of each process after its start-up are counted. The count depends on how much
 * garbage is made per unit of work, not on the machine's load.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { CLI, freshDir, removeDir } from './helpers.js';

/** Scavenges a second allowed after start-up (the loops themselves make none; the rest of the process some). */
const MAX_PER_SECOND = 4;
/** What counts as start-up: module loading and port set-up allocate, as they should. */
const STARTUP_MS = 600;

interface Traced { code: number | null; steady: number; seconds: number; out: string }

/** Runs `node --trace-gc CLI args`; counts the scavenges any of its threads made after STARTUP_MS. */
function traced(args: string[], dir: string, timeoutMs: number): Promise<Traced> {
  const t0 = performance.now();
  const p = spawn(process.execPath, ['--trace-gc', CLI, ...args], { env: { ...process.env, NETMAP_TS_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  p.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => p.on('close', (code) => {
    clearTimeout(timer);
    // "[pid:0xisolate]   1234 ms: Scavenge ...": the time is since that thread's isolate began
    let steady = 0;
    for (const m of out.matchAll(/^\[\d+:0x[0-9a-f]+\]\s+(\d+) ms: Scavenge/gm)) if (Number(m[1]) > STARTUP_MS) steady++;
    resolve({ code, steady, seconds: Math.max(0.5, (performance.now() - t0) / 1000 - STARTUP_MS / 1000), out });
  }));
}

async function pair(tag: string, txArgs: string[]): Promise<{ rx: Traced; tx: Traced }> {
  const dir = freshDir(tag);
  try {
    const rx = traced(['pkt-gen', '-i', 'valegc:b', '-f', 'rx', '-W'], dir, 30_000);
    await new Promise((r) => setTimeout(r, 700));
    const tx = await traced(['pkt-gen', '-i', 'valegc:a', '-f', 'tx', ...txArgs], dir, 25_000);
    return { rx: await rx, tx };
  } finally {
    removeDir(dir);
  }
}

function check(name: string, t: Traced): void {
  assert.equal(t.code, 0, `${name} failed: ${t.out.split('\n').filter((l) => !l.startsWith('[')).join('\n')}`);
  const rate = t.steady / t.seconds;
  if (process.env.GC_TEST_DEBUG) console.log(t.out.split("\n").filter((l) => l.includes("Scavenge")).map((l) => "# " + l.slice(0, 90)).join("\n"));
  console.log(`# ${name}: ${t.steady} scavenges in ${t.seconds.toFixed(2)} s after start-up (${rate.toFixed(1)}/s)`);
  assert.ok(rate <= MAX_PER_SECOND, `${name} made ${t.steady} scavenges in ${t.seconds.toFixed(2)} s after start-up: garbage in its packet loop`);
}

test('no garbage at full rate: pkt-gen tx -> VALE -> pkt-gen rx, receiver spinning while the sender holds leases', async () => {
  const { rx, tx } = await pair('full', ['-n', '50000000']);
  check('rx (unpaced)', rx);
  check('tx (unpaced)', tx);
});

test('no garbage when paced: pkt-gen -R 200k -b 64 (the sender sleeps and spins between batches)', async () => {
  const { rx, tx } = await pair('paced', ['-R', '200k', '-b', '64', '-n', '300000']);
  check('rx (paced)', rx);
  check('tx (paced)', tx);
});
