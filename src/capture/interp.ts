/**
 * The classic BPF interpreter, with libpcap's userland semantics: big-endian loads, a load past
 * the capture length rejects, division or modulo by zero rejects, shifts by 32 or more give 0,
 * LEN is the wire length, the return value is the snap length (0 = reject).
 *
 * The program is validated first and copied into flat typed arrays, so running it allocates
 * nothing per packet. Reads are unchecked (`!`): the validator keeps `pc` inside the program and
 * `k` of M[k] below 16, and every packet load is behind its caplen check (the caller's contract:
 * offset + caplen <= u8.length; a read past the array would give undefined, which the bit
 * operations turn into 0).
 */
import {
  type BpfProgram, type PacketFilter, validateProgram, BPF_ST, BPF_STX, BPF_RET, BPF_MISC, BPF_MEMWORDS,
  BPF_MAX_BACKWARD_JUMPS,
} from './bpf.js';

/** Returns a filter function that interprets `prog` (validated first; EINVAL if invalid). */
export function interpretProgram(prog: BpfProgram): PacketFilter {
  validateProgram(prog, { backwardJumps: true });
  const n = prog.length;
  const codes = new Uint16Array(n);
  const jts = new Uint8Array(n);
  const jfs = new Uint8Array(n);
  const ks = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    codes[i] = prog[i]!.code;
    jts[i] = prog[i]!.jt;
    jfs[i] = prog[i]!.jf;
    ks[i] = prog[i]!.k;
  }
  const mem = new Uint32Array(BPF_MEMWORDS);

  return function bpfInterpret(u8: Uint8Array, offset: number, caplen: number, wirelen: number): number {
    let a = 0; // accumulator, kept as an unsigned 32-bit number
    let x = 0; // index register, unsigned 32-bit
    mem.fill(0);
    let pc = 0;
    let backward = 0;
    for (;;) {
      const code = codes[pc];
      const k = ks[pc]!;
      let idx: number;
      switch (code) {
        case BPF_RET | 0x00: return k;
        case BPF_RET | 0x10: return a;
        // LD W/H/B ABS
        case 0x20:
          if (k + 4 > caplen) return 0;
          idx = offset + k;
          a = ((u8[idx]! << 24) | (u8[idx + 1]! << 16) | (u8[idx + 2]! << 8) | u8[idx + 3]!) >>> 0;
          break;
        case 0x28:
          if (k + 2 > caplen) return 0;
          idx = offset + k;
          a = (u8[idx]! << 8) | u8[idx + 1]!;
          break;
        case 0x30:
          if (k >= caplen) return 0;
          a = u8[offset + k]!;
          break;
        // LD W/H/B IND
        case 0x40:
          idx = x + k;
          if (idx + 4 > caplen) return 0;
          idx += offset;
          a = ((u8[idx]! << 24) | (u8[idx + 1]! << 16) | (u8[idx + 2]! << 8) | u8[idx + 3]!) >>> 0;
          break;
        case 0x48:
          idx = x + k;
          if (idx + 2 > caplen) return 0;
          idx += offset;
          a = (u8[idx]! << 8) | u8[idx + 1]!;
          break;
        case 0x50:
          idx = x + k;
          if (idx >= caplen) return 0;
          a = u8[offset + idx]!;
          break;
        case 0x80: a = wirelen >>> 0; break; // ld #pktlen
        case 0x00: a = k; break; // ld #k
        case 0x60: a = mem[k]!; break; // ld M[k]
        case 0x01: x = k; break; // ldx #k
        case 0x61: x = mem[k]!; break; // ldx M[k]
        case 0x81: x = wirelen >>> 0; break; // ldx #pktlen
        case 0xb1: // ldxb 4*([k]&0xf)
          if (k >= caplen) return 0;
          x = (u8[offset + k]! & 0xf) << 2;
          break;
        case BPF_ST: mem[k] = a; break;
        case BPF_STX: mem[k] = x; break;
        // ALU, K then X
        case 0x04: a = (a + k) >>> 0; break;
        case 0x14: a = (a - k) >>> 0; break;
        case 0x24: a = Math.imul(a, k) >>> 0; break;
        case 0x34: a = Math.floor(a / k) >>> 0; break;
        case 0x94: a = (a % k) >>> 0; break;
        case 0x54: a = (a & k) >>> 0; break;
        case 0x44: a = (a | k) >>> 0; break;
        case 0xa4: a = (a ^ k) >>> 0; break;
        case 0x64: a = k >= 32 ? 0 : (a << k) >>> 0; break;
        case 0x74: a = k >= 32 ? 0 : a >>> k; break;
        case 0x0c: a = (a + x) >>> 0; break;
        case 0x1c: a = (a - x) >>> 0; break;
        case 0x2c: a = Math.imul(a, x) >>> 0; break;
        case 0x3c: if (x === 0) return 0; a = Math.floor(a / x) >>> 0; break;
        case 0x9c: if (x === 0) return 0; a = (a % x) >>> 0; break;
        case 0x5c: a = (a & x) >>> 0; break;
        case 0x4c: a = (a | x) >>> 0; break;
        case 0xac: a = (a ^ x) >>> 0; break;
        case 0x6c: a = x >= 32 ? 0 : (a << x) >>> 0; break;
        case 0x7c: a = x >= 32 ? 0 : a >>> x; break;
        case 0x84: a = (0 - a) >>> 0; break;
        // JMP
        case 0x05:
          if (k < 0x80000000) { pc += k; break; }
          // A loop (libpcap's protochain): bounded, then the packet is rejected.
          if (++backward > BPF_MAX_BACKWARD_JUMPS) return 0;
          pc += k - 0x100000000;
          break;
        case 0x15: pc += a === k ? jts[pc]! : jfs[pc]!; break;
        case 0x25: pc += a > k ? jts[pc]! : jfs[pc]!; break;
        case 0x35: pc += a >= k ? jts[pc]! : jfs[pc]!; break;
        case 0x45: pc += (a & k) !== 0 ? jts[pc]! : jfs[pc]!; break;
        case 0x1d: pc += a === x ? jts[pc]! : jfs[pc]!; break;
        case 0x2d: pc += a > x ? jts[pc]! : jfs[pc]!; break;
        case 0x3d: pc += a >= x ? jts[pc]! : jfs[pc]!; break;
        case 0x4d: pc += (a & x) !== 0 ? jts[pc]! : jfs[pc]!; break;
        // MISC
        case BPF_MISC | 0x00: x = a; break;
        case BPF_MISC | 0x80: a = x; break;
        default: return 0; // unreachable: the validator accepts only the opcodes above
      }
      pc++;
    }
  };
}
