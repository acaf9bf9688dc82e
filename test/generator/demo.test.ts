/** The main job: `netmap demo` (npm start) runs tx and rx across a fresh VALE switch and cleans up. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDir, removeDir, run, start } from './helpers.js';

test('demo: tx and rx across a fresh VALE switch, rates printed, sent = received + dropped, nothing left', async () => {
  const dir = freshDir('demo');
  try {
    const r = await run(['demo', '-t', '1.5'], dir, 90_000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /pkt-gen tx -> (VALE switch valedemo\w+|netmap pipe)/);
    assert.match(r.stdout, /pkt-gen tx:\nSent \d+ packets \d+ bytes \d+ events 60 bytes each in \d+\.\d\d seconds\.\nSpeed: [\d.]+ [KMG]?pps Bandwidth: [\d.]+ [KMG]?bps \(raw [\d.]+ [KMG]?bps\)\. Average batch: [\d.]+ pkts\n/);
    assert.match(r.stdout, /pkt-gen rx:\nReceived \d+ packets/);
    // part 1 says plainly that it is the unpaced maximum, and accounts for every frame
    assert.match(r.stdout, /^1\. unpaced, 1\.5 s: the sender's top speed\./m);
    assert.match(r.stdout, /^unpaced: tx [\d.]+ [KMG]?pps, rx [\d.]+ [KMG]?pps; sent (\d+) = received (\d+) \+ dropped (\d+) \([\d.]+%\): consistent$/m);
    if (/over VALE switch/.test(r.stdout)) {
      // part 2: paced runs, each accounted for; the summary names the highest lossless rate tried
      // (or says none was found)
      const tries = [...r.stdout.matchAll(/^ {2}-R ([\d.]+ [KMG]?)pps: tx [\d.]+ [KMG]?pps, rx [\d.]+ [KMG]?pps; sent (\d+) = received (\d+) \+ dropped (\d+)(: lossless)?$/gm)];
      assert.ok(tries.length >= 1 && tries.length <= 8, r.stdout);
      const value = (s: string): number => { const [x, u] = s.split(' '); return Number(x) * ({ '': 1, K: 1e3, M: 1e6, G: 1e9 }[u ?? ''] ?? NaN); };
      for (const m of tries) assert.equal(Number(m[2]), Number(m[3]) + Number(m[4]), m[0]);
      const ok = tries.filter((m) => m[5] !== undefined);
      for (const m of ok) assert.equal(Number(m[4]), 0);
      if (ok.length > 0) {
        const best = ok.reduce((a, b) => (value(b[1]!) > value(a[1]!) ? b : a));
        assert.match(r.stdout, new RegExp(`; paced: lossless at -R ${best[1]!.replace('.', '\\.')}pps \\(rx [\\d.]+ [KMG]?pps\\); every run: sent = received \\+ dropped: consistent$`, 'm'));
        const first = tries.findIndex((m) => m[5] !== undefined);
        for (const m of tries.slice(first + 1)) assert.ok(value(m[1]!) > value(tries[first]![1]!), `after a lossless run the search only goes up: ${r.stdout}`);
      } else {
        assert.equal(tries.length, 6, r.stdout);
        assert.match(r.stdout, /; paced: no lossless rate found in 6 tries \(the receiver was stopped longer than its ring lasts: [^)]*\); every run: sent = received \+ dropped: consistent$/m);
      }
    }
    assert.match(r.stdout, /^demo: unpaced maximum tx [\d.]+ [KMG]?pps, rx [\d.]+ [KMG]?pps over .* \([\d.]+% dropped\)(; paced: .*)?; every run: sent = received \+ dropped: consistent$/m);
    // the switch and its ports went away with the processes
    const list = await run(['vale-ctl'], dir);
    assert.equal(list.code, 0, list.stderr);
    assert.doesNotMatch(list.stdout, /valedemo/);
    const piped = await run(['demo', '-t', '1', '--pipe', '-l', '128'], dir, 30_000);
    assert.equal(piped.code, 0, piped.stdout + piped.stderr);
    assert.match(piped.stdout, /^unpaced: tx [\d.]+ [KMG]?pps, rx [\d.]+ [KMG]?pps; sent (\d+) = received \1 \+ dropped 0 \(0\.0%\): consistent$/m);
    assert.doesNotMatch(piped.stdout, /paced \(pkt-gen -R\)/); // a pipe never drops: nothing to pace
    assert.match(piped.stdout, /over netmap pipe demo\w+ \(0\.0% dropped\); every run/);
    const bad = await run(['demo', '-t', 'x'], dir);
    assert.equal(bad.code, 64, 'EX_USAGE');
    assert.match(bad.stderr, /-t: 'x' is not a number/);
  } finally { removeDir(dir); }
});

test('pkt-gen rx stopped by SIGINT prints its summary and exits 0', async () => {
  const dir = freshDir('sigint');
  try {
    const rx = start(['pkt-gen', '-i', 'netmap:si}0', '-f', 'rx', '-T', '0'], dir);
    await rx.waitFor('Receiving from');
    const tx = await run(['pkt-gen', '-i', 'netmap:si{0', '-f', 'tx', '-n', '1000', '-T', '0'], dir);
    assert.equal(tx.code, 0, tx.stderr);
    await new Promise((r) => setTimeout(r, 200));
    rx.proc.kill('SIGINT');
    const r = await rx.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Received 1000 packets 60000 bytes/);
  } finally { removeDir(dir); }
});
