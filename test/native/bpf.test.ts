import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as bpf from '../../src/native/bpf.js';
import * as native from '../../src/native/index.js';
import { NetmapError } from '../../src/errors.js';

const root = process.getuid?.() === 0;
const MARK = 0x4e4d5453;

test('the assembler encodes instructions as the kernel reads them', () => {
  // the XDP redirect program of xdp-vm.md §1, map descriptor 7
  const a = new bpf.Asm()
    .load(4, 2, 1, 16)
    .ldImm64(1, 7, true)
    .movImm(3, 2)
    .call(bpf.BPF_FUNC_redirect_map)
    .exit();
  assert.equal(a.build().toString('hex'),
    '6112100000000000' + '1811000007000000' + '0000000000000000' + 'b703000002000000' + '8500000033000000' + '9500000000000000');
});

test('the assembler resolves labels both ways and rejects bad ones', () => {
  const a = new bpf.Asm().label('top').jeqImm(0, 5, 'out').ja('top').label('out').exit();
  const b = a.build();
  assert.equal(b.readInt16LE(2), 1);    // jeq skips the ja
  assert.equal(b.readInt16LE(10), -2);  // ja goes back to instruction 0
  assert.throws(() => new bpf.Asm().ja('nowhere').build(), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  assert.throws(() => new bpf.Asm().label('x').label('x'), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  assert.throws(() => new bpf.Asm().movImm(11, 0), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
});

test('a SCHED_CLS program loads and its verdict depends on the skb mark', { skip: root ? false : 'needs root (bpf)' }, () => {
  const insns = new bpf.Asm()
    .load(4, 2, 1, bpf.SKB_MARK)
    .movImm(0, bpf.TCX_NEXT)
    .jeqImm(2, MARK, 'out')
    .movImm(0, bpf.TCX_DROP)
    .label('out').exit()
    .build();
  const fd = bpf.loadProgram({ type: bpf.BPF_PROG_TYPE_SCHED_CLS, insns, name: 'nmts_test', expectedAttachType: bpf.BPF_TCX_INGRESS });
  try {
    const frame = Buffer.alloc(60);
    const ctx = Buffer.alloc(192);
    assert.equal(bpf.testRun(fd, frame, ctx), bpf.TCX_DROP);
    ctx.writeUInt32LE(MARK, bpf.SKB_MARK);
    assert.equal(bpf.testRun(fd, frame, ctx), bpf.TCX_NEXT);
  } finally {
    native.closeFd(fd);
  }
});

test('the verifier refuses a bad program with its reason in the message', { skip: root ? false : 'needs root (bpf)' }, () => {
  const insns = new bpf.Asm().exit().build(); // r0 is never set
  assert.throws(() => bpf.loadProgram({ type: bpf.BPF_PROG_TYPE_SCHED_CLS, insns, name: 'nmts_bad' }),
    (e: unknown) => e instanceof NetmapError && e.code === 'EACCES' && /R0/.test(e.message));
});

test('bpf() reports a bad command as a NetmapError', () => {
  assert.ok(bpf.bpfTry(9999, bpf.bpfAttr()) < 0);
  assert.throws(() => bpf.bpf(9999, bpf.bpfAttr()), (e: unknown) => e instanceof NetmapError);
});
