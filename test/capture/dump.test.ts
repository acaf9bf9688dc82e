/**
 * `netmap dump` on files against tcpdump: summary lines (-n, -e, -q, -x), files written with
 * -w (byte-identical to tcpdump's for the same filter and snaplen), -c, -ddd programs used as
 * filters, counts on exit, and a truncated input file.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCorpus, writeCorpus } from './corpus.js';
import { PcapWriter } from '../../src/capture/writer.js';
import { openCaptureFile } from '../../src/capture/reader.js';
import * as b from '../../src/capture/build.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/tools/cli.js');
const haveTcpdump = spawnSync('sh', ['-c', 'command -v tcpdump']).status === 0;
let dir = '';
let small = '';
let corpus = '';

function dump(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'dump', ...args], { encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tcpdump(args: string[]): { status: number | null; stdout: string } {
  const r = spawnSync('tcpdump', args, { encoding: 'utf8', timeout: 60000, env: { ...process.env, TZ: 'UTC' } });
  return { status: r.status, stdout: r.stdout };
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netmap-dump-'));
  small = path.join(dir, 'small.pcap');
  const M1 = '02:00:00:00:00:01', M2 = '02:00:00:00:00:02';
  const frames: b.Bytes[] = [
    b.ether(M2, M1, 0x800, b.ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: 6 }, b.tcp({ sport: 1234, dport: 5555, seq: 1, flags: b.TCP_SYN, win: 512, options: [2, 4, 5, 180, 1, 3, 3, 7, 4, 2, 1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 0, 0] }))),
    b.ether(M2, M1, 0x800, b.ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: 6 }, b.tcp({ sport: 1234, dport: 5555, seq: 100, ack: 7, flags: b.TCP_ACK | b.TCP_PSH, win: 512 }, b.filler(10)))),
    b.ether(M2, M1, 0x800, b.ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: 6 }, b.tcp({ sport: 1234, dport: 5555, seq: 9, ack: 7, flags: b.TCP_FIN | b.TCP_ACK, win: 0 }))),
    b.ether(M2, M1, 0x800, b.ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: 17 }, b.udp(4000, 5000, b.filler(20)))),
    b.ether(M2, M1, 0x800, b.ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: 1 }, b.icmp(8, 0, [0, 1, 0, 2], b.filler(56)))),
    b.ether(M2, M1, 0x800, b.ip4({ src: '198.18.0.2', dst: '198.18.0.1', proto: 1 }, b.icmp(0, 0, [0, 1, 0, 2], b.filler(56)))),
    b.ether('ff:ff:ff:ff:ff:ff', M1, 0x806, b.arp(1, M1, '198.18.0.1', '00:00:00:00:00:00', '198.18.0.2')),
    b.ether(M1, M2, 0x806, b.arp(2, M2, '198.18.0.2', M1, '198.18.0.1')),
    b.ether(M2, M1, 0x86dd, b.ip6({ src: '2001:db8::1', dst: '2001:db8::2', nh: 6 }, b.tcp({ sport: 1234, dport: 5555, seq: 5, flags: b.TCP_SYN | b.TCP_ACK, ack: 9, win: 100 }))),
    b.ether(M2, M1, 0x86dd, b.ip6({ src: '2001:db8::1', dst: 'ff02::1', nh: 58 }, b.icmp6(128, 0, [0, 1, 0, 3], b.filler(8)))),
    b.ether(M2, M1, 0x86dd, b.ip6({ src: 'fe80::1', dst: '2001:db8:0:1::2', nh: 17 }, b.udp(4000, 5000, b.filler(3)))),
    (() => { const v = b.vlanTag(0x8100, 10, 3, 0x800, b.ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: 17 }, b.udp(4000, 5000, b.filler(4)))); return b.ether(M2, M1, v.type, v.bytes); })(),
    b.ether(M2, M1, 0x800, b.ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: 17, fragOffset: 3 }, b.filler(20))),
  ];
  const w = new PcapWriter(small);
  frames.forEach((f, i) => { const p = Uint8Array.from(b.padFrame(f)); w.write(p, 0, p.length, p.length, 1700000000 + i, 123456000); });
  w.close();
  corpus = path.join(dir, 'corpus.pcap');
  writeCorpus(corpus, buildCorpus(600, 1));
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('summary lines match tcpdump -n -S (plain, -e, -q, -x)', (t) => {
  if (!haveTcpdump) { t.skip('tcpdump is not installed'); return; }
  for (const flags of [[], ['-e'], ['-q'], ['-x'], ['-e', '-x']]) {
    const ours = dump(['-n', '--utc', ...flags, '-r', small]);
    assert.equal(ours.status, 0, ours.stderr);
    const theirs = tcpdump(['-n', '-S', ...flags, '-r', small]);
    assert.equal(ours.stdout, theirs.stdout, `flags ${flags.join(' ')}`);
  }
});

test('-w files are byte-identical to tcpdump -w for the same filter and snaplen; -c stops early', (t) => {
  if (!haveTcpdump) { t.skip('tcpdump is not installed'); return; }
  for (const [expr, snap] of [['', ''], ['tcp', ''], ['udp port 5000 or icmp6', ''], ['vlan and ip', ''], ['not ip', '64'], ['ip6', '40']] as const) {
    const ours = path.join(dir, 'ours.pcap'), theirs = path.join(dir, 'theirs.pcap');
    const sargs = snap === '' ? [] : ['-s', snap];
    const r = dump(['-r', corpus, '-w', ours, ...sargs, ...(expr === '' ? [] : [expr])]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(tcpdump(['-r', corpus, '-w', theirs, ...sargs, ...(expr === '' ? [] : [expr])]).status, 0);
    assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(theirs)), `'${expr}' -s '${snap}'`);
  }
  // pcapng output with nanosecond resolution holds the same packets.
  const ng = path.join(dir, 'out.pcapng'), pc = path.join(dir, 'out.pcap');
  assert.equal(dump(['-r', corpus, '-w', ng, '--pcapng', '--nano', 'tcp']).status, 0);
  assert.equal(dump(['-r', corpus, '-w', pc, 'tcp']).status, 0);
  const records = (f: string): string[] => {
    const out: string[] = [];
    const rd = openCaptureFile(f);
    rd.dispatch(0, (u8, o, cap, len, sec, nsec) => { out.push(`${sec}.${nsec} ${len} ${Buffer.from(u8.subarray(o, o + cap)).toString('hex')}`); });
    assert.equal(rd.format, f.endsWith('ng') ? 'pcapng' : 'pcap');
    rd.close();
    return out;
  };
  assert.deepEqual(records(ng), records(pc));
  assert.equal(tcpdump(['-r', ng, '-w', path.join(dir, 'back.pcap')]).status, 0);
  const c = dump(['-r', corpus, '-c', '5', 'tcp']);
  assert.equal(c.stdout.trim().split('\n').length, 5);
  assert.match(c.stderr, /^5 packets captured$/m);
});

test('a -ddd program is accepted as the filter and selects like the expression', () => {
  const ddd = dump(['-ddd', 'tcp and port 80']);
  assert.equal(ddd.status, 0);
  assert.match(ddd.stdout, /^\d+\n/);
  const byExpr = dump(['-r', corpus, 'tcp and port 80']);
  const byProg = dump(['-r', corpus, ddd.stdout.replace(/\n/g, ',')]);
  assert.equal(byProg.status, 0, byProg.stderr);
  assert.equal(byProg.stdout, byExpr.stdout);
  assert.ok(byExpr.stdout.length > 0);
  assert.match(byExpr.stderr, /^\d+ packets captured\n600 packets received by filter\n0 packets dropped by kernel/m);
  const interp = dump(['-r', corpus, '--interpreted', 'tcp and port 80']);
  assert.equal(interp.stdout, byExpr.stdout);
  const bad = dump(['-r', corpus, 'tcp and']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /syntax error/);
});

test('a truncated input file: the packets before the damage are printed, then the error, status 1', () => {
  const bytes = fs.readFileSync(small);
  const cut = path.join(dir, 'cut.pcap');
  fs.writeFileSync(cut, bytes.subarray(0, 24 + 3 * (16 + 78) + 30));
  const r = dump(['-r', cut, '--utc']);
  assert.equal(r.status, 1);
  assert.equal(r.stdout.trim().split("\n").length, 3); // frames of 78, 64 and 60 bytes fit before the cut
  assert.match(r.stderr, /truncated capture file at offset \d+/);
  // The same through the raw-copy path of -r/-w with a filter: the records before are written.
  const out = path.join(dir, 'cut-out.pcap');
  const w = dump(['-r', cut, '-w', out, 'ip']);
  assert.equal(w.status, 1);
  assert.match(w.stderr, /truncated capture file at offset \d+/);
  assert.match(w.stderr, /^3 packets captured$/m);
  assert.equal(fs.statSync(out).size, 24 + (16 + 78) + (16 + 64) + (16 + 60));
});
