/**
 * The bpf(2) system call and a small eBPF assembler, without libbpf and without a compiler.
 *
 * `bpf(cmd, attr)` is the raw call: `attr` is a zeroed `union bpf_attr` the caller fills at the
 * kernel's offsets (include/uapi/linux/bpf.h). The helpers below fill it for the commands the
 * project uses: load a program (the verifier's log goes into the error message), make and update
 * a link, query the programs on a hook, test-run a program on a frame. `Asm` emits 8-byte
 * instructions with named labels for jumps.
 *
 * Programs and links are file descriptors: a link made with BPF_LINK_CREATE detaches itself when
 * its last descriptor closes, which includes the process dying. Nothing here pins anything.
 */
import { NetmapError, errnoName, fail } from '../errors.js';
import { closeFd, koffi, libc } from './index.js';

/** bpf(2) commands (enum bpf_cmd). */
export const BPF_MAP_CREATE = 0, BPF_MAP_LOOKUP_ELEM = 1, BPF_MAP_UPDATE_ELEM = 2, BPF_MAP_DELETE_ELEM = 3;
export const BPF_PROG_LOAD = 5, BPF_PROG_TEST_RUN = 10, BPF_PROG_GET_NEXT_ID = 11, BPF_PROG_GET_FD_BY_ID = 13;
export const BPF_OBJ_GET_INFO_BY_FD = 15, BPF_PROG_QUERY = 16;
export const BPF_LINK_CREATE = 28, BPF_LINK_UPDATE = 29, BPF_LINK_GET_FD_BY_ID = 30, BPF_LINK_GET_NEXT_ID = 31;
export const BPF_LINK_DETACH = 34;

/** Program types (enum bpf_prog_type). */
export const BPF_PROG_TYPE_SCHED_CLS = 3, BPF_PROG_TYPE_XDP = 6;
/** Attach types (enum bpf_attach_type); tcx needs kernel 6.6+. */
export const BPF_XDP = 37, BPF_TCX_INGRESS = 46, BPF_TCX_EGRESS = 47;
/** Map types. */
export const BPF_MAP_TYPE_ARRAY = 2, BPF_MAP_TYPE_XSKMAP = 17;

/** tcx program verdicts. */
export const TCX_NEXT = -1, TCX_PASS = 0, TCX_DROP = 2, TCX_REDIRECT = 7;
/** Helper functions (enum bpf_func_id) and their flags. */
export const BPF_FUNC_redirect = 23, BPF_FUNC_redirect_map = 51;
export const BPF_F_INGRESS = 1;
/** Offsets of fields of `struct __sk_buff` (the SCHED_CLS context). */
export const SKB_LEN = 0, SKB_MARK = 8, SKB_PROTOCOL = 16, SKB_IFINDEX = 40;

/** Size of the attr buffers made here: larger than every command's part that we fill. */
export const BPF_ATTR_SIZE = 160;

const SYS_bpf = process.arch === 'arm64' ? 280 : 321;
const bpfFn = libc.func('long syscall(long nr, long cmd, void *attr, unsigned long size)');

/** A zeroed bpf_attr. */
export function bpfAttr(): Buffer {
  return Buffer.alloc(BPF_ATTR_SIZE);
}

/** bpf(cmd, attr): returns the result (a descriptor or 0), or -errno. Never throws. */
export function bpfTry(cmd: number, attr: Buffer): number {
  const r = Number(bpfFn(SYS_bpf, cmd, attr, attr.length));
  return r < 0 ? -koffi.errno() : r;
}

/** bpf(cmd, attr): returns the result; a failure throws a NetmapError naming `what` and the errno. */
export function bpf(cmd: number, attr: Buffer, what = `bpf(${cmd})`): number {
  const r = bpfTry(cmd, attr);
  if (r < 0) {
    const code = errnoName(-r);
    throw new NetmapError(code, `${what} failed: errno ${-r}${-r === 1 ? ' (needs root or CAP_BPF + CAP_NET_ADMIN)' : ''}`);
  }
  return r;
}

function address(b: Buffer): bigint {
  return BigInt(koffi.address(b) as unknown as number | bigint);
}

// ---- assembler --------------------------------------------------------------------------------
// Opcode byte = class | size/source | operation (include/uapi/linux/bpf_common.h, bpf.h).
const LD = 0x00, LDX = 0x01, STX = 0x03, ALU = 0x04, JMP = 0x05, ALU64 = 0x07;
const W = 0x00, H = 0x08, B = 0x10, DW = 0x18, IMM = 0x00, MEM = 0x60;
const K = 0x00, X = 0x08;
const MOV = 0xb0, ADD = 0x00, AND = 0x50;
const JA = 0x00, JEQ = 0x10, JGT = 0x20, JNE = 0x50, CALL = 0x80, EXIT = 0x90;
/** ld_imm64's source register value meaning "the immediate is a map descriptor". */
export const BPF_PSEUDO_MAP_FD = 1;

export type Size = 1 | 2 | 4 | 8;
const SIZE: Record<Size, number> = { 1: B, 2: H, 4: W, 8: DW };

/**
 * An eBPF program under construction. Registers are numbers 0..10 (r0 result, r1-r5 arguments,
 * r6-r9 callee-saved, r10 frame pointer). Jumps name a label set later or earlier with `label`;
 * `build()` resolves them and returns the instructions.
 */
export class Asm {
  private readonly ins: { op: number; dst: number; src: number; off: number; imm: number; target?: string }[] = [];
  private readonly labels = new Map<string, number>();

  private emit(op: number, dst: number, src: number, off: number, imm: number, target?: string): this {
    for (const r of [dst, src]) if (!Number.isInteger(r) || r < 0 || r > 10) fail('EINVAL', `eBPF register r${r} does not exist`);
    this.ins.push({ op, dst, src, off, imm: imm | 0, target });
    return this;
  }

  /** Marks the position of the next instruction as `name`. */
  label(name: string): this {
    if (this.labels.has(name)) fail('EINVAL', `eBPF label '${name}' is defined twice`);
    this.labels.set(name, this.ins.length);
    return this;
  }

  /** dst = imm (64-bit move of a sign-extended 32-bit immediate). */
  movImm(dst: number, imm: number): this { return this.emit(ALU64 | MOV | K, dst, 0, 0, imm); }
  /** dst = src. */
  movReg(dst: number, src: number): this { return this.emit(ALU64 | MOV | X, dst, src, 0, 0); }
  /** dst += imm. */
  addImm(dst: number, imm: number): this { return this.emit(ALU64 | ADD | K, dst, 0, 0, imm); }
  /** dst &= imm (32-bit ALU: the upper half is cleared). */
  and32Imm(dst: number, imm: number): this { return this.emit(ALU | AND | K, dst, 0, 0, imm); }
  /** dst = *(size *)(src + off). */
  load(size: Size, dst: number, src: number, off: number): this { return this.emit(LDX | MEM | SIZE[size], dst, src, off, 0); }
  /** *(size *)(dst + off) = src. */
  store(size: Size, dst: number, off: number, src: number): this { return this.emit(STX | MEM | SIZE[size], dst, src, off, 0); }
  /** dst = a 64-bit immediate (two instruction slots); `mapFd` makes it a map reference. */
  ldImm64(dst: number, value: bigint | number, mapFd = false): this {
    const v = BigInt.asUintN(64, BigInt(value));
    this.emit(LD | DW | IMM, dst, mapFd ? BPF_PSEUDO_MAP_FD : 0, 0, Number(v & 0xffffffffn));
    return this.emit(0, 0, 0, 0, Number(v >> 32n));
  }
  /** if (dst == imm) goto target. */
  jeqImm(dst: number, imm: number, target: string): this { return this.emit(JMP | JEQ | K, dst, 0, 0, imm, target); }
  /** if (dst != imm) goto target. */
  jneImm(dst: number, imm: number, target: string): this { return this.emit(JMP | JNE | K, dst, 0, 0, imm, target); }
  /** if (dst > imm) goto target (unsigned). */
  jgtImm(dst: number, imm: number, target: string): this { return this.emit(JMP | JGT | K, dst, 0, 0, imm, target); }
  /** goto target. */
  ja(target: string): this { return this.emit(JMP | JA, 0, 0, 0, 0, target); }
  /** r0 = helper(r1, ..., r5). */
  call(helper: number): this { return this.emit(JMP | CALL, 0, 0, 0, helper); }
  /** return r0. */
  exit(): this { return this.emit(JMP | EXIT, 0, 0, 0, 0); }

  /** Instruction count so far (ld_imm64 counts two). */
  get length(): number {
    return this.ins.length;
  }

  /** The program: 8 bytes per instruction, jumps resolved. EINVAL for an undefined label. */
  build(): Buffer {
    const out = Buffer.alloc(this.ins.length * 8);
    this.ins.forEach((i, n) => {
      let off = i.off;
      if (i.target !== undefined) {
        const to = this.labels.get(i.target);
        if (to === undefined) fail('EINVAL', `eBPF label '${i.target}' is not defined`);
        off = to - (n + 1);
        if (off < -32768 || off > 32767) fail('EINVAL', `eBPF jump to '${i.target}' is too far`);
      }
      out[n * 8] = i.op;
      out[n * 8 + 1] = i.dst | (i.src << 4);
      out.writeInt16LE(off, n * 8 + 2);
      out.writeInt32LE(i.imm, n * 8 + 4);
    });
    return out;
  }
}

// ---- commands -----------------------------------------------------------------------------------

export interface ProgramSpec {
  type: number;
  /** Built instructions (Asm.build()). */
  insns: Buffer;
  /** Shown by the kernel (bpftool, /proc/PID/fdinfo); at most 15 bytes kept. */
  name?: string;
  expectedAttachType?: number;
  /** Default "BSD-2-Clause" (enough for the helpers used here). */
  license?: string;
  /** prog_flags (BPF_F_XDP_HAS_FRAGS: an XDP program that handles multi-buffer frames). */
  flags?: number;
}

const EAGAIN = 11;
/** Loads made again after EAGAIN (a signal interrupted the verifier). */
const PROG_LOAD_TRIES = 5;

/** prog_flags of an XDP program that accepts multi-buffer (fragmented) frames (5.18+). */
export const BPF_F_XDP_HAS_FRAGS = 1 << 5;

/**
 * BPF_PROG_LOAD: returns the program's descriptor. A refusal by the verifier throws with the
 * verifier's last lines in the message (EINVAL, EACCES...); EPERM when not root.
 */
export function loadProgram(spec: ProgramSpec): number {
  const license = Buffer.from(`${spec.license ?? 'BSD-2-Clause'}\0`);
  const attr = bpfAttr();
  attr.writeUInt32LE(spec.type, 0);
  attr.writeUInt32LE(spec.insns.length / 8, 4);
  attr.writeBigUInt64LE(address(spec.insns), 8);
  attr.writeBigUInt64LE(address(license), 16);
  attr.writeUInt32LE(spec.flags ?? 0, 44);
  if (spec.name !== undefined) attr.write(spec.name.slice(0, 15), 48, 15, 'latin1');
  attr.writeUInt32LE(spec.expectedAttachType ?? 0, 68);
  // EAGAIN: the verifier stops when a signal is pending for the thread (a profiler's SIGPROF, a
  // SIGCHLD) and the load is to be made again, as libbpf does
  let r = bpfTry(BPF_PROG_LOAD, attr);
  for (let tries = 0; r === -EAGAIN && tries < PROG_LOAD_TRIES; tries++) r = bpfTry(BPF_PROG_LOAD, attr);
  if (r >= 0) return r;
  // Load again with the verifier's log to say why (only on failure: the log costs time).
  const log = Buffer.alloc(64 * 1024);
  attr.writeUInt32LE(1, 24);
  attr.writeUInt32LE(log.length, 28);
  attr.writeBigUInt64LE(address(log), 32);
  let again = bpfTry(BPF_PROG_LOAD, attr);
  for (let tries = 0; again === -EAGAIN && tries < PROG_LOAD_TRIES; tries++) again = bpfTry(BPF_PROG_LOAD, attr);
  if (again >= 0) return again;
  const text = log.toString('latin1', 0, Math.max(0, log.indexOf(0))).trim().split('\n').slice(-4).join(' | ');
  const code = errnoName(-r);
  throw new NetmapError(code, `cannot load eBPF program ${spec.name ?? ''}: errno ${-r}${-r === 1 ? ' (needs root)' : ''}${text !== '' ? `; verifier: ${text}` : ''}`);
}

/** BPF_LINK_CREATE on interface `ifindex`: returns the link's descriptor, or -errno (no throw). */
export function createLinkTry(progFd: number, ifindex: number, attachType: number, flags = 0): number {
  const attr = bpfAttr();
  attr.writeUInt32LE(progFd, 0);
  attr.writeUInt32LE(ifindex, 4);
  attr.writeUInt32LE(attachType, 8);
  attr.writeUInt32LE(flags, 12);
  return bpfTry(BPF_LINK_CREATE, attr);
}

/** BPF_LINK_UPDATE: puts program `newProgFd` in place of the link's program, atomically. */
export function updateLink(linkFd: number, newProgFd: number): void {
  const attr = bpfAttr();
  attr.writeUInt32LE(linkFd, 0);
  attr.writeUInt32LE(newProgFd, 4);
  bpf(BPF_LINK_UPDATE, attr, 'BPF_LINK_UPDATE');
}

/**
 * BPF_PROG_QUERY: the ids of the programs attached at `attachType` of interface `ifindex`
 * (at most `max`). Throws with the errno (EINVAL for an attach type this kernel does not know).
 */
export function queryPrograms(ifindex: number, attachType: number, max = 64): number[] {
  const ids = Buffer.alloc(max * 4);
  const attr = bpfAttr();
  attr.writeUInt32LE(ifindex, 0);
  attr.writeUInt32LE(attachType, 4);
  attr.writeBigUInt64LE(address(ids), 16);
  attr.writeUInt32LE(max, 24);
  bpf(BPF_PROG_QUERY, attr, 'BPF_PROG_QUERY');
  const n = Math.min(max, attr.readUInt32LE(24));
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(ids.readUInt32LE(i * 4));
  return out;
}

/**
 * BPF_PROG_TEST_RUN: runs the program once on a copy of `frame` (with context `ctx`, e.g. a
 * `struct __sk_buff` whose mark is set) and returns its verdict. A redirect is reported, not done.
 */
export function testRun(progFd: number, frame: Buffer, ctx?: Buffer): number {
  const out = Buffer.alloc(frame.length + 256);
  const attr = bpfAttr();
  attr.writeUInt32LE(progFd, 0);
  attr.writeUInt32LE(frame.length, 8);
  attr.writeUInt32LE(out.length, 12);
  attr.writeBigUInt64LE(address(frame), 16);
  attr.writeBigUInt64LE(address(out), 24);
  attr.writeUInt32LE(1, 32);
  if (ctx !== undefined) {
    attr.writeUInt32LE(ctx.length, 40);
    attr.writeBigUInt64LE(address(ctx), 48);
  }
  bpf(BPF_PROG_TEST_RUN, attr, 'BPF_PROG_TEST_RUN');
  return attr.readInt32LE(4);
}

/**
 * The name a program was loaded with (BPF_PROG_GET_FD_BY_ID, then BPF_OBJ_GET_INFO_BY_FD: name is
 * at offset 64 of struct bpf_prog_info); null when the program is gone.
 */
export function programName(id: number): string | null {
  const attr = bpfAttr();
  attr.writeUInt32LE(id, 0);
  const fd = bpfTry(BPF_PROG_GET_FD_BY_ID, attr);
  if (fd < 0) return null;
  try {
    const info = Buffer.alloc(256);
    const a = bpfAttr();
    a.writeUInt32LE(fd, 0);
    a.writeUInt32LE(info.length, 4);
    a.writeBigUInt64LE(address(info), 8);
    if (bpfTry(BPF_OBJ_GET_INFO_BY_FD, a) < 0) return null;
    return info.toString('latin1', 64, 80).replace(/\0.*$/s, '');
  } finally {
    closeFd(fd);
  }
}
