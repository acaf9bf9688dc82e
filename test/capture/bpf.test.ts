/**
 * Classic BPF: validator, interpreter semantics, compiler equivalence, tcpdump text formats.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type BpfProgram, validateProgram, formatProgram, parseDddProgram, stmt, jump,
  BPF_LD, BPF_LDX, BPF_ALU, BPF_JMP, BPF_RET, BPF_MISC, BPF_W, BPF_H, BPF_B, BPF_ABS, BPF_IND, BPF_LEN, BPF_IMM, BPF_MSH,
  BPF_K, BPF_X, BPF_A, BPF_JEQ, BPF_JGT, BPF_JSET, BPF_JA, BPF_DIV, BPF_MOD, BPF_LSH, BPF_RSH, BPF_NEG, BPF_ST, BPF_MEM, BPF_TAX,
  BPF_ADD, BPF_SUB, BPF_MUL, BPF_AND, BPF_OR, BPF_XOR, BPF_TXA, BPF_STX,
} from '../../src/capture/bpf.js';
import { interpretProgram } from '../../src/capture/interp.js';
import { compileProgram } from '../../src/capture/jit.js';
import { NetmapError } from '../../src/errors.js';
import { rng } from './corpus.js';

const RET_A = stmt(BPF_RET | BPF_A, 0);
const both = (prog: BpfProgram): Array<(u8: Uint8Array, o: number, c: number, w: number) => number> => [interpretProgram(prog), compileProgram(prog)];

function rejects(prog: BpfProgram, pattern: RegExp): void {
  assert.throws(() => validateProgram(prog), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL' && pattern.test(e.message));
}

test('validator rejects bad programs with a sentence naming the instruction', () => {
  rejects([], /empty/);
  rejects([stmt(0x08, 0), RET_A], /instruction 0.*unknown opcode/);
  rejects([stmt(BPF_LD | BPF_IMM, 1)], /does not end in a return/);
  rejects([jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 5, 0), RET_A], /outside the program/);
  rejects([stmt(BPF_JMP | BPF_JA, 0xffffffff), RET_A], /outside the program/);
  rejects([stmt(BPF_LD | BPF_MEM, 16), RET_A], /scratch index 16/);
  rejects([stmt(BPF_ST, 20), RET_A], /scratch index 20/);
  rejects([stmt(BPF_ALU | BPF_DIV | BPF_K, 0), RET_A], /division by constant zero/);
  rejects([stmt(BPF_ALU | BPF_MOD | BPF_K, 0), RET_A], /division by constant zero/);
  rejects(new Array(4097).fill(RET_A), /more than the limit/);
  rejects([{ code: 6, jt: 0, jf: 0, k: -1 }], /unsigned 32-bit/);
  validateProgram([stmt(BPF_RET | BPF_K, 0)]);
  validateProgram([jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1), RET_A, stmt(BPF_RET | BPF_K, 0)]);
});

test('loads past the capture length reject, in both engines', () => {
  const pkt = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  for (const [code, k, ok] of [[BPF_LD | BPF_W | BPF_ABS, 4, true], [BPF_LD | BPF_W | BPF_ABS, 5, false], [BPF_LD | BPF_H | BPF_ABS, 6, true],
    [BPF_LD | BPF_H | BPF_ABS, 7, false], [BPF_LD | BPF_B | BPF_ABS, 7, true], [BPF_LD | BPF_B | BPF_ABS, 8, false],
    [BPF_LD | BPF_B | BPF_ABS, 0xffffffff, false], [BPF_LDX | BPF_B | BPF_MSH, 8, false]] as const) {
    const prog = [stmt(code, k), stmt(BPF_RET | BPF_K, 99)];
    for (const f of both(prog)) assert.equal(f(pkt, 0, 8, 8), ok ? 99 : 0, `code 0x${code.toString(16)} k ${k}`);
  }
  // Indirect loads: X + k must fit, without 32-bit wrap-around.
  const ind = (x: number, k: number): BpfProgram => [stmt(BPF_LDX | BPF_IMM, x), stmt(BPF_LD | BPF_B | BPF_IND, k), RET_A];
  for (const f of both(ind(3, 4))) assert.equal(f(pkt, 0, 8, 8), 8);
  for (const f of both(ind(4, 4))) assert.equal(f(pkt, 0, 8, 8), 0);
  for (const f of both(ind(0xffffffff, 1))) assert.equal(f(pkt, 0, 8, 8), 0);
  // The capture length counts, not the buffer length; the offset shifts the packet.
  const big = new Uint8Array(100);
  big[50] = 7;
  for (const f of both([stmt(BPF_LD | BPF_B | BPF_ABS, 0), RET_A])) {
    assert.equal(f(big, 50, 1, 1), 7);
    assert.equal(f(big, 50, 0, 60), 0);
  }
});

test('arithmetic: division by zero rejects, shifts of 32 or more give 0, unsigned compares', () => {
  const pkt = new Uint8Array(4);
  const alu = (a: number, op: number, x: number): BpfProgram => [
    stmt(BPF_LDX | BPF_IMM, x), stmt(BPF_LD | BPF_IMM, a), stmt(BPF_ALU | op | BPF_X, 0),
    jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1), stmt(BPF_RET | BPF_K, 0xdead), RET_A,
  ];
  const cases: Array<[number, number, number, number]> = [
    [7, BPF_DIV, 0, 0], [7, BPF_MOD, 0, 0], [7, BPF_DIV, 2, 3], [0xffffffff, BPF_DIV, 3, 0x55555555], [7, BPF_MOD, 4, 3],
    [1, BPF_LSH, 31, 0x80000000], [1, BPF_LSH, 32, 0xdead], [0x80000000, BPF_RSH, 31, 1], [0x80000000, BPF_RSH, 40, 0xdead],
    [0xffffffff, BPF_ADD, 2, 1], [1, BPF_SUB, 2, 0xffffffff], [0x10000, BPF_MUL, 0x10000, 0xdead], [0xffff, BPF_MUL, 0x10001, 0xffffffff],
    [0xf0, BPF_AND, 0x3c, 0x30], [0xf0, BPF_OR, 0x0f, 0xff], [0xff, BPF_XOR, 0x0f, 0xf0],
  ];
  for (const [a, op, x, want] of cases) {
    for (const f of both(alu(a, op, x))) assert.equal(f(pkt, 0, 4, 4), want, `a=${a} op=0x${op.toString(16)} x=${x}`);
  }
  // Constant shifts by >= 32 (validator accepts them) give 0 too.
  for (const f of both([stmt(BPF_LD | BPF_IMM, 5), stmt(BPF_ALU | BPF_LSH | BPF_K, 32), jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1), stmt(BPF_RET | BPF_K, 1), stmt(BPF_RET | BPF_K, 2)])) {
    assert.equal(f(pkt, 0, 4, 4), 1);
  }
  for (const f of both([stmt(BPF_LD | BPF_IMM, 5), stmt(BPF_ALU | BPF_NEG, 0), RET_A])) assert.equal(f(pkt, 0, 4, 4), 0xfffffffb);
  // Unsigned comparison: 0x80000000 > 1.
  for (const f of both([stmt(BPF_LD | BPF_IMM, 0x80000000), jump(BPF_JMP | BPF_JGT | BPF_K, 1, 0, 1), stmt(BPF_RET | BPF_K, 1), stmt(BPF_RET | BPF_K, 2)])) {
    assert.equal(f(pkt, 0, 4, 4), 1);
  }
  for (const f of both([stmt(BPF_LD | BPF_IMM, 6), jump(BPF_JMP | BPF_JSET | BPF_K, 1, 0, 1), stmt(BPF_RET | BPF_K, 1), stmt(BPF_RET | BPF_K, 2)])) {
    assert.equal(f(pkt, 0, 4, 4), 2);
  }
  // LEN is the wire length; scratch memory; tax/txa; stx.
  for (const f of both([stmt(BPF_LD | BPF_W | BPF_LEN, 0), RET_A])) assert.equal(f(pkt, 0, 4, 1514), 1514);
  for (const f of both([stmt(BPF_LD | BPF_IMM, 9), stmt(BPF_ST, 3), stmt(BPF_LD | BPF_IMM, 1), stmt(BPF_LDX | BPF_MEM, 3),
    stmt(BPF_MISC | BPF_TXA, 0), stmt(BPF_STX, 15), stmt(BPF_LD | BPF_MEM, 15), stmt(BPF_MISC | BPF_TAX, 0), stmt(BPF_ALU | BPF_ADD | BPF_X, 0), RET_A])) {
    assert.equal(f(pkt, 0, 4, 4), 18);
  }
});

/** A random valid program: forward jumps, known opcodes, ends in a return. */
function randomProgram(r: () => number, len: number): BpfProgram {
  const ops = [0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x80, 0x01, 0xb1, 0x60, 0x61, 0x81, 0x02, 0x03, 0x04, 0x14, 0x24, 0x34, 0x94, 0x54,
    0x44, 0xa4, 0x64, 0x74, 0x0c, 0x1c, 0x2c, 0x3c, 0x9c, 0x5c, 0x4c, 0xac, 0x6c, 0x7c, 0x84, 0x07, 0x87, 0x05, 0x15, 0x25, 0x35, 0x45,
    0x1d, 0x2d, 0x3d, 0x4d, 0x06, 0x16];
  const prog: BpfProgram = [];
  for (let i = 0; i < len - 1; i++) {
    const code = ops[Math.floor(r() * ops.length)]!;
    let k = r() < 0.5 ? Math.floor(r() * 80) : Math.floor(r() * 0x100000000);
    if (code === 0x60 || code === 0x61 || code === 0x02 || code === 0x03) k %= 16;
    if ((code === 0x34 || code === 0x94) && k === 0) k = 3;
    const left = len - i - 1;
    if (code === 0x05) k = Math.floor(r() * left);
    prog.push({ code, jt: Math.floor(r() * Math.min(left, 256)), jf: Math.floor(r() * Math.min(left, 256)), k: k >>> 0 });
  }
  prog.push(r() < 0.5 ? RET_A : stmt(BPF_RET | BPF_K, Math.floor(r() * 1000)));
  return prog;
}

test('compiled programs agree with the interpreter on random programs and packets', () => {
  const r = rng(7);
  let runs = 0;
  for (let p = 0; p < 400; p++) {
    const prog = randomProgram(r, 2 + Math.floor(r() * 40));
    validateProgram(prog);
    const a = interpretProgram(prog), b = compileProgram(prog);
    for (let q = 0; q < 20; q++) {
      const len = Math.floor(r() * 100);
      const buf = new Uint8Array(len + 10);
      for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(r() * 256);
      const caplen = Math.floor(r() * (len + 1));
      assert.equal(b(buf, 5, caplen, len), a(buf, 5, caplen, len), `program ${JSON.stringify(prog)}`);
      runs++;
    }
  }
  assert.equal(runs, 8000);
});

test('-d/-dd/-ddd formats; -ddd programs parse back', () => {
  const prog: BpfProgram = [
    stmt(BPF_LD | BPF_H | BPF_ABS, 12), jump(BPF_JMP | BPF_JEQ | BPF_K, 0x800, 0, 3), stmt(BPF_LDX | BPF_B | BPF_MSH, 14),
    stmt(BPF_LD | BPF_H | BPF_IND, 16), stmt(BPF_ALU | BPF_NEG, 0), stmt(BPF_MISC | BPF_TAX, 0), stmt(BPF_ALU | BPF_MOD | BPF_K, 3),
    stmt(BPF_RET | BPF_K, 262144), stmt(BPF_RET | BPF_K, 0),
  ];
  assert.equal(formatProgram(prog, 1), [
    '(000) ldh      [12]', '(001) jeq      #0x800           jt 2\tjf 5', '(002) ldxb     4*([14]&0xf)', '(003) ldh      [x + 16]',
    '(004) neg      ', '(005) tax      ', '(006) mod      #3', '(007) ret      #262144', '(008) ret      #0', ''].join('\n'));
  assert.equal(formatProgram(prog, 2).split('\n')[1], '{ 0x15, 0, 3, 0x00000800 },');
  const ddd = formatProgram(prog, 3);
  assert.equal(ddd.split('\n')[0], '9');
  assert.deepEqual(parseDddProgram(ddd), prog);
  assert.deepEqual(parseDddProgram('1,6 0 0 262144'), [stmt(BPF_RET | BPF_K, 262144)]);
  for (const bad of ['', '2\n6 0 0 0', '1\n6 0 0', '1\n6 0 0 x', '1\n70000 0 0 0', '1\n6 0 0 4294967296', '1\n7 0 0 0']) {
    assert.throws(() => parseDddProgram(bad), NetmapError, bad);
  }
});

test("our -d printer reproduces tcpdump's -d output for tcpdump's own programs", (t) => {
  if (spawnSync('sh', ['-c', 'command -v tcpdump']).status !== 0) {
    t.skip('tcpdump is not installed');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netmap-bpf-'));
  try {
    const file = path.join(dir, 'empty.pcap');
    const hdr = Buffer.alloc(24);
    hdr.writeUInt32LE(0xa1b2c3d4, 0); hdr.writeUInt16LE(2, 4); hdr.writeUInt16LE(4, 6); hdr.writeUInt32LE(262144, 16); hdr.writeUInt32LE(1, 20);
    fs.writeFileSync(file, hdr);
    const exprs = ['tcp port 80', 'host 198.18.0.1', 'ip[0] % 3 = 1 and ip[1] ^ 2 = 0 and -ip[2] = 1', 'ip[3] << 3 = 0 and ip[3] >> ip[1] = 0',
      'ip[0] - 2 > ip[1] + 1', 'tcp[tcpflags] & tcp-syn != 0 and len > 10 and ip[ip[0]*2:2] / 3 = 5', 'vlan 10 and ip6',
      'ether host 02:00:00:00:00:01', 'less 100', 'mpls 5 and ip', 'ip[2:4] * ip[1] = 6 or ip[0] & 3 = 2 or ip[0] | 5 = 7',
      'icmp6 and ip6 src net 2001:db8::/32', 'portrange 10-20', 'ether multicast', 'ip[8] != 1 and ip[8] < 5 and ip[8] <= 9'];
    for (const e of exprs) {
      for (const level of [1, 2] as const) {
        const theirs = spawnSync('tcpdump', ['-r', file, level === 1 ? '-d' : '-dd', e], { encoding: 'utf8' }).stdout;
        const prog = parseDddProgram(spawnSync('tcpdump', ['-r', file, '-ddd', e], { encoding: 'utf8' }).stdout);
        assert.equal(formatProgram(prog, level), theirs, `${e} at level ${level}`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('backward jumps: refused by default, bounded loops in the interpreter and for compiled programs', () => {
  // Counts down from 5 in X, one backward jump per turn, then returns X + 100.
  const countdown: BpfProgram = [
    stmt(BPF_LDX | BPF_IMM, 5),
    stmt(BPF_MISC | BPF_TXA, 0), // loop:
    jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, 0),
    stmt(BPF_ALU | BPF_SUB | BPF_K, 1),
    stmt(BPF_MISC | BPF_TAX, 0),
    stmt(BPF_JMP | BPF_JA, (-5 >>> 0)), // back to loop
    stmt(BPF_ALU | BPF_ADD | BPF_K, 100),
    RET_A,
  ];
  rejects(countdown, /jumps go forward only/);
  validateProgram(countdown, { backwardJumps: true });
  assert.throws(() => validateProgram([stmt(BPF_JMP | BPF_JA, (-2 >>> 0)), RET_A], { backwardJumps: true }), /before the program/);
  for (const f of both(countdown)) assert.equal(f(new Uint8Array(0), 0, 0, 0), 100);
  // A loop that never ends is cut after BPF_MAX_BACKWARD_JUMPS turns: the packet is rejected.
  const forever: BpfProgram = [stmt(BPF_LD | BPF_IMM, 1), stmt(BPF_JMP | BPF_JA, (-1 >>> 0)), RET_A];
  for (const f of both(forever)) assert.equal(f(new Uint8Array(0), 0, 0, 0), 0);
  // tcpdump's -ddd text of a protochain filter (with its backward ja) is accepted as a program.
  const text = formatProgram(countdown, 3);
  assert.deepEqual(parseDddProgram(text), countdown);
});
