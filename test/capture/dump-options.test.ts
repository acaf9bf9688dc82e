/**
 * `netmap dump`'s command line as tcpdump's on Linux: options after the expression (GNU getopt
 * permutation, through the tools' parser), `--`, messages for bad options (status 64, EX_USAGE),
 * -Q, --help made from the option table; `-w -` streaming with -U (each record flushed as it is captured),
 * to tshark through a pipe, and a reader that goes away (EPIPE: a quiet end).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCorpus, writeCorpus } from './corpus.js';
import '../../src/port-types.js'; // every port type, plugged into openPort
import { openPort } from '../../src/ports/index.js';
import { watchablePorts } from '../../src/capture/watch.js';
import { ether, ip4, udp, padFrame } from '../../src/capture/build.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/tools/cli.js');
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
let shmDir = '';
let work = '';
let corpus = '';

before(() => {
  shmDir = fs.mkdtempSync('/dev/shm/netmap-dump-options-test-');
  process.env.NETMAP_TS_DIR = shmDir;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'netmap-dump-options-'));
  corpus = path.join(work, 'corpus.pcap');
  writeCorpus(corpus, buildCorpus(300, 5));
});

after(() => {
  fs.rmSync(shmDir, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

function dump(args: string[], extraEnv: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'dump', ...args], { encoding: 'utf8', timeout: 60000, env: { ...process.env, NETMAP_TS_DIR: shmDir, ...extraEnv } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('options after the expression work as with tcpdump on Linux; -- ends them', (t) => {
  const before = dump(['-n', '-e', '--utc', '-c', '20', '-r', corpus, 'udp or arp']);
  assert.equal(before.status, 0, before.stderr);
  assert.ok(before.stdout.split('\n').length > 5);
  const afterExpr = dump(['-r', corpus, 'udp', 'or', 'arp', '-n', '-e', '--utc', '-c', '20']);
  assert.equal(afterExpr.status, 0, afterExpr.stderr);
  assert.equal(afterExpr.stdout, before.stdout);
  const between = dump(['-r', corpus, 'udp', '-e', 'or', '--utc', 'arp', '-c20']);
  assert.equal(between.stdout, before.stdout);
  if (has('tcpdump')) {
    // the same command line, options after the expression, to both: the same file
    const ours = path.join(work, 'after-ours.pcap'), theirs = path.join(work, 'after-theirs.pcap');
    assert.equal(dump(['-r', corpus, 'udp or arp', '-c', '20', '-s', '100', '-w', ours]).status, 0);
    const td = spawnSync('tcpdump', ['-r', corpus, 'udp or arp', '-c', '20', '-s', '100', '-w', theirs], { encoding: 'utf8' });
    assert.equal(td.status, 0, td.stderr);
    assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(theirs)), 'tcpdump with the same options after the expression');
  } else {
    t.diagnostic('tcpdump is not installed: not compared');
  }
  // after --, words that look like options are words of the expression
  const dashed = dump(['-r', corpus, '--utc', '--', 'udp', '-e']);
  assert.equal(dashed.status, 1);
  assert.match(dashed.stderr, /netmap dump: .*-e|syntax|unexpected/i);
});

test('bad options: a sentence naming them, the usage, exit status 64; --help lists every option', () => {
  const cases: Array<[string[], RegExp]> = [
    [['-r', corpus, '-Z'], /^netmap dump: unknown option '-Z'\n/],
    [['-r', corpus, '-c'], /^netmap dump: option -c needs a value\n/],
    [['-r', corpus, 'udp', '-c', 'abc'], /^netmap dump: invalid packet count abc\n/],
    [['-r', corpus, '--foo'], /^netmap dump: unknown option '--foo'\n/],
    [['-r', corpus, '--utc=1'], /^netmap dump: option --utc takes no value\n/],
    [['-r', corpus, '-Q', 'sideways'], /^netmap dump: unknown capture direction `sideways'\n/],
    [['-r', corpus, '-s', '999999'], /^netmap dump: invalid snaplen 999999/],
    [['-r', corpus, '-i', 'vale0:a'], /^netmap dump: -i and -r are exclusive\n/],
    [['udp'], /^netmap dump: give a port \(-i\) or a file \(-r\)\n/],
  ];
  for (const [args, re] of cases) {
    const r = dump(args);
    assert.equal(r.status, 64, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.match(r.stderr, /\nusage: netmap dump /);
  }
  const help = dump(['--help']);
  assert.equal(help.status, 0);
  for (const opt of ['-i', '-r', '-w', '-U', '-c', '-s', '-Q', '--direction', '-n', '-e', '-q', '-v', '-l', '-x', '-d', '-O', '-F', '--pcapng', '--nano', '--utc', '--duration']) {
    assert.match(help.stdout, new RegExp(`^  (-\\w, )?${opt}[ ,]`, 'm'), `${opt} in --help`);
  }
  assert.equal(dump(['-r', corpus, '-h']).status, 0);
  // --opt=value, and options tcpdump lets one repeat (the last value wins)
  const eq = dump(['-r', corpus, '--utc', '--direction=in', '-c', '9', '-c', '1']);
  assert.equal(eq.status, 0, eq.stderr);
  assert.equal(eq.stdout.trim().split('\n').length, 1);
});

test('-Q: ignored on files (as tcpdump), refused for a port that does not exist yet', () => {
  const plain = dump(['-r', corpus, '-c', '5', '--utc']);
  for (const d of ['in', 'out', 'INOUT']) assert.equal(dump(['-r', corpus, '-c', '5', '--utc', '-Q', d]).stdout, plain.stdout);
  const r = dump(['-i', 'valedq:nobody', '-Q', 'in', '--duration', '1']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /valedq:nobody: no port in use to watch; direction 'in' applies to watching one/);
});

test('-w - -U streams pcap records as they are captured; tshark -r - reads the stream', async (t) => {
  const tx = openPort('netmap:dq{1');
  const child = spawn(process.execPath, [CLI, 'dump', '-i', 'netmap:dq}1', '-w', '-', '-U', '-c', '3', '--duration', '30'],
    { env: { ...process.env, NETMAP_TS_DIR: shmDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = Buffer.alloc(0);
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { out = Buffer.concat([out, d]); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const waitFor = async (cond: () => boolean, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return cond();
  };
  try {
    // the file header comes out at once with -U
    assert.ok(await waitFor(() => out.length >= 24, 20000), `no pcap header: ${stderr}`);
    assert.equal(out.readUInt32LE(0), 0xa1b2c3d4);
    assert.ok(await waitFor(() => (watchablePorts().find((p) => p.name === 'netmap:dq}1')?.users ?? 0) >= 1, 20000));
    const f = Uint8Array.from(padFrame(ether('02:00:00:00:00:02', '02:00:00:00:00:01', 0x0800, ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: 17 }, udp(1, 2, [7])))));
    for (let k = 1; k <= 3; k++) {
      tx.inject(f, 0, f.length);
      tx.txsync();
      // each record is on the pipe before the next packet is sent (dump is still running)
      assert.ok(await waitFor(() => out.length >= 24 + k * (16 + 60), 10000), `record ${k} not flushed (${out.length} bytes)`);
    }
    assert.equal(await exited, 0, stderr);
    assert.equal(out.length, 24 + 3 * 76);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    tx.close();
  }
  if (!has('tshark')) { t.diagnostic('tshark is not installed: pipe into tshark -r - not tried'); return; }
  const r = spawnSync('sh', ['-c', `'${process.execPath}' '${CLI}' dump -r '${corpus}' -w - -U 'tcp' | tshark -r - -T fields -e frame.number 2>/dev/null | wc -l`], { encoding: 'utf8', timeout: 60000 });
  const count = dump(['-r', corpus, '-w', path.join(work, 'tcp.pcap'), 'tcp']);
  const n = /^(\d+) packets captured/m.exec(count.stderr);
  assert.ok(n !== null && Number(n[1]) > 0);
  assert.equal(Number(r.stdout.trim()), Number(n![1]));
});

test('-w - into a reader that goes away: dump ends quietly, status 0', async () => {
  const big = path.join(work, 'big.pcap');
  writeCorpus(big, buildCorpus(3000, 9));
  const child = spawn(process.execPath, [CLI, 'dump', '-r', big, '-w', '-', 'udp or tcp or arp or ip6', '-U'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  await new Promise<void>((resolve) => child.stdout.once('data', () => { child.stdout.destroy(); resolve(); }));
  const code = await exited;
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /EPIPE|error|Error/);
});

test('-w - live without -U (records straight to the writer) into a reader that goes away: dump ends quietly, status 0', async () => {
  const tx = openPort('netmap:dqe{1');
  const child = spawn(process.execPath, [CLI, 'dump', '-i', 'netmap:dqe}1', '-w', '-', '--duration', '30', 'udp'],
    { env: { ...process.env, NETMAP_TS_DIR: shmDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  let gone = false;
  child.stdout.once('data', () => { child.stdout.destroy(); gone = true; });
  try {
    const deadline = Date.now() + 20000;
    while (!stderr.includes('listening') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(stderr.includes('listening'), stderr);
    // 1 MiB of output buffer fills after ~14k records of 76 bytes: send until the reader went
    // away and dump exited (bounded: 30 s, or 2M frames)
    const f = Uint8Array.from(padFrame(ether('02:00:00:00:00:02', '02:00:00:00:00:01', 0x0800, ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: 17 }, udp(1, 2, [7])))));
    for (let sent = 0; child.exitCode === null && sent < 2_000_000 && Date.now() < deadline + 10000;) {
      for (let k = 0; k < 256 && tx.inject(f, 0, f.length) > 0; k++) sent++;
      tx.txsync();
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(await exited, 0, stderr);
    assert.ok(gone, 'the reader saw data first');
    assert.doesNotMatch(stderr, /EPIPE|error|Error/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    tx.close();
  }
});
