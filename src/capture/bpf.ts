/**
 * Classic BPF: instruction encoding, the validator, and the three tcpdump text formats
 * (-d, -dd, -ddd) plus a parser for the -ddd format.
 *
 * A program is an array of instructions {code, jt, jf, k}; k is an unsigned 32-bit number.
 * Filters built from a program are functions (u8, offset, caplen, wirelen) => snap length
 * (0 = reject); see interp.ts (interpreter) and jit.ts (compiler to JavaScript).
 */
import { fail } from '../errors.js';

export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}
export type BpfProgram = BpfInsn[];

/** A packet filter: returns how many bytes of the packet to keep, 0 to reject it. */
export type PacketFilter = (u8: Uint8Array, offset: number, caplen: number, wirelen: number) => number;

// Classes.
export const BPF_LD = 0x00, BPF_LDX = 0x01, BPF_ST = 0x02, BPF_STX = 0x03;
export const BPF_ALU = 0x04, BPF_JMP = 0x05, BPF_RET = 0x06, BPF_MISC = 0x07;
// Sizes.
export const BPF_W = 0x00, BPF_H = 0x08, BPF_B = 0x10;
// Modes.
export const BPF_IMM = 0x00, BPF_ABS = 0x20, BPF_IND = 0x40, BPF_MEM = 0x60, BPF_LEN = 0x80, BPF_MSH = 0xa0;
// ALU operations.
export const BPF_ADD = 0x00, BPF_SUB = 0x10, BPF_MUL = 0x20, BPF_DIV = 0x30, BPF_OR = 0x40, BPF_AND = 0x50;
export const BPF_LSH = 0x60, BPF_RSH = 0x70, BPF_NEG = 0x80, BPF_MOD = 0x90, BPF_XOR = 0xa0;
// Jumps.
export const BPF_JA = 0x00, BPF_JEQ = 0x10, BPF_JGT = 0x20, BPF_JGE = 0x30, BPF_JSET = 0x40;
// Operand source.
export const BPF_K = 0x00, BPF_X = 0x08;
// Return value source.
export const BPF_A = 0x10;
// Misc.
export const BPF_TAX = 0x00, BPF_TXA = 0x80;

export const BPF_MEMWORDS = 16;
export const BPF_MAXINSNS = 4096;
/** tcpdump's default snapshot length, the value of `ret` for an accepting filter. */
export const MAXIMUM_SNAPLEN = 262144;

export const bpfClass = (code: number): number => code & 0x07;
export const bpfSize = (code: number): number => code & 0x18;
export const bpfMode = (code: number): number => code & 0xe0;
export const bpfOp = (code: number): number => code & 0xf0;
export const bpfSrc = (code: number): number => code & 0x08;

export function stmt(code: number, k: number): BpfInsn {
  return { code, jt: 0, jf: 0, k: k >>> 0 };
}
export function jump(code: number, k: number, jt: number, jf: number): BpfInsn {
  return { code, jt, jf, k: k >>> 0 };
}

/** Mnemonic and operand format of each of the 49 valid opcodes, as libpcap's bpf_image prints them. */
const IMAGE: ReadonlyMap<number, [string, string]> = new Map<number, [string, string]>([
  [0x06, ['ret', '#%d']], [0x16, ['ret', '']],
  [0x20, ['ld', '[%d]']], [0x28, ['ldh', '[%d]']], [0x30, ['ldb', '[%d]']],
  [0x80, ['ld', '#pktlen']],
  [0x40, ['ld', '[x + %d]']], [0x48, ['ldh', '[x + %d]']], [0x50, ['ldb', '[x + %d]']],
  [0x00, ['ld', '#0x%x']], [0x01, ['ldx', '#0x%x']], [0xb1, ['ldxb', '4*([%d]&0xf)']],
  [0x60, ['ld', 'M[%d]']], [0x61, ['ldx', 'M[%d]']], [0x81, ['ldx', '#pktlen']],
  [0x02, ['st', 'M[%d]']], [0x03, ['stx', 'M[%d]']],
  [0x05, ['ja', '%J']],
  [0x15, ['jeq', '#0x%x']], [0x25, ['jgt', '#0x%x']], [0x35, ['jge', '#0x%x']], [0x45, ['jset', '#0x%x']],
  [0x1d, ['jeq', 'x']], [0x2d, ['jgt', 'x']], [0x3d, ['jge', 'x']], [0x4d, ['jset', 'x']],
  [0x04, ['add', '#%d']], [0x14, ['sub', '#%d']], [0x24, ['mul', '#%d']], [0x34, ['div', '#%d']],
  [0x94, ['mod', '#%d']], [0x54, ['and', '#0x%x']], [0x44, ['or', '#0x%x']], [0xa4, ['xor', '#0x%x']],
  [0x64, ['lsh', '#%d']], [0x74, ['rsh', '#%d']],
  [0x0c, ['add', 'x']], [0x1c, ['sub', 'x']], [0x2c, ['mul', 'x']], [0x3c, ['div', 'x']],
  [0x9c, ['mod', 'x']], [0x5c, ['and', 'x']], [0x4c, ['or', 'x']], [0xac, ['xor', 'x']],
  [0x6c, ['lsh', 'x']], [0x7c, ['rsh', 'x']],
  [0x84, ['neg', '']], [0x07, ['tax', '']], [0x87, ['txa', '']],
]);

/** True when `code` is one of the 49 opcodes classic BPF defines. */
export function isValidOpcode(code: number): boolean {
  return IMAGE.has(code);
}

export interface ValidateOptions {
  /** Maximum program length (default BPF_MAXINSNS = 4096). */
  maxInsns?: number;
  /**
   * Accept `ja` to an earlier instruction (k read as a negative 32-bit offset), as libpcap's
   * `protochain` loop uses; runners bound such loops (BPF_MAX_BACKWARD_JUMPS). Default false:
   * kernels accept forward jumps only.
   */
  backwardJumps?: boolean;
}

/** Backward jumps one run may take before the packet is rejected (protochain loops end far sooner). */
export const BPF_MAX_BACKWARD_JUMPS = 65536;

/** True when some `ja` of the program goes backward (k is a negative 32-bit offset). */
export function hasBackwardJump(prog: readonly BpfInsn[]): boolean {
  return prog.some((s) => s.code === (BPF_JMP | BPF_JA) && s.k >= 0x80000000);
}

/**
 * Checks a program the way FreeBSD's bpf_validate does: known opcodes only, 1..4096
 * instructions, jumps forward and inside the program, scratch index < 16, no constant division
 * by zero, last instruction a return. Throws EINVAL naming the instruction otherwise.
 */
export function validateProgram(prog: readonly BpfInsn[], options: ValidateOptions = {}): void {
  const max = options.maxInsns ?? BPF_MAXINSNS;
  const n = prog.length;
  if (n === 0) fail('EINVAL', 'BPF program is empty');
  if (n > max) fail('EINVAL', `BPF program has ${n} instructions, more than the limit of ${max}`);
  for (let i = 0; i < n; i++) {
    const { code, jt, jf, k } = prog[i]!;
    const where = `BPF instruction ${i} (code 0x${hex(code)})`;
    if (!Number.isInteger(code) || code < 0 || code > 0xffff) fail('EINVAL', `${where}: opcode is not a 16-bit number`);
    if (!Number.isInteger(jt) || jt < 0 || jt > 255 || !Number.isInteger(jf) || jf < 0 || jf > 255) {
      fail('EINVAL', `${where}: jump offsets must be 0..255`);
    }
    if (!Number.isInteger(k) || k < 0 || k > 0xffffffff) fail('EINVAL', `${where}: k is not an unsigned 32-bit number`);
    if (!IMAGE.has(code)) fail('EINVAL', `${where}: unknown opcode`);
    const cls = bpfClass(code);
    if ((cls === BPF_LD || cls === BPF_LDX) && bpfMode(code) === BPF_MEM && k >= BPF_MEMWORDS) {
      fail('EINVAL', `${where}: scratch index ${k} is out of range 0..15`);
    }
    if ((cls === BPF_ST || cls === BPF_STX) && k >= BPF_MEMWORDS) {
      fail('EINVAL', `${where}: scratch index ${k} is out of range 0..15`);
    }
    if (cls === BPF_ALU && bpfSrc(code) === BPF_K && k === 0 && (bpfOp(code) === BPF_DIV || bpfOp(code) === BPF_MOD)) {
      fail('EINVAL', `${where}: division by constant zero`);
    }
    if (cls === BPF_JMP) {
      const left = n - i - 1;
      if (bpfOp(code) === BPF_JA) {
        if (options.backwardJumps === true && k >= 0x80000000) {
          const target = i + 1 + (k - 0x100000000);
          if (target < 0) fail('EINVAL', `${where}: jump target ${target} is before the program`);
          continue;
        }
        if (k >= left) fail('EINVAL', `${where}: jump target ${i + 1 + k} is outside the program (jumps go forward only)`);
      } else if (jt >= left || jf >= left) {
        fail('EINVAL', `${where}: jump target ${i + 1 + Math.max(jt, jf)} is outside the program`);
      }
    }
  }
  if (bpfClass(prog[n - 1]!.code) !== BPF_RET) fail('EINVAL', `BPF program does not end in a return (instruction ${n - 1})`);
}

function hex(v: number): string {
  return (v >>> 0).toString(16);
}

/** One instruction in tcpdump -d format, e.g. `(001) jeq      #0x800           jt 2\tjf 5`. */
export function formatInsn(insn: BpfInsn, n: number): string {
  const image = IMAGE.get(insn.code);
  let op: string;
  let operand: string;
  if (image === undefined) {
    op = 'unimp';
    operand = `0x${hex(insn.code)}`;
  } else {
    op = image[0];
    operand = image[1]
      .replace('%d', String(insn.k | 0))
      .replace('%x', hex(insn.k))
      .replace('%J', String((n + 1 + insn.k) | 0));
  }
  const num = String(n).padStart(3, '0');
  if (bpfClass(insn.code) === BPF_JMP && bpfOp(insn.code) !== BPF_JA) {
    return `(${num}) ${op.padEnd(8)} ${operand.padEnd(16)} jt ${n + 1 + insn.jt}\tjf ${n + 1 + insn.jf}`;
  }
  return `(${num}) ${op.padEnd(8)} ${operand}`;
}

/** Whole program in one of tcpdump's formats: level 1 = -d, 2 = -dd, 3 = -ddd. */
export function formatProgram(prog: readonly BpfInsn[], level: 1 | 2 | 3): string {
  if (level === 1) return prog.map((insn, i) => formatInsn(insn, i)).join('\n') + '\n';
  if (level === 2) {
    return prog.map((p) => `{ 0x${hex(p.code)}, ${p.jt}, ${p.jf}, 0x${hex(p.k).padStart(8, '0')} },`).join('\n') + '\n';
  }
  return `${prog.length}\n` + prog.map((p) => `${p.code} ${p.jt} ${p.jf} ${p.k >>> 0}`).join('\n') + '\n';
}

/**
 * Parses a program in tcpdump's -ddd format: a count, then `code jt jf k` per instruction, in
 * decimal, separated by newlines or commas (the xt_bpf form). The program is validated.
 */
export function parseDddProgram(text: string): BpfProgram {
  const tokens = text.trim().split(/[\s,]+/).filter((t) => t.length > 0);
  if (tokens.length === 0) fail('EINVAL', 'raw BPF program is empty');
  const num = (t: string, at: number, max: number): number => {
    if (!/^\d+$/.test(t)) fail('EINVAL', `raw BPF program: token ${at + 1} '${t}' is not a decimal number`);
    const v = Number(t);
    if (v > max) fail('EINVAL', `raw BPF program: token ${at + 1} '${t}' is larger than ${max}`);
    return v;
  };
  const count = num(tokens[0]!, 0, BPF_MAXINSNS);
  if (tokens.length !== 1 + 4 * count) {
    fail('EINVAL', `raw BPF program announces ${count} instructions but has ${(tokens.length - 1) / 4} (${tokens.length - 1} numbers)`);
  }
  const prog: BpfProgram = [];
  for (let i = 0; i < count; i++) {
    const b = 1 + 4 * i;
    prog.push({
      code: num(tokens[b]!, b, 0xffff), jt: num(tokens[b + 1]!, b + 1, 255),
      jf: num(tokens[b + 2]!, b + 2, 255), k: num(tokens[b + 3]!, b + 3, 0xffffffff),
    });
  }
  validateProgram(prog, { backwardJumps: true });
  return prog;
}

/** True when text looks like a -ddd program (only numbers, commas and white space). */
export function looksLikeDddProgram(text: string): boolean {
  return /^[\s\d,]+$/.test(text) && /\d/.test(text);
}
