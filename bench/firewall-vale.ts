/**
 * The firewall as a VALE switch's lookup against the plain learning switch, in one thread (JSON
 * lines): the cost of the lookup itself, without the scheduler of a two-core machine deciding
 * how much of a core each pkt-gen process gets (bench/firewall.ts runs the pkt-gen version).
 *
 * Two switches: `valeP` with netmap's learning bridge, `valeF` with the firewall attached
 * (`netmap ipfw attach`, one rule: 65535 allow ip from any to any). On each, one sender port and
 * one receiver port whose MAC the switch has learnt; one thread fills the sender's TX ring (512
 * 60-byte unicast frames to the receiver, lengths only), txsyncs (the switch looks every frame
 * up and copies it into the receiver's ring) and drains the receiver. Rounds alternate between
 * the two switches so that both see the same machine; each round's rate is frames / the
 * thread's CPU time (process.threadCpuUsage is not in Node 20: the process's CPU time, this
 * process has one busy thread), and the best and median rounds are reported.
 * Usage: node dist/bench/firewall-vale.js [seconds] [rounds]   (default 1 s rounds, 6 rounds each)
 */
import fs from 'node:fs';

const DIR = fs.mkdtempSync('/dev/shm/nmts-bench-fwvale-');
process.env.NETMAP_TS_DIR = DIR;
const SECONDS = Math.min(30, Math.max(0.2, Number(process.argv[2] ?? 1) || 1));
const ROUNDS = Math.min(50, Math.max(1, Number(process.argv[3] ?? 6) || 6));

await import('../src/port-types.js');
const { openPort } = await import('../src/ports/index.js');
const { loadLookup } = await import('../src/switch/index.js');
const { attachFirewall, detachFirewall } = await import('../src/firewall/attach.js');
type Port = ReturnType<typeof openPort>;

interface Pair { name: string; s: Port; d: Port }

function openPair(sw: string): Pair {
  const s = openPort(`${sw}:s`), d = openPort(`${sw}:d`);
  // the receiver announces its MAC 02:00:00:00:00:02 (flooded to s: drained below)
  const t = d.txRings[0]!, u8 = d.mem.u8;
  const o = t.slotBufOffset(t.head);
  u8.fill(0xff, o, o + 6); u8.set([2, 0, 0, 0, 0, 2, 0x08, 0x00], o + 6);
  t.setSlotLen(t.head, 60); t.advance(t.next(t.head)); d.txsync();
  // the sender's frames: 60-byte IPv4/UDP 10.0.0.1:1000 -> 10.0.0.2:80, to d's MAC
  const r = s.txRings[0]!, su8 = s.mem.u8;
  for (let i = 0; i < r.numSlots; i++) {
    const b = r.slotBufOffset(i);
    su8.fill(0, b, b + 60);
    su8.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0,
      10, 0, 0, 1, 10, 0, 0, 2, 0x03, 0xe8, 0, 80, 0, 26], b);
    r.setSlotLen(i, 60);
    r.setSlotFlags(i, 0);
  }
  s.rxsync(); const sr = s.rxRings[0]!; sr.advance(sr.tail); s.rxsync();
  return { name: sw, s, d };
}

/** One round: frames moved and CPU milliseconds. */
function round(p: Pair, seconds: number): { frames: number; cpuMs: number } {
  const tx = p.s.txRings[0]!, rx = p.d.rxRings[0]!;
  let frames = 0;
  const end = performance.now() + seconds * 1000;
  const c0 = process.cpuUsage();
  while (performance.now() < end) {
    for (let k = 0; k < 16; k++) {
      let h = tx.head + 512;
      if (h >= tx.numSlots) h -= tx.numSlots;
      tx.advance(h);
      p.s.txsync();
      p.d.rxsync();
      frames += rx.tail >= rx.head ? rx.tail - rx.head : rx.tail + rx.numSlots - rx.head;
      rx.advance(rx.tail);
    }
  }
  const c = process.cpuUsage(c0);
  return { frames, cpuMs: (c.user + c.system) / 1000 };
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]!; };

try {
  const plain = openPair('valeP');
  const fw = openPair('valeF');
  await attachFirewall('valeF');
  await loadLookup('valeF');
  // warm-up (compiles both paths)
  round(plain, 0.2); round(fw, 0.2);
  const rates: Record<string, number[]> = { plain: [], fw: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const [key, pair] of [['plain', plain], ['fw', fw]] as const) {
      const r = round(pair, SECONDS);
      rates[key]!.push(r.frames / r.cpuMs / 1e3);
    }
  }
  const pm = median(rates.plain!), fm = median(rates.fw!);
  const pb = Math.max(...rates.plain!), fb = Math.max(...rates.fw!);
  console.log(JSON.stringify({
    bench: 'firewall-vale', case: 'vale-lookup-1-rule-one-thread', metric: 'ratio_to_plain', value: Number((fm / pm).toFixed(3)), unit: 'x',
    fw_mpps_median: Number(fm.toFixed(2)), plain_mpps_median: Number(pm.toFixed(2)),
    fw_mpps_best: Number(fb.toFixed(2)), plain_mpps_best: Number(pb.toFixed(2)), ratio_best: Number((fb / pb).toFixed(3)),
    fw_ns_per_frame: Number((1e3 / fm).toFixed(1)), plain_ns_per_frame: Number((1e3 / pm).toFixed(1)),
    target_ratio: 0.6, met: fm / pm >= 0.6, rounds: ROUNDS, seconds_per_round: SECONDS,
    note: 'one thread sends 512-frame bursts, the switch forwards (lookup + copy), the same thread drains the receiver; Mpps per CPU second',
  }));
  plain.s.close(); plain.d.close(); fw.s.close(); fw.d.close();
  await detachFirewall('valeF');
} finally {
  fs.rmSync(DIR, { recursive: true, force: true });
}
