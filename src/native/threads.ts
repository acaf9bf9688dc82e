/**
 * Native threads for system calls that wait, so that several waits overlap: no code of ours runs
 * on them, only libc functions, started with pthread_create and always joined.
 *
 * Why: closing an AF_XDP socket, a BPF link or a TAP, or giving a packet socket its ring, waits
 * for an RCU grace period in the kernel (synchronize_net, 5-30 ms), and registering an AF_XDP
 * UMEM pins (allocates) tens of MiB. Done one after another they made most of the time an
 * interface port takes to open and close; on threads they wait at the same time.
 *
 * Two kinds of start:
 *  - `close`: libc's close() is the thread's start routine and the descriptor its argument (a
 *    start routine takes one pointer; close reads its int from the same register), so the
 *    thread's exit value is close()'s result.
 *  - any call of up to six integer or pointer arguments (`startCall`): the start routine is
 *    libc's setcontext(), on a context that makecontext() prepared to call the function with its
 *    arguments on a stack of ours and, when it returns, to end the thread (the raw exit system
 *    call: the thread's descriptor is freed by pthread_join as for any thread). The function's
 *    result is not kept: callers check what the call did (a ring exists, a UMEM is registered)
 *    and redo it in their own thread when it did not happen, which reports the real errno where
 *    the caller would have seen it.
 *
 * Threads start with every signal blocked (Node's handlers stay on its own threads), with a
 * 64 KiB stack. Where a thread cannot be made (pthread_create fails, an architecture whose
 * ucontext layout is not known here) or NETMAP_TS_THREADS=0 is set, the call runs in the caller's
 * thread instead: slower, same result.
 */
import koffi from 'koffi';

// libc bound here rather than imported from index.ts, which re-exports this module
const libc = koffi.load('libc.so.6');

const pt = {
  create: libc.func('int pthread_create(void *thread, void *attr, uintptr_t start, uintptr_t arg)'),
  join: libc.func('int pthread_join(uint64_t thread, void *retval)'),
  attrInit: libc.func('int pthread_attr_init(void *attr)'),
  attrSetStackSize: libc.func('int pthread_attr_setstacksize(void *attr, size_t size)'),
  close: libc.func('int close(int fd)'),
  getcontext: libc.func('int getcontext(void *ucp)'),
  makecontext: libc.func('void makecontext(void *ucp, uintptr_t func, int argc, ...)'),
};

/** pthread_attr_setsigmask_np (glibc 2.32+); null where libc lacks it. */
const attrSetSigmask = ((): ((attr: Buffer, set: Buffer) => number) | null => {
  try {
    return libc.func('int pthread_attr_setsigmask_np(void *attr, void *sigmask)') as (attr: Buffer, set: Buffer) => number;
  } catch {
    return null;
  }
})();

const THREAD_STACK = 64 * 1024;
/** Room for a ucontext_t (968 bytes on x86-64, 4560 on arm64). */
const UCONTEXT_BYTES = 8192;
/** Offsets in ucontext_t: uc_link, uc_stack.ss_sp, uc_stack.ss_size (both architectures), uc_sigmask. */
const UC_LINK = 8, UC_STACK_SP = 16, UC_STACK_SIZE = 32;
const UC_SIGMASK = process.arch === 'x64' ? 296 : process.arch === 'arm64' ? 40 : -1;
const SYS_exit = process.arch === 'x64' ? 60 : 93;

const addressOf = (name: string): number => Number(libc.symbol(name) as unknown as bigint);
const closeAddress = addressOf('close');
const setcontextAddress = addressOf('setcontext');
const syscallAddress = addressOf('syscall');

let attr: Buffer | null = null;

/** The attributes of every thread made here: a small stack, all signals blocked. */
function threadAttr(): Buffer {
  if (attr !== null) return attr;
  const a = Buffer.alloc(128);
  pt.attrInit(a);
  pt.attrSetStackSize(a, THREAD_STACK);
  if (attrSetSigmask !== null) attrSetSigmask(a, Buffer.alloc(128, 0xff));
  attr = a;
  return a;
}

function threadsWanted(): boolean {
  return process.env.NETMAP_TS_THREADS !== '0';
}

/** Threads started and joined so far (tests check that work went through them). */
export const threadStats = { started: 0, joined: 0, inline: 0 };

/**
 * Threads not joined yet: their memory (stacks, contexts, arguments) stays reachable from here, so
 * that a caller that lost its handle leaks it rather than letting the collector free memory a
 * running thread uses.
 */
const running = new Set<NativeThread>();

/** A native thread; join() waits for its end and returns its exit value (close: close's result). */
class NativeThread {
  private readonly id: bigint;
  /** Memory the thread uses (its contexts, stacks, the call's arguments): kept until the join. */
  private keep: unknown[] | null;

  constructor(id: bigint, keep: unknown[]) {
    this.id = id;
    this.keep = keep;
    running.add(this);
  }

  join(): number {
    if (this.keep === null) return 0;
    const ret = Buffer.alloc(8);
    pt.join(this.id, ret);
    this.keep = null;
    running.delete(this);
    threadStats.joined++;
    return ret.readInt32LE(0);
  }
}

/** pthread_create(start, arg); null when no thread could be made. */
function spawn(start: number, arg: number, keep: unknown[]): NativeThread | null {
  if (!threadsWanted()) return null;
  const id = Buffer.alloc(8);
  if (pt.create(id, threadAttr(), start, arg) !== 0) return null;
  threadStats.started++;
  return new NativeThread(id.readBigUInt64LE(0), keep);
}

/**
 * Closes every descriptor of `fds` at once: each but the last on a thread of its own, the last in
 * this thread, then joins them all. Returns when every descriptor is closed. Negative and zero
 * entries are skipped.
 */
export function closeConcurrently(fds: readonly number[]): void {
  const list = fds.filter((fd) => fd > 0);
  const threads: NativeThread[] = [];
  try {
    for (let i = 0; i < list.length - 1; i++) {
      const t = spawn(closeAddress, list[i]!, []);
      if (t !== null) threads.push(t);
      else { threadStats.inline++; pt.close(list[i]!); }
    }
    if (list.length > 0) pt.close(list[list.length - 1]!);
  } finally {
    for (const t of threads) t.join();
  }
}

/** A call running on a native thread (or already run, when none could be made); join() waits for it. */
export interface BackgroundCall {
  /** Waits for the call to end (at once when it ran inline). Idempotent. */
  join(): void;
  /** Whether it ran on a thread of its own. */
  readonly threaded: boolean;
}

/** Pointer-sized argument: a number, or a Buffer (its address; kept alive until the join). */
export type CallArg = number | Buffer;

/**
 * Runs libc function `name` with `args` (at most six integers or Buffers, passed by address) on a
 * native thread; its result is not kept (see the file comment). Where no thread can be made the
 * call runs here and now, through `inline` (the same call bound by the caller, whose result the
 * caller then sees the effects of, as with the thread).
 */
export function startCall(name: string, args: readonly CallArg[], inline: () => void): BackgroundCall {
  if (args.length > 6) throw new RangeError('startCall takes at most six arguments');
  const t = UC_SIGMASK >= 0 ? spawnCall(name, args) : null;
  if (t === null) {
    threadStats.inline++;
    inline();
    return { join: () => {}, threaded: false };
  }
  return { join: () => { t.join(); }, threaded: true };
}

function spawnCall(name: string, args: readonly CallArg[]): NativeThread | null {
  if (!threadsWanted()) return null;
  let fn: number;
  try {
    fn = addressOf(name);
  } catch {
    return null;
  }
  const call = Buffer.alloc(UCONTEXT_BYTES), end = Buffer.alloc(UCONTEXT_BYTES);
  const callStack = Buffer.alloc(THREAD_STACK), endStack = Buffer.alloc(THREAD_STACK);
  // the end context: syscall(SYS_exit, 0) ends this thread alone
  prepareContext(end, endStack, null);
  pt.makecontext(end, syscallAddress, 2, 'long', SYS_exit, 'long', 0);
  prepareContext(call, callStack, end);
  const variadic: unknown[] = [];
  for (const a of args) variadic.push('uintptr_t', typeof a === 'number' ? a : Number(koffi.address(a) as unknown as bigint));
  pt.makecontext(call, fn, args.length, ...variadic);
  return spawn(setcontextAddress, Number(koffi.address(call) as unknown as bigint), [call, end, callStack, endStack, args]);
}

/** getcontext, then this stack, every signal blocked, and `link` as the context that follows. */
function prepareContext(uc: Buffer, stack: Buffer, link: Buffer | null): void {
  pt.getcontext(uc);
  uc.writeBigUInt64LE(link === null ? 0n : BigInt(koffi.address(link) as unknown as bigint), UC_LINK);
  uc.writeBigUInt64LE(BigInt(koffi.address(stack) as unknown as bigint), UC_STACK_SP);
  uc.writeBigUInt64LE(BigInt(stack.length), UC_STACK_SIZE);
  uc.fill(0xff, UC_SIGMASK, UC_SIGMASK + 128);
}
