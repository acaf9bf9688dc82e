/**
 * Issue 15 §4, "the whole interfaces suite once per backend": the default pass runs the NIC rings
 * on AF_XDP (veth has native XDP); this test runs the files whose ports depend on that choice
 * again with NETMAP_TS_IF_BACKEND=packet (AF_PACKET), in a child test runner, and with the
 * host-stack split on tcx links (NETMAP_TS_SPLIT=tcx: the default pass runs it on nf_tables, the
 * attach daemons of vale.test.ts AF_PACKET with nf_tables). Not here:
 * xdp.test.ts (AF_XDP's own), vale.test.ts (its daemons run on both backends already),
 * packet.test.ts (the AF_PACKET layer itself), tap-vnet, coalesce and csum (no NIC rings).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

const { skipReason } = await import('../helpers/netns.js');

const FILES = ['port.test.js', 'pktgen.test.js', 'tap-split.test.js', 'lb.test.js'];
const skip = skipReason(['tc', 'tun']);

test('the interfaces suite on AF_PACKET with a tcx split (NETMAP_TS_IF_BACKEND=packet, NETMAP_TS_SPLIT=tcx): port, pktgen, tap-split and lb tests pass', { skip: skip ?? false, timeout: 600_000 }, async (t) => {
  const files = FILES.map((f) => new URL(`./${f}`, import.meta.url).pathname);
  // NODE_TEST_CONTEXT would make the child report to this runner instead of printing TAP
  const env: NodeJS.ProcessEnv = { ...process.env, NETMAP_TS_IF_BACKEND: 'packet', NETMAP_TS_SPLIT: 'tcx' };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=tap', ...files], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  const count = (what: string): number => Number(new RegExp(`^# ${what} (\\d+)$`, 'm').exec(out)?.[1] ?? NaN);
  const failed = out.split('\n').filter((l) => /^\s*not ok /.test(l));
  t.diagnostic(`AF_PACKET pass: ${count('pass')} passed, ${count('fail')} failed, ${count('skipped')} skipped`);
  assert.equal(code, 0, `failures on AF_PACKET:\n${failed.join('\n')}\n${out.slice(-4000)}`);
  assert.ok(count('pass') >= 30, `the child ran the tests (${count('pass')} passed)`);
  assert.equal(count('fail'), 0);
});
