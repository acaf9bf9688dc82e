/**
 * `netmap extcap`: the extcap sentences (interfaces from the registry, dlts, config), a capture
 * into a FIFO with a capture filter, stopped by SIGTERM as Wireshark stops it; then the real
 * thing: `netmap extcap --install` into a temporary extcap folder, `tshark -D` lists our ports,
 * `tshark -i PORT -c N -w FILE` gets the N frames sent to the port (capinfos agrees), and
 * `--uninstall` removes the wrapper.
 *
 * Wireshark before 4.2 has no personal extcap folder, and honours WIRESHARK_EXTCAP_DIR only for
 * a process that is not root; as root, tshark runs in a user namespace (unshare --user, this
 * user mapped to uid 1000) so that the temporary folder is used and no system folder is touched.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../src/port-types.js'; // every port type, plugged into openPort
import { openPort, type Port } from '../../src/ports/index.js';
import { watchablePorts } from '../../src/capture/watch.js';
import { openCaptureFile } from '../../src/capture/reader.js';
import { ether, ip4, udp, tcp, padFrame, TCP_SYN } from '../../src/capture/build.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/tools/cli.js');
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
let shmDir = '';
let work = '';

before(() => {
  shmDir = fs.mkdtempSync('/dev/shm/netmap-extcap-test-');
  fs.chmodSync(shmDir, 0o700);
  process.env.NETMAP_TS_DIR = shmDir;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'netmap-extcap-'));
});

after(() => {
  fs.rmSync(shmDir, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

function extcap(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'extcap', ...args], { encoding: 'utf8', timeout: 30000, env: { ...process.env, NETMAP_TS_DIR: shmDir } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const frame = (i: number, isUdp: boolean): Uint8Array => Uint8Array.from(padFrame(ether('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0a', 0x0800,
  ip4({ src: '198.18.0.10', dst: '198.18.0.255', proto: isUdp ? 17 : 6 }, isUdp ? udp(3000 + i, 4000, [i & 0xff, i >> 8]) : tcp({ sport: 3000 + i, dport: 80, flags: TCP_SYN })))));

/** Waits until a monitor watches port `name` (the capture opened it), bounded by `ms`. */
async function waitWatched(name: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if ((watchablePorts().find((p) => p.name === name)?.monitors ?? 0) >= 1) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

async function sendFrames(tx: Port, frames: Uint8Array[]): Promise<void> {
  for (const f of frames) {
    const deadline = Date.now() + 5000;
    while (tx.inject(f, 0, f.length) === 0) {
      tx.txsync();
      if (Date.now() > deadline) throw new Error('the switch did not take the frames');
      await new Promise((r) => setTimeout(r, 1));
    }
    tx.txsync();
  }
}

function recordsOf(file: string): string[] {
  const rd = openCaptureFile(file);
  const out: string[] = [];
  try {
    assert.equal(rd.linktype, 1);
    rd.dispatch(0, (u8, o, c) => { out.push(Buffer.from(u8.subarray(o, o + c)).toString('hex')); });
  } finally {
    rd.close();
  }
  return out;
}

test('extcap sentences: our ports as interfaces (braces escaped), Ethernet, the config; usage errors', () => {
  const a = openPort('valext1:a');
  const p = openPort('netmap:xc{4');
  try {
    const r = extcap(['--extcap-interfaces', '--extcap-version=4.0']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^extcap \{version=[\d.]+\}/);
    assert.ok(lines.includes('interface {value=valext1:a}{display=netmap VALE port a of switch valext1}'), r.stdout);
    assert.ok(lines.includes('interface {value=netmap:xc%7B4}{display=netmap pipe 4 of xc, master end}'), r.stdout);
    assert.ok(lines.includes('interface {value=netmap:xc%7D4}{display=netmap pipe 4 of xc, slave end}'), r.stdout);
    for (const l of lines.slice(1)) assert.match(l, /^interface \{value=[^{}]+\}\{display=[^{}]+\}$/);
    const d = extcap(['--extcap-dlts', '--extcap-interface', 'valext1:a']);
    assert.equal(d.stdout, 'dlt {number=1}{name=EN10MB}{display=Ethernet}\n');
    const c = extcap(['--extcap-config', '--extcap-interface', 'netmap:xc%7D4']);
    assert.equal(c.status, 0);
    assert.match(c.stdout, /^arg \{number=0\}\{call=--snaplen\}/m);
    assert.match(c.stdout, /^value \{arg=1\}\{value=inout\}.*\{default=true\}$/m);
    // Wireshark's filter check: nothing on stdout when valid, the reason when not
    const ok = extcap(['--extcap-capture-filter', 'udp port 53', '--extcap-interface', 'valext1:a']);
    assert.deepEqual([ok.status, ok.stdout], [0, '']);
    const bad = extcap(['--extcap-capture-filter', 'udp port', '--extcap-interface', 'valext1:a']);
    assert.equal(bad.status, 0);
    assert.match(bad.stdout, /^.+\n$/);
  } finally {
    a.close();
    p.close();
  }
  for (const args of [[], ['--capture', '--extcap-interface', 'x'], ['--extcap-dlts'], ['--bogus'], ['--capture', '--fifo', 'f', '--extcap-interface', 'x', '--snaplen', '0']]) {
    const r = extcap(args);
    assert.equal(r.status, 64, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^netmap extcap: .*\nusage: netmap extcap/);
  }
  // the capture of a port that cannot be opened fails with a sentence, status 1
  const bad = extcap(['--capture', '--extcap-interface', 'netmap:bad name', '--fifo', path.join(work, 'nofifo')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /invalid port name/);
});

test('the installed wrapper answers --extcap-dlts and --extcap-config itself, as Node does, and hands everything else to Node', () => {
  const dir = path.join(work, 'wrapper');
  const ins = extcap(['--install', '--extcap-dir', dir]);
  assert.equal(ins.status, 0, ins.stderr);
  const wrapper = path.join(dir, 'netmap-ts-extcap');
  const a = openPort('valext3:a');
  try {
    const cases = [
      ['--extcap-dlts', '--extcap-interface', 'valext3:a'],
      ['--extcap-config', '--extcap-interface', 'valext3:a', '--extcap-version=4.0'],
      ['--extcap-version', '4.0', '--extcap-config', '--extcap-interface=netmap:xc%7D4', '--debug'],
      ['--extcap-config', '--extcap-dlts', '--extcap-interface', 'x'],
      // not answered by the wrapper: Node's answer or usage error
      ['--extcap-config'], ['--extcap-config', '--extcap-interface'], ['--extcap-config', '--extcap-interface', 'x', '--bogus'],
      ['--extcap-interfaces'], ['--extcap-dlts', '--extcap-interface', 'x', '--capture'],
    ];
    for (const args of cases) {
      const n = extcap(args);
      const w = spawnSync(wrapper, args, { encoding: 'utf8', timeout: 30000, env: { ...process.env, NETMAP_TS_DIR: shmDir } });
      assert.deepEqual([w.status, w.stdout, w.stderr], [n.status, n.stdout, n.stderr], args.join(' '));
    }
    // which answers came without Node: the same wrapper with its Node line replaced by exit 99
    const noNode = path.join(dir, 'no-node');
    fs.writeFileSync(noNode, fs.readFileSync(wrapper, 'utf8').replace(/^exec .*$/m, 'exit 99'), { mode: 0o755 });
    const answered = cases.map((args) => spawnSync(noNode, args, { encoding: 'utf8', timeout: 30000 }).status);
    assert.deepEqual(answered, [0, 0, 0, 0, 99, 99, 99, 99, 99]);
  } finally {
    a.close();
  }
});

test('extcap --capture writes the filtered frames into the FIFO and ends on SIGTERM', async () => {
  const cap = openPort('valext2:cap');
  const src = openPort('valext2:src');
  const fifo = path.join(work, 'fifo');
  spawnSync('mkfifo', [fifo]);
  const child = spawn(process.execPath, [CLI, 'extcap', '--capture', '--extcap-interface', 'valext2:cap', '--fifo', fifo,
    '--extcap-capture-filter', 'udp dst port 4000'], { env: { ...process.env, NETMAP_TS_DIR: shmDir }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const chunks: Buffer[] = [];
  const reader = fs.createReadStream(fifo);
  reader.on('data', (d) => chunks.push(d as Buffer));
  try {
    assert.ok(await waitWatched('valext2:cap', 20000), `the capture did not open the port: ${stderr}`);
    const frames = Array.from({ length: 40 }, (_, i) => frame(i, i % 4 !== 0));
    await sendFrames(src, frames);
    const want = frames.filter((_, i) => i % 4 !== 0).map((f) => Buffer.from(f).toString('hex'));
    const bytes = 24 + want.length * (16 + 60);
    const deadline = Date.now() + 10000;
    while (chunks.reduce((n, c) => n + c.length, 0) < bytes && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGTERM');
    // bounded: a capture that lingers after its end (it did: src/ports/events.ts) fails, never hangs
    const code = await Promise.race([exited, new Promise<string>((res) => setTimeout(() => res('still running 10 s after SIGTERM'), 10_000))]);
    assert.equal(code, 0, stderr);
    const file = path.join(work, 'fifo.pcap');
    fs.writeFileSync(file, Buffer.concat(chunks));
    assert.deepEqual(recordsOf(file), want);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    reader.destroy();
    cap.close();
    src.close();
  }
});

test('extcap --capture stops quietly (exit 0, no SIGPIPE) when the reader closes the FIFO mid-capture, as tshark -c N does', async () => {
  const cap = openPort('valext4:cap');
  const src = openPort('valext4:src');
  const fifo = path.join(work, 'fifo-closing');
  spawnSync('mkfifo', [fifo]);
  const child = spawn(process.execPath, [CLI, 'extcap', '--capture', '--extcap-interface', 'valext4:cap', '--fifo', fifo],
    { env: { ...process.env, NETMAP_TS_DIR: shmDir }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let got = 0;
  const reader = fs.createReadStream(fifo);
  // the reader takes the header and a few records, then goes away (tshark -c 3)
  reader.on('data', (d) => { got += (d as Buffer).length; if (got >= 24 + 3 * (16 + 60)) reader.destroy(); });
  try {
    assert.ok(await waitWatched('valext4:cap', 20000), `the capture did not open the port: ${stderr}`);
    // keep sending until the capture notices the closed FIFO and exits (bounded: 20 s)
    let result: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    void exited.then((r) => { result = r; });
    const deadline = Date.now() + 20000;
    for (let i = 0; result === null && Date.now() < deadline; i++) {
      await sendFrames(src, Array.from({ length: 8 }, (_, k) => frame((i * 8 + k) & 0x3ff, true)));
      await new Promise((r) => setTimeout(r, 10));
    }
    const r = await Promise.race([exited, new Promise<null>((res) => setTimeout(() => res(null), 5000))]);
    assert.ok(r !== null, `the capture did not end after the reader went away: ${stderr}`);
    assert.deepEqual(r, { code: 0, signal: null }, stderr);
    assert.equal(stderr, '');
    // the port was closed: no monitor watches it any more
    assert.equal(watchablePorts().find((p) => p.name === 'valext4:cap')?.monitors ?? 0, 0);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    reader.destroy();
    cap.close();
    src.close();
  }
});

test('tshark: --install into a temporary extcap folder, tshark -D lists our ports, tshark -i captures N frames (capinfos agrees), --uninstall', async (t) => {
  if (!has('tshark') || !has('capinfos')) { t.skip('tshark or capinfos is not installed'); return; }
  const root = process.getuid?.() === 0;
  if (root && !has('unshare')) { t.skip('as root, tshark ignores WIRESHARK_EXTCAP_DIR and unshare is missing'); return; }
  const home = path.join(work, 'home');
  const extDir = path.join(home, '.local', 'lib', 'wireshark', 'extcap');
  fs.mkdirSync(extDir, { recursive: true });
  const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), WIRESHARK_EXTCAP_DIR: extDir, NETMAP_TS_DIR: shmDir };
  // As root, run as uid 1000 of a user namespace that maps it to us (files stay ours).
  const wrap = (cmd: string[]): string[] => (root ? ['unshare', '--user', '--map-user=1000', '--map-group=1000', '--', ...cmd] : cmd);
  const run = (cmd: string[], timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> => new Promise((resolve) => {
    const argv = wrap(cmd);
    const c = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('exit', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
  });
  const wrapper = path.join(extDir, 'netmap-ts-extcap');
  const cap = openPort('valext3:cap');
  const src = openPort('valext3:src');
  const pipe = openPort('netmap:xt{2');
  try {
    const ins = await run([process.execPath, CLI, 'extcap', '--install'], 60000);
    assert.equal(ins.status, 0, ins.stderr);
    assert.ok(fs.statSync(wrapper).mode & 0o100, 'the wrapper is executable');
    assert.match(ins.stdout, new RegExp(`installed ${wrapper.replace(/[.]/g, '\\.')}`));

    const list = await run(['tshark', '-D'], 90000);
    assert.equal(list.status, 0, list.stderr);
    for (const name of ['valext3:cap', 'valext3:src', 'netmap:xt%7B2', 'netmap:xt%7D2']) {
      assert.match(list.stdout, new RegExp(`^\\d+\\. ${name.replace(/[{}]/g, '\\$&')} \\(netmap `, 'm'), `${name} in tshark -D:\n${list.stdout}`);
    }

    const N = 50;
    const out = path.join(work, 'tshark.pcap');
    const capture = run(['tshark', '-i', 'valext3:cap', '-c', String(N), '-w', out], 120000);
    const started = await waitWatched('valext3:cap', 90000);
    if (!started) { const r = await capture; assert.fail(`tshark did not start the capture: ${r.stderr}`); }
    const frames = Array.from({ length: N }, (_, i) => frame(i, i % 2 === 0));
    await sendFrames(src, frames);
    const r = await capture;
    assert.equal(r.status, 0, r.stderr);
    const ci = spawnSync('capinfos', ['-c', '-M', out], { encoding: 'utf8' });
    assert.match(ci.stdout, new RegExp(`Number of packets:\\s+${N}\\s*$`, 'm'), ci.stdout);
    assert.deepEqual(recordsOf(out), frames.map((f) => Buffer.from(f).toString('hex')));

    const un = await run([process.execPath, CLI, 'extcap', '--uninstall'], 60000);
    assert.equal(un.status, 0, un.stderr);
    assert.equal(fs.existsSync(wrapper), false);
  } finally {
    fs.rmSync(wrapper, { force: true });
    cap.close();
    src.close();
    pipe.close();
  }
});
