/**
 * Compiles a classic BPF program into a JavaScript function (through `new Function`) with the
 * exact semantics of the interpreter (interp.ts). Jumps only go forward (the validator checks),
 * so the program becomes straight-line code inside nested labelled blocks: a jump to
 * instruction t is `break Lt`, and block Lt closes right before instruction t. V8 then compiles
 * the filter to machine code that indexes the packet bytes directly, allocating nothing.
 *
 * Registers are kept as signed 32-bit values (V8's fast small-integer path) and read as
 * unsigned where BPF compares or divides.
 */
import { fail } from '../errors.js';
import { type BpfProgram, type PacketFilter, validateProgram, hasBackwardJump, bpfClass, bpfOp, BPF_JMP, BPF_JA } from './bpf.js';
import { interpretProgram } from './interp.js';

/** Programs with more distinct jump targets than this are interpreted instead (nesting depth). */
const MAX_LABELS = 2000;

/** JavaScript source of the filter body for `prog` (validated first). Exposed for debugging. */
export function programToSource(prog: BpfProgram): string {
  validateProgram(prog);
  const n = prog.length;
  const targets = new Set<number>();
  const memUsed = new Set<number>();
  for (let i = 0; i < n; i++) {
    const { code, jt, jf, k } = prog[i]!;
    if (bpfClass(code) === BPF_JMP) {
      if (bpfOp(code) === BPF_JA) targets.add(i + 1 + k);
      else { targets.add(i + 1 + jt); targets.add(i + 1 + jf); }
    }
    if (code === 0x60 || code === 0x61 || code === 0x02 || code === 0x03) memUsed.add(k);
  }
  if (targets.size > MAX_LABELS) fail('E2BIG', `BPF program has ${targets.size} jump targets, too many to compile`);

  const out: string[] = [];
  out.push('let a = 0, x = 0, t = 0;');
  for (const m of [...memUsed].sort((p, q) => p - q)) out.push(`let m${m} = 0;`);
  const sorted = [...targets].sort((p, q) => q - p); // outermost block = farthest target
  for (const t of sorted) out.push(`L${t}: {`);

  const br = (from: number, to: number): string => (to === from + 1 ? '' : `break L${to};`);
  for (let i = 0; i < n; i++) {
    if (targets.has(i)) out.push(`} // L${i}`);
    const { code, jt, jf } = prog[i]!;
    const k = prog[i]!.k >>> 0;
    const ks = k | 0; // signed view of k, to compare with the signed registers
    let s: string;
    switch (code) {
      case 0x06: s = `return ${k};`; break;
      case 0x16: s = 'return a >>> 0;'; break;
      case 0x20: s = `if (caplen < ${k + 4}) return 0; t = o + ${k}; a = (u8[t] << 24) | (u8[t + 1] << 16) | (u8[t + 2] << 8) | u8[t + 3];`; break;
      case 0x28: s = `if (caplen < ${k + 2}) return 0; t = o + ${k}; a = (u8[t] << 8) | u8[t + 1];`; break;
      case 0x30: s = `if (caplen < ${k + 1}) return 0; a = u8[o + ${k}];`; break;
      case 0x40: s = `t = (x >>> 0) + ${k}; if (t + 4 > caplen) return 0; t += o; a = (u8[t] << 24) | (u8[t + 1] << 16) | (u8[t + 2] << 8) | u8[t + 3];`; break;
      case 0x48: s = `t = (x >>> 0) + ${k}; if (t + 2 > caplen) return 0; t += o; a = (u8[t] << 8) | u8[t + 1];`; break;
      case 0x50: s = `t = (x >>> 0) + ${k}; if (t >= caplen) return 0; a = u8[o + t];`; break;
      case 0x80: s = 'a = wirelen | 0;'; break;
      case 0x00: s = `a = ${ks};`; break;
      case 0x60: s = `a = m${k};`; break;
      case 0x01: s = `x = ${ks};`; break;
      case 0x61: s = `x = m${k};`; break;
      case 0x81: s = 'x = wirelen | 0;'; break;
      case 0xb1: s = `if (caplen < ${k + 1}) return 0; x = (u8[o + ${k}] & 15) << 2;`; break;
      case 0x02: s = `m${k} = a;`; break;
      case 0x03: s = `m${k} = x;`; break;
      case 0x04: s = `a = (a + ${ks}) | 0;`; break;
      case 0x14: s = `a = (a - ${ks}) | 0;`; break;
      case 0x24: s = `a = Math.imul(a, ${ks});`; break;
      case 0x34: s = `a = (((a >>> 0) / ${k}) >>> 0) | 0;`; break;
      case 0x94: s = `a = ((a >>> 0) % ${k}) | 0;`; break;
      case 0x54: s = `a &= ${ks};`; break;
      case 0x44: s = `a |= ${ks};`; break;
      case 0xa4: s = `a ^= ${ks};`; break;
      case 0x64: s = k >= 32 ? 'a = 0;' : `a <<= ${k};`; break;
      case 0x74: s = k >= 32 ? 'a = 0;' : `a = (a >>> ${k}) | 0;`; break;
      case 0x0c: s = 'a = (a + x) | 0;'; break;
      case 0x1c: s = 'a = (a - x) | 0;'; break;
      case 0x2c: s = 'a = Math.imul(a, x);'; break;
      case 0x3c: s = 'if (x === 0) return 0; a = (((a >>> 0) / (x >>> 0)) >>> 0) | 0;'; break;
      case 0x9c: s = 'if (x === 0) return 0; a = ((a >>> 0) % (x >>> 0)) | 0;'; break;
      case 0x5c: s = 'a &= x;'; break;
      case 0x4c: s = 'a |= x;'; break;
      case 0xac: s = 'a ^= x;'; break;
      case 0x6c: s = 'a = (x >>> 0) >= 32 ? 0 : a << x;'; break;
      case 0x7c: s = 'a = (x >>> 0) >= 32 ? 0 : (a >>> x) | 0;'; break;
      case 0x84: s = 'a = -a | 0;'; break;
      case 0x07: s = 'x = a;'; break;
      case 0x87: s = 'a = x;'; break;
      case 0x05: s = br(i, i + 1 + k); break;
      default: {
        let cond: string;
        switch (code) {
          case 0x15: cond = `a === ${ks}`; break;
          case 0x25: cond = `(a >>> 0) > ${k}`; break;
          case 0x35: cond = `(a >>> 0) >= ${k}`; break;
          case 0x45: cond = `(a & ${ks}) !== 0`; break;
          case 0x1d: cond = 'a === x'; break;
          case 0x2d: cond = '(a >>> 0) > (x >>> 0)'; break;
          case 0x3d: cond = '(a >>> 0) >= (x >>> 0)'; break;
          case 0x4d: cond = '(a & x) !== 0'; break;
          default: fail('EINVAL', `BPF instruction ${i}: opcode 0x${code.toString(16)} cannot be compiled`);
        }
        const tt = i + 1 + jt, tf = i + 1 + jf;
        if (tt === tf) s = br(i, tt);
        else if (tt === i + 1) s = `if (!(${cond})) break L${tf};`;
        else if (tf === i + 1) s = `if (${cond}) break L${tt};`;
        else s = `if (${cond}) break L${tt}; break L${tf};`;
      }
    }
    out.push(s);
  }
  out.push('return 0;');
  return out.join('\n');
}

/**
 * Compiles `prog` to a JavaScript filter function. Falls back to the interpreter for programs
 * too deeply nested to compile; either way the result has the same semantics.
 */
export function compileProgram(prog: BpfProgram): PacketFilter {
  // Straight-line code cannot jump back: loops (protochain) run in the interpreter.
  if (hasBackwardJump(prog)) return interpretProgram(prog);
  let src: string;
  try {
    src = programToSource(prog);
  } catch (e) {
    if ((e as { code?: string }).code === 'E2BIG') return interpretProgram(prog);
    throw e;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    const factory = new Function(`"use strict"; return function bpfCompiled(u8, o, caplen, wirelen) {\n${src}\n};`);
    return factory() as PacketFilter;
  } catch {
    return interpretProgram(prog); // e.g. a parser nesting limit: the interpreter is equivalent
  }
}
