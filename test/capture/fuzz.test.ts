/**
 * Fuzzing: random filter strings, random BPF programs (valid or not) and random or truncated
 * capture files give a clean NetmapError or a result, never another exception or a hang.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { rng, buildCorpus, writeCorpus } from './corpus.js';
import { compileFilter } from '../../src/capture/filter.js';
import { validateProgram, parseDddProgram, type BpfProgram } from '../../src/capture/bpf.js';
import { interpretProgram } from '../../src/capture/interp.js';
import { compileProgram } from '../../src/capture/jit.js';
import { openCaptureFile } from '../../src/capture/reader.js';
import { PcapngWriter } from '../../src/capture/writer.js';
import { NetmapError } from '../../src/errors.js';

const WORDS = ['ip', 'ip6', 'tcp', 'udp', 'icmp', 'arp', 'host', 'net', 'port', 'portrange', 'src', 'dst', 'and', 'or', 'not', '!',
  '(', ')', '[', ']', ':', '=', '!=', '<', '>', '<=', '>=', '+', '-', '*', '/', '%', '&', '|', '^', '<<', '>>', '&&', '||',
  '198.18.0.1', '10', '0x10', '2001:db8::1', '02:00:00:00:00:01', '198.18/16', 'vlan', 'mpls', 'len', 'less', 'greater',
  'ether', 'proto', 'broadcast', 'multicast', 'tcpflags', 'tcp-syn', 'icmp-echo', '\\tcp', 'foo', '80-90', 'mask', '255.0.0.0',
  '999999999999', '4', '2', '1', '0', 'sctp', 'icmp6', 'gateway', 'protochain', 'ppp', '"', '\u00e9'];

function clean(fn: () => void, what: string): 'ok' | 'error' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof NetmapError, `${what}: threw ${String(e)}`);
    assert.ok(e.message.length > 10);
    return 'error';
  }
}

test('random filter strings compile to valid programs or fail with EINVAL naming the problem', () => {
  const r = rng(99);
  const counts = { ok: 0, error: 0 };
  const packet = Uint8Array.from(buildCorpus(1, 4)[0]!.frame);
  for (let i = 0; i < 3000; i++) {
    const n = 1 + Math.floor(r() * 12);
    const toks: string[] = [];
    for (let j = 0; j < n; j++) toks.push(WORDS[Math.floor(r() * WORDS.length)]!);
    const expr = r() < 0.1 ? toks.join('') : toks.join(' ');
    counts[clean(() => {
      const prog = compileFilter(expr);
      validateProgram(prog);
      const a = interpretProgram(prog)(packet, 0, packet.length, packet.length);
      const b = compileProgram(prog)(packet, 0, packet.length, packet.length);
      assert.equal(a, b, expr);
    }, expr)]++;
  }
  // Random characters too, and pathological nesting.
  for (let i = 0; i < 500; i++) {
    let s = '';
    const n = Math.floor(r() * 30);
    for (let j = 0; j < n; j++) s += String.fromCharCode(32 + Math.floor(r() * 95));
    clean(() => compileFilter(s), s);
  }
  for (const s of ['('.repeat(5000) + 'ip' + ')'.repeat(5000), 'not '.repeat(20000) + 'ip', 'ip and '.repeat(3000) + 'ip',
    'ip[' .repeat(3000) + '0' + ']'.repeat(3000) + ' = 1', 'host 198.18.0.1 or '.repeat(2000) + 'ip', 'x'.repeat(70000)]) {
    const t0 = Date.now();
    clean(() => compileFilter(s), s.slice(0, 40));
    assert.ok(Date.now() - t0 < 10000, `${s.slice(0, 30)}... took too long`);
  }
  assert.ok(counts.ok > 20 && counts.error > 100, JSON.stringify(counts));
});

test('random BPF programs are validated cleanly; valid ones run the same in both engines', () => {
  const r = rng(5);
  let valid = 0;
  for (let i = 0; i < 3000; i++) {
    const len = 1 + Math.floor(r() * 12);
    const prog: BpfProgram = [];
    for (let j = 0; j < len; j++) {
      prog.push({ code: Math.floor(r() * 256), jt: Math.floor(r() * 4), jf: Math.floor(r() * 4), k: r() < 0.5 ? Math.floor(r() * 64) : Math.floor(r() * 2 ** 32) });
    }
    if (r() < 0.5) prog[len - 1] = { code: 0x16, jt: 0, jf: 0, k: 0 };
    if (clean(() => validateProgram(prog), JSON.stringify(prog)) === 'error') continue;
    valid++;
    const pkt = new Uint8Array(64).map(() => Math.floor(r() * 256));
    const caplen = Math.floor(r() * 65);
    assert.equal(compileProgram(prog)(pkt, 0, caplen, 64), interpretProgram(prog)(pkt, 0, caplen, 64));
  }
  assert.ok(valid > 50, `${valid} valid programs`);
  for (const text of ['1\n6 0 0', 'x', '3\n0 0 0 0\n0 0 0 0\n0 0 0 0', '1\n21 1 1 0']) clean(() => parseDddProgram(text), text);
});

test('random, corrupted and truncated capture files give EIO with an offset, never a crash or a hang', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netmap-fuzz-'));
  try {
    const packets = buildCorpus(40, 8);
    const pcap = path.join(dir, 'a.pcap');
    writeCorpus(pcap, packets);
    const ng = path.join(dir, 'a.pcapng');
    const w = new PcapngWriter(ng, { interfaces: [{}, { nanosecond: true }] });
    packets.forEach((p, i) => w.write(p.frame, 0, p.caplen, p.frame.length, i, i, i % 2));
    w.close();
    const r = rng(17);
    const file = path.join(dir, 'fuzz.bin');
    let errors = 0, complete = 0;
    for (const base of [fs.readFileSync(pcap), fs.readFileSync(ng)]) {
      for (let i = 0; i < 300; i++) {
        let bytes = Buffer.from(base);
        const kind = i % 3;
        if (kind === 0) bytes = bytes.subarray(0, Math.floor(r() * bytes.length));
        else if (kind === 1) for (let j = 0; j < 1 + Math.floor(r() * 8); j++) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
        else bytes = Buffer.concat([bytes.subarray(0, 24 + Math.floor(r() * 200)), Buffer.from(new Uint8Array(Math.floor(r() * 100)).map(() => Math.floor(r() * 256)))]);
        fs.writeFileSync(file, bytes);
        const t0 = Date.now();
        const res = clean(() => {
          const rd = openCaptureFile(file, { bufferSize: 4096 });
          try {
            while (rd.dispatch(7, (u8, o, c) => { assert.ok(o + c <= u8.length); }) > 0) { /* drain */ }
          } finally {
            rd.close();
          }
        }, `variant ${i}`);
        if (res === 'error') errors++;
        else complete++;
        assert.ok(Date.now() - t0 < 5000);
      }
    }
    assert.ok(errors > 50 && complete > 20, `${errors} errors, ${complete} complete`);
    for (let i = 0; i < 100; i++) {
      fs.writeFileSync(file, Buffer.from(new Uint8Array(Math.floor(r() * 200)).map(() => Math.floor(r() * 256))));
      clean(() => openCaptureFile(file).close(), 'random bytes');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the lexer's IPv6 check agrees with node:net's isIPv6 on the characters an address token can hold", async () => {
  const { isIPv6 } = await import('node:net');
  const { isIPv6Text } = await import('../../src/capture/filter-lexer.js');
  const made = ['::', '::1', '1::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1::2:3:4:5:6:7:8', '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9', ':::', '1:::2', '1::2::3', ':1::', '::1:', '1:2', 'fe80::1', 'FE80::abcd:EF01', '12345::',
    '::ffff:198.18.0.1', '::198.18.0.1', '1:2:3:4:5:6:198.18.0.1', '1:2:3:4:5:6:7:198.18.0.1', '::1.2.3', '::1.2.3.4.5',
    '::256.1.1.1', '::01.1.1.1', '::0.0.0.0', '1.2.3.4::', '1.2.3.4:1::', '2001:db8::', '2001:db8:0:0:0:0:0:1', '.', ':', ''];
  for (const s of made) assert.equal(isIPv6Text(s), isIPv6(s), s);
  const rand = rng(17);
  const alphabet = '0123456789abcdefABCDEF::::....';
  let valid = 0;
  for (let i = 0; i < 50000; i++) {
    // Random strings, and valid addresses with one character changed.
    let s = '';
    if (i % 2 === 0) {
      const n = 1 + Math.floor(rand() * 24);
      for (let k = 0; k < n; k++) s += alphabet[Math.floor(rand() * alphabet.length)];
    } else {
      const base = made[Math.floor(rand() * made.length)]!;
      const at = Math.floor(rand() * (base.length + 1));
      s = base.slice(0, at) + alphabet[Math.floor(rand() * alphabet.length)] + base.slice(at + (rand() < 0.5 ? 1 : 0));
    }
    const want = isIPv6(s);
    if (want) valid++;
    assert.equal(isIPv6Text(s), want, s);
  }
  assert.ok(valid > 1000, `only ${valid} valid addresses generated`);
});
