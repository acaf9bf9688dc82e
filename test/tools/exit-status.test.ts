/**
 * One rule for every tool's exit status: a bad option (unknown, missing, out of range) is a usage
 * error, 64 (EX_USAGE) with the usage; a port that fails to open -- a malformed name (openPort's
 * EINVAL), a port that does not exist, a name the tool cannot use -- is 1, with one line naming the
 * errno and no usage. Before, lb exited 64 for a malformed name (and vale-ctl -l for a non-VALE
 * one) where the other tools exited 1.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CLI = new URL('../../src/tools/cli.js', import.meta.url).pathname;
const dir = fs.mkdtempSync('/dev/shm/nmts-exit-');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nmts-exit-'));
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});
// an empty classic pcap file (header only) for nmreplay
const pcap = path.join(work, 'empty.pcap');
fs.writeFileSync(pcap, Buffer.from('d4c3b2a1020004000000000000000000ffff000001000000', 'hex'));
const sock = path.join(work, 'vm.sock');

function run(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NETMAP_TS_DIR: dir }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += String(d); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (status) => { clearTimeout(timer); resolve({ status, stderr }); });
  });
}

/** tool: [a bad option, a malformed port name, a port that does not exist / cannot serve]. */
const TABLE: Record<string, [string[], string[], string[]]> = {
  'pkt-gen': [['-f', 'rx', '-i', 'vale0:a', '-Q'], ['-f', 'rx', '-i', 'netmap:bad name', '-n', '1'], ['-f', 'rx', '-i', 'netmap:nosuch0', '-n', '1']],
  'bridge': [['-i', 'vale0:a', '-i', 'vale0:b', '-b', '0'], ['-i', 'netmap:bad name', '-i', 'vale0:b', '-w', '0'], ['-i', 'netmap:nosuch0^', '-w', '0']],
  'lb': [['-i', 'netmap:p}9', '-p', '0'], ['-i', 'netmap:bad name'], ['-i', 'vale0:in']],
  'nmreplay': [['-f', pcap, '-i', 'vale0:a', '-b', 'fast'], ['-f', pcap, '-i', 'netmap:bad name'], ['-f', pcap, '-i', 'netmap:nosuch0']],
  'dump': [['-i', 'vale0:a', '-c', 'abc'], ['-i', 'netmap:bad name', '--duration', '0.1'], ['-i', 'netmap:nosuch0', '--duration', '0.1']],
  'vale-ctl': [['-a', 'vale0:x', '-Q'], ['-a', 'vale0:bad name'], ['-l', 'netmap:p']],
  'kipfw': [['-p', '99', 'vale0:f', 'vale1:f'], ['netmap:bad name', 'vale0:f', '--duration', '1'], ['netmap:nosuch0', 'vale0:f', '--duration', '1']],
  'vhost-user': [['--socket', sock, '--duration', 'x', 'vale0:vm'], ['--socket', sock, 'vale0:bad name', '--duration', '1'], ['--socket', sock, 'netmap:p{1', '--duration', '1']],
};

test('every tool: a bad option exits 64 with the usage, a port that fails to open (malformed name included) exits 1 with one line', async () => {
  const seen: string[] = [];
  for (const [tool, [badOption, malformed, unopenable]] of Object.entries(TABLE)) {
    const u = await run([tool, ...badOption]);
    seen.push(`${tool} option ${u.status}`);
    assert.equal(u.status, 64, `${tool} ${badOption.join(' ')}: ${u.stderr}`);
    assert.match(u.stderr, new RegExp(`^netmap ${tool}: .*\\nusage: netmap ${tool} `), tool);
    for (const [what, args] of [['malformed', malformed], ['unopenable', unopenable]] as const) {
      const r = await run([tool, ...args]);
      seen.push(`${tool} ${what} ${r.status}`);
      assert.equal(r.status, 1, `${tool} ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /\b(E[A-Z]+\b|Invalid argument|No such device)/, `${tool} ${args.join(' ')}: the errno is named`);
      assert.doesNotMatch(r.stderr, /usage: netmap|\n\s+at /, `${tool} ${args.join(' ')}: no usage, no stack trace`);
      if (what === 'malformed') assert.match(r.stderr, /invalid port name/, `${tool} ${args.join(' ')}`);
    }
  }
  assert.equal(seen.length, 3 * Object.keys(TABLE).length);
});
