/**
 * The one module that talks to the kernel. Every native call of netmap-ts goes through here,
 * through koffi bindings on libc. Keep it small: thin wrappers that turn a failing call into
 * a NetmapError with the errno name, nothing more.
 *
 * Addresses are plain JavaScript numbers: user-space addresses on x86-64 and arm64 are below
 * 2^48, well inside the 2^53 range of exact integers.
 */
import koffi from 'koffi';
import { NetmapError, errnoName } from '../errors.js';

const libc = koffi.load('libc.so.6');

const c = {
  open: libc.func('int open(const char *path, int flags, int mode)'),
  close: libc.func('int close(int fd)'),
  // ssize_t read as int: only small reads go through here
  pread: libc.func('int pread(int fd, void *buf, size_t count, int64_t offset)'),
  ftruncate: libc.func('int ftruncate(int fd, int64_t length)'),
  fallocate: libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
  mmapPtr: libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
  mmapAt: libc.func('uintptr_t mmap(uintptr_t addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
  munmap: libc.func('int munmap(uintptr_t addr, size_t length)'),
  getpid: libc.func('int getpid()'),
  gettid: libc.func('int gettid()'),
  kill: libc.func('int kill(int pid, int sig)'),
  schedYield: libc.func('int sched_yield()'),
  flock: libc.func('int flock(int fd, int operation)'),
  // syscall(2) is written in assembly in glibc and reads its arguments from registers, so a fixed
  // prototype is safe and far cheaper per call than koffi's variadic path.
  futex: libc.func('long syscall(long nr, uintptr_t uaddr, long op, long val, void *timeout, uintptr_t uaddr2, long val3)'),
  futexWaitv: libc.func('long syscall(long nr, void *waiters, long count, long flags, void *timeout, long clockid)'),
  clockGettime: libc.func('int clock_gettime(int clockid, _Out_ void *ts)'),
};

export const O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0o100, O_EXCL = 0o200, O_CLOEXEC = 0o2000000;
export const PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2;
export const MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000;
export const LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;

const SYS_futex = 202, SYS_futex_waitv = 449;
const FUTEX_WAIT = 0, FUTEX_WAKE = 1;
const FUTEX_32 = 2;

function check(result: number, what: string): number {
  if (result < 0) {
    const errno = koffi.errno();
    throw new NetmapError(errnoName(errno), `${what} failed: errno ${errno}`);
  }
  return result;
}

export function errno(): number {
  return koffi.errno();
}

export function openFile(path: string, flags: number, mode = 0o600): number {
  return check(c.open(path, flags | O_CLOEXEC, mode), `open(${path})`);
}

/** pread(2) of up to `len` bytes at file offset `offset` into `buf`; returns bytes or -errno (no throw). */
export function preadInto(fd: number, buf: Uint8Array, len: number, offset: number): number {
  const r = c.pread(fd, buf, Math.min(len, buf.length), offset) as number;
  return r < 0 ? -koffi.errno() : r;
}

export function closeFd(fd: number): void {
  c.close(fd);
}

export function ftruncate(fd: number, length: number): void {
  check(c.ftruncate(fd, length), 'ftruncate');
}

const FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2;

/** Frees the pages of [offset, offset + length) of file `fd`, which then read as zeros (EOPNOTSUPP where the file system cannot). */
export function punchHole(fd: number, offset: number, length: number): void {
  check(c.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length), 'fallocate');
}

/** Whole-file advisory lock; returns false instead of throwing when LOCK_NB finds it held. */
export function flock(fd: number, operation: number): boolean {
  const r = c.flock(fd, operation);
  if (r < 0) {
    const e = koffi.errno();
    if (e === 11 /* EWOULDBLOCK */) return false;
    throw new NetmapError(errnoName(e), `flock failed: errno ${e}`);
  }
  return true;
}

/**
 * Reserves `length` bytes of address space (no memory, no access) and returns its address and an
 * ArrayBuffer spanning it. Files are later mapped into it with mapFileAt(). Touching a part that
 * has nothing mapped is a fatal SIGSEGV, so callers only index inside mapped regions.
 */
export function reserveAddressSpace(length: number): { address: number; buffer: ArrayBuffer } {
  const ptr = c.mmapPtr(null, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  const address = Number(koffi.address(ptr));
  if (address === 0 || address === 2 ** 64 - 1 || address < 0) throw new NetmapError('ENOMEM', `cannot reserve ${length} bytes of address space`);
  return { address, buffer: koffi.view(ptr, length) as ArrayBuffer };
}

/**
 * Maps `length` bytes of file `fd` from `offset` (0 by default; a multiple of the page size, or an
 * AF_XDP ring's page offset) read-write and shared at exactly `address`.
 */
export function mapFileAt(address: number, length: number, fd: number, offset = 0): void {
  const r = c.mmapAt(address, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, offset);
  if (Number(r) !== address) {
    const e = koffi.errno();
    throw new NetmapError(errnoName(e), `mmap of ${length} bytes failed: errno ${e}`);
  }
}

/** Puts inaccessible, memory-free address space back over [address, address+length). */
export function unmapToReserved(address: number, length: number): void {
  c.mmapAt(address, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
}

export function getpid(): number {
  return c.getpid();
}

export function gettid(): number {
  return c.gettid();
}

/**
 * sched_yield(2): lets another thread that is ready to run on this CPU have it now (returns at
 * once when none is). For a consumer that must not keep a shared CPU from the producers it
 * watches (netmap dump between its batches).
 */
export function schedYield(): void {
  c.schedYield();
}

/** True when process `pid` exists (kill(pid, 0) succeeds or fails with EPERM). */
export function processAlive(pid: number): boolean {
  if (pid <= 0) return false;
  if (c.kill(pid, 0) === 0) return true;
  return koffi.errno() === 1; // EPERM: it exists but belongs to someone else
}

const timespec = Buffer.alloc(16);
const timespecWords = new Uint32Array(timespec.buffer, timespec.byteOffset, 4);

/**
 * Sleeps while the 32-bit word at `address` equals `expected`, at most `timeoutMs` (negative:
 * no limit). Shared (not private) futex, so it works across processes mapping the same file.
 * Returns false on timeout.
 */
export function futexWait(address: number, expected: number, timeoutMs: number): boolean {
  let ts: Buffer | null = null;
  if (timeoutMs >= 0) {
    // relative timeout; written as 32-bit words, no BigInt (this runs in data-path loops)
    const sec = Math.floor(timeoutMs / 1000);
    timespecWords[0] = sec % 0x1_0000_0000;
    timespecWords[1] = Math.floor(sec / 0x1_0000_0000);
    timespecWords[2] = Math.floor((timeoutMs - sec * 1000) * 1e6);
    timespecWords[3] = 0;
    ts = timespec;
  }
  const r = c.futex(SYS_futex, address, FUTEX_WAIT, expected | 0, ts, 0, 0);
  if (r < 0) return koffi.errno() !== 110; // ETIMEDOUT
  return true;
}

/** Wakes up to `count` waiters on the word at `address`. */
export function futexWake(address: number, count = 0x7fffffff): number {
  return Number(c.futex(SYS_futex, address, FUTEX_WAKE, count, null, 0, 0));
}

const MAX_WAITV = 128;
const waitvBuffer = Buffer.alloc(MAX_WAITV * 24);
const waitvWords = new Uint32Array(waitvBuffer.buffer, waitvBuffer.byteOffset, MAX_WAITV * 6);
const waitvTimeout = Buffer.alloc(16);
const waitvTimeoutWords = new Uint32Array(waitvTimeout.buffer, waitvTimeout.byteOffset, 4);
const TWO_32 = 0x1_0000_0000;

/** clock_gettime's timespec (little-endian 64-bit seconds, 64-bit nanoseconds), read as words. */
const clockWords = new Uint32Array(4);
const CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1;

/**
 * CLOCK_MONOTONIC in nanoseconds as a float64 (exact to the ns for 104 days of uptime; the same
 * clock as process.hrtime.bigint() and futex_waitv's deadlines). Allocates nothing, unlike
 * process.hrtime.bigint() (a BigInt a call) and, on Node 20, performance.now() (an array a call):
 * in a loop that reads the clock between passes that garbage meant a minor GC every few tens of
 * milliseconds, each a pause of the thread (a late dummynet release, a receive ring overflowing).
 */
export function monotonicNs(): number {
  c.clockGettime(CLOCK_MONOTONIC, clockWords);
  return (clockWords[0]! + clockWords[1]! * TWO_32) * 1e9 + clockWords[2]!;
}

/** CLOCK_MONOTONIC in milliseconds (fractional), allocating nothing where the caller inlines it. */
export function monotonicMs(): number {
  c.clockGettime(CLOCK_MONOTONIC, clockWords);
  return (clockWords[0]! + clockWords[1]! * TWO_32) * 1e3 + clockWords[2]! * 1e-6;
}

/** The last reading of readClock(): [0] CLOCK_MONOTONIC in milliseconds (fractional). */
export const clock = new Float64Array(1);

/**
 * Reads CLOCK_MONOTONIC into clock[0] (ms). For spin loops and per-sync checks: a function that
 * returns a double hands its caller a fresh heap number whenever the compiler did not inline it
 * (seen: a receiver's rxsync made 24 MB of them in 2 s in some runs and none in others); a value
 * read from a Float64Array is never boxed.
 */
export function readClock(): void {
  c.clockGettime(CLOCK_MONOTONIC, clockWords);
  clock[0] = (clockWords[0]! + clockWords[1]! * TWO_32) * 1e3 + clockWords[2]! * 1e-6;
}

/** The last reading of readClockNs(): [0] CLOCK_MONOTONIC in nanoseconds (exact, as monotonicNs). */
export const clockNs = new Float64Array(1);

/** Reads CLOCK_MONOTONIC into clockNs[0] (ns): monotonicNs without a returned double (see readClock). */
export function readClockNs(): void {
  c.clockGettime(CLOCK_MONOTONIC, clockWords);
  clockNs[0] = (clockWords[0]! + clockWords[1]! * TWO_32) * 1e9 + clockWords[2]!;
}

/** The last reading of readRealClock(): [0] CLOCK_REALTIME in milliseconds since the epoch (fractional). */
export const realClock = new Float64Array(1);

/** Reads CLOCK_REALTIME into realClock[0] (ms): Date.now() without its heap number (see readClock). */
export function readRealClock(): void {
  c.clockGettime(CLOCK_REALTIME, clockWords);
  realClock[0] = (clockWords[0]! + clockWords[1]! * TWO_32) * 1e3 + clockWords[2]! * 1e-6;
}

/** CLOCK_REALTIME in milliseconds since the epoch (fractional: µs resolution), allocating nothing. */
export function realtimeMs(): number {
  c.clockGettime(CLOCK_REALTIME, clockWords);
  return (clockWords[0]! + clockWords[1]! * TWO_32) * 1e3 + clockWords[2]! * 1e-6;
}

/**
 * Reads CLOCK_REALTIME into `out`: out[0] seconds since the epoch (low 32 bits: until 2106),
 * out[1] microseconds. Allocates nothing (a ring's timestamp is set on every receive sync).
 */
export function realtimeUs(out: Uint32Array): void {
  c.clockGettime(CLOCK_REALTIME, clockWords);
  out[0] = clockWords[0]!;
  out[1] = (clockWords[2]! / 1000) >>> 0;
}

/**
 * Sleeps until any of the words changes from its expected value (futex_waitv, Linux 5.16+),
 * at most `timeoutMs`. Returns false on timeout. Allocates nothing (it runs in data-path loops).
 */
export function futexWaitAny(addresses: ArrayLike<number>, expected: ArrayLike<number>, count: number, timeoutMs: number): boolean {
  if (count === 1) return futexWait(addresses[0]!, expected[0]!, timeoutMs);
  if (count > MAX_WAITV) count = MAX_WAITV;
  const w = waitvWords;
  for (let i = 0; i < count; i++) {
    const a = addresses[i]!, k = i * 6;
    w[k] = expected[i]! >>> 0;
    w[k + 1] = 0;
    w[k + 2] = a % TWO_32;
    w[k + 3] = Math.floor(a / TWO_32);
    w[k + 4] = FUTEX_32;
    w[k + 5] = 0;
  }
  let ts: Buffer | null = null;
  if (timeoutMs >= 0) {
    // futex_waitv takes an absolute CLOCK_MONOTONIC deadline.
    const deadlineNs = monotonicNs() + Math.floor(timeoutMs * 1e6);
    const sec = Math.floor(deadlineNs / 1e9);
    const t = waitvTimeoutWords;
    t[0] = sec % TWO_32;
    t[1] = Math.floor(sec / TWO_32);
    t[2] = deadlineNs - sec * 1e9;
    t[3] = 0;
    ts = waitvTimeout;
  }
  const r = c.futexWaitv(SYS_futex_waitv, waitvBuffer, count, 0, ts, 1 /* CLOCK_MONOTONIC */);
  if (r < 0) return koffi.errno() !== 110;
  return true;
}

/** Native threads for system calls that wait (closes, ring set-ups): threads.ts. */
import { startCall, type BackgroundCall } from './threads.js';
export { closeConcurrently, startCall, threadStats, type BackgroundCall, type CallArg } from './threads.js';

const MADV_POPULATE_WRITE = 23; // Linux 5.14+; older kernels: EINVAL, and the pages fault in as used

/**
 * Faults the pages of [address, address + length) of this thread's mappings in, writable, on a
 * native thread (madvise MADV_POPULATE_WRITE): one system call where first touches from
 * JavaScript cost a trap each (12 us a page on the development VM, 49 ms for a 16 MiB ring's
 * buffers; the call takes 4-5 ms). Nothing is done where no thread can be made: in the caller's
 * thread it would cost the open what it saves later. join() the call before the range is unmapped.
 */
export function populateInBackground(address: number, length: number): BackgroundCall {
  return startCall('madvise', [address, length, MADV_POPULATE_WRITE], () => {});
}

/** The koffi module itself, for the socket and ioctl bindings of the interfaces layer. */
export { koffi, libc };

// ---- thread liveness -------------------------------------------------------------------------
const tgkillFn = libc.func('long syscall(long nr, long tgid, long tid, long sig)');

/**
 * True when thread `tid` of process `pid` still exists. Owners of locks and port handles are
 * recorded as (pid, tid) so that a terminated worker thread is detected as dead too, not only a
 * killed process.
 */
export function threadAlive(pid: number, tid: number): boolean {
  if (pid <= 0 || tid <= 0) return false;
  if (tgkillFn(234 /* SYS_tgkill */, pid, tid, 0) === 0) return true;
  return koffi.errno() === 1;
}

// ---- sockets and interfaces (interfaces layer) ----------------------------------------------
// Thin wrappers for AF_PACKET sockets, TAP devices and interface ioctls (src/interfaces/ uses
// them). Hot-path calls (sendto kick, poll, read, write) take plain numbers: memory is passed as
// an absolute address (AddressSpace.absolute(offset)) so no Buffer is made per call.
const net = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, void *val, void *len)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
  // ioctl is variadic in C; glibc's wrapper reads the third argument from its register, so a fixed
  // prototype with a pointer is safe (as for syscall above).
  ioctl: libc.func('int ioctl(int fd, unsigned long request, void *arg)'),
  sendto: libc.func('intptr_t sendto(int fd, uintptr_t buf, size_t len, int flags, uintptr_t addr, uint32_t addrlen)'),
  sendmmsg: libc.func('int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)'),
  poll: libc.func('int poll(void *fds, unsigned long nfds, int timeout)'),
  read: libc.func('intptr_t read(int fd, uintptr_t buf, size_t count)'),
  write: libc.func('intptr_t write(int fd, uintptr_t buf, size_t count)'),
  readv: libc.func('intptr_t readv(int fd, void *iov, int iovcnt)'),
  writev: libc.func('intptr_t writev(int fd, void *iov, int iovcnt)'),
  ifNameToIndex: libc.func('unsigned int if_nametoindex(const char *name)'),
  setns: libc.func('int setns(int fd, int nstype)'),
};

export const AF_PACKET = 17, AF_INET = 2;
export const SOCK_RAW = 3, SOCK_DGRAM = 2, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1, SOL_PACKET = 263;
export const SO_MARK = 36, SO_ATTACH_FILTER = 26, SO_RCVBUF = 8, SO_SNDBUF = 7;
export const MSG_DONTWAIT = 0x40;
export const POLLIN = 1, POLLOUT = 4, POLLERR = 8, POLLHUP = 16;
export const CLONE_NEWNET = 0x40000000;

/** socket(2); throws EPERM (not root), EAFNOSUPPORT-as-EIO and so on. */
export function socket(domain: number, type: number, protocol: number): number {
  return check(net.socket(domain, type | SOCK_CLOEXEC, protocol), 'socket');
}

/** setsockopt(2) with an int value. */
export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value | 0, 0);
  check(net.setsockopt(fd, level, name, b, 4), `setsockopt(level ${level}, option ${name})`);
}

/** setsockopt(2) with a struct value. */
export function setsockoptBuffer(fd: number, level: number, name: number, value: Buffer): void {
  check(net.setsockopt(fd, level, name, value, value.length), `setsockopt(level ${level}, option ${name})`);
}

/** getsockopt(2) into `value`; returns the length the kernel wrote. */
export function getsockoptBuffer(fd: number, level: number, name: number, value: Buffer): number {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(value.length, 0);
  check(net.getsockopt(fd, level, name, value, len), `getsockopt(level ${level}, option ${name})`);
  return len.readUInt32LE(0);
}

export function bind(fd: number, addr: Buffer): void {
  check(net.bind(fd, addr, addr.length), 'bind');
}

/** ioctl(2) with a struct argument; returns the (non-negative) result. */
export function ioctl(fd: number, request: number, arg: Buffer): number {
  return check(net.ioctl(fd, request, arg), `ioctl(0x${request.toString(16)})`);
}

/**
 * sendto(2) of `len` bytes at absolute address `address` (0 and 0: the TX-ring kick). Returns the
 * byte count, or -errno (no throw: EAGAIN/ENOBUFS are routine on a hot path).
 */
export function sendto(fd: number, address: number, len: number, flags: number): number {
  const r = Number(net.sendto(fd, address, len, flags, 0, 0));
  return r < 0 ? -koffi.errno() : r;
}

/** sendmmsg(2) over a prepared mmsghdr array; returns messages sent or -errno. */
export function sendmmsg(fd: number, msgvec: Buffer, count: number, flags: number): number {
  const r = net.sendmmsg(fd, msgvec, count, flags);
  return r < 0 ? -koffi.errno() : r;
}

/** poll(2) over a prepared pollfd array; returns the ready count, 0 on timeout, -errno. */
export function poll(fds: Buffer, count: number, timeoutMs: number): number {
  const r = net.poll(fds, count, timeoutMs);
  return r < 0 ? -koffi.errno() : r;
}

/** read(2) into absolute address `address`; returns bytes or -errno (no throw). */
export function readAt(fd: number, address: number, len: number): number {
  const r = Number(net.read(fd, address, len));
  return r < 0 ? -koffi.errno() : r;
}

/** write(2) from absolute address `address`; returns bytes or -errno (no throw). */
export function writeAt(fd: number, address: number, len: number): number {
  const r = Number(net.write(fd, address, len));
  return r < 0 ? -koffi.errno() : r;
}

const dup3Fn = libc.func('int dup3(int oldfd, int newfd, int flags)');

/**
 * dup3(oldfd, newfd, O_CLOEXEC): makes descriptor number `newfd` refer to `oldfd`'s file, closing
 * what `newfd` referred to in the same step (no other thread can take the number in between).
 */
export function dup3(oldfd: number, newfd: number): void {
  check(dup3Fn(oldfd, newfd, O_CLOEXEC), 'dup3');
}

const syscall3 = libc.func('long syscall(long nr, long a, long b, long c)');
const SYS_pidfd_open = 434, SYS_pidfd_getfd = 438;

/**
 * A copy, in this process, of descriptor `fd` of process `pid` (pidfd_open + pidfd_getfd, Linux
 * 5.6; needs ptrace rights over it: root, or the same user without restrictions).
 */
export function duplicateFdOf(pid: number, fd: number): number {
  const pidfd = check(Number(syscall3(SYS_pidfd_open, pid, 0, 0)), 'pidfd_open');
  try {
    return check(Number(syscall3(SYS_pidfd_getfd, pidfd, fd, 0)), 'pidfd_getfd');
  } finally {
    closeFd(pidfd);
  }
}

/** Bytes of one struct iovec { void *base; size_t len } (64-bit). */
export const IOVEC_SIZE = 16;

/** Sets struct iovec `k` of `iov` to `len` bytes at absolute address `address` (no allocation). */
export function setIovec(iov: Buffer, k: number, address: number, len: number): void {
  const at = k * IOVEC_SIZE;
  iov.writeUInt32LE(address % 0x100000000, at);
  iov.writeUInt32LE(Math.floor(address / 0x100000000), at + 4);
  iov.writeUInt32LE(len, at + 8);
  iov.writeUInt32LE(0, at + 12);
}

/**
 * readv(2) into the `count` struct iovec of `iov` (absolute addresses: a TAP frame with its
 * virtio-net header into a chain of ring buffers); returns bytes or -errno (no throw).
 */
export function readvAt(fd: number, iov: Buffer, count: number): number {
  const r = Number(net.readv(fd, iov, count));
  return r < 0 ? -koffi.errno() : r;
}

/** writev(2) of the `count` struct iovec of `iov`; returns bytes or -errno (no throw). */
export function writevAt(fd: number, iov: Buffer, count: number): number {
  const r = Number(net.writev(fd, iov, count));
  return r < 0 ? -koffi.errno() : r;
}

/** if_nametoindex(3); 0 when there is no such interface. */
export function ifNameToIndex(name: string): number {
  return net.ifNameToIndex(name) >>> 0;
}

/** setns(2) for the calling thread. */
export function setns(fd: number, nstype: number): void {
  check(net.setns(fd, nstype), 'setns');
}

/** Absolute address of a Buffer's bytes (for structs that hold pointers, like mmsghdr). */
export function bufferAddress(b: Buffer): number {
  return Number(koffi.address(b));
}

const ioctlValueFn = libc.func('int ioctl(int fd, unsigned long request, uintptr_t arg)');

/** ioctl(2) whose argument is a plain value (TUNSETPERSIST and the like). */
export function ioctlValue(fd: number, request: number, value: number): number {
  return check(ioctlValueFn(fd, request, value), `ioctl(0x${request.toString(16)})`);
}

// ---- CPU affinity (pkt-gen -a/-c) ------------------------------------------------------------
const schedSetaffinity = libc.func('int sched_setaffinity(int pid, size_t size, void *mask)');

const schedGetaffinity = libc.func('int sched_getaffinity(int pid, size_t size, _Out_ void *mask)');
const AFFINITY_BYTES = 128; // CPUs 0..1023

/** Pins thread `tid` (0: the caller) to CPU `cpu` (0..1023). */
export function setAffinity(tid: number, cpu: number): void {
  setAffinitySet(tid, [cpu]);
}

/**
 * Lets thread `tid` (0: the caller) run on the CPUs `cpus` only (each 0..1023, at least one).
 * ESRCH when the thread is gone.
 */
export function setAffinitySet(tid: number, cpus: readonly number[]): void {
  if (cpus.length === 0) throw new NetmapError('EINVAL', 'an empty CPU set');
  const mask = Buffer.alloc(AFFINITY_BYTES);
  for (const cpu of cpus) {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= AFFINITY_BYTES * 8) throw new NetmapError('EINVAL', `CPU ${cpu} is out of range (0..1023)`);
    mask[cpu >>> 3]! |= 1 << (cpu & 7);
  }
  check(schedSetaffinity(tid, mask.length, mask), `sched_setaffinity(cpus ${cpus.join(',')})`);
}

/** The CPUs thread `tid` (0: the caller) may run on, in increasing order. */
export function getAffinity(tid: number): number[] {
  const mask = Buffer.alloc(AFFINITY_BYTES);
  check(schedGetaffinity(tid, mask.length, mask), 'sched_getaffinity');
  const cpus: number[] = [];
  for (let cpu = 0; cpu < AFFINITY_BYTES * 8; cpu++) if ((mask[cpu >>> 3]! & (1 << (cpu & 7))) !== 0) cpus.push(cpu);
  return cpus;
}

// ---- scheduling of the calling thread (kipfw --rt, dummynet's timing) ------------------------
const schedSetscheduler = libc.func('int sched_setscheduler(int pid, int policy, void *param)');
const prctlFn = libc.func('int prctl(int option, ...)');
const SCHED_OTHER = 0, SCHED_FIFO = 1, PR_SET_TIMERSLACK = 29;

/**
 * Puts the calling thread in SCHED_FIFO at `priority` (1..99), or back in SCHED_OTHER with 0.
 * A real-time thread preempts every ordinary one the moment it wakes; the kernel's RT throttling
 * (sched_rt_runtime_us, 95% by default) still leaves the other tasks some CPU. Needs root or
 * CAP_SYS_NICE (EPERM otherwise).
 */
export function setRealtime(priority: number): void {
  if (!Number.isInteger(priority) || priority < 0 || priority > 99) throw new NetmapError('EINVAL', `real-time priority ${priority} is out of range (0..99)`);
  const param = Buffer.alloc(4);
  param.writeInt32LE(priority, 0);
  const what = `sched_setscheduler(${priority === 0 ? 'SCHED_OTHER' : `SCHED_FIFO ${priority}`})`;
  if (schedSetscheduler(0, priority === 0 ? SCHED_OTHER : SCHED_FIFO, param) < 0) {
    const errno = koffi.errno();
    const hint = errnoName(errno) === 'EPERM' ? ': real-time priority needs root or CAP_SYS_NICE' : '';
    throw new NetmapError(errnoName(errno), `${what} failed: errno ${errno}${hint}`);
  }
}


/**
 * Sets the calling thread's timer slack (PR_SET_TIMERSLACK, ns): how much later than asked the
 * kernel may end its timed sleeps (futex timeouts) to merge wake-ups. The default is 50 µs.
 */
export function setTimerSlack(ns: number): void {
  if (!Number.isInteger(ns) || ns < 1) throw new NetmapError('EINVAL', `timer slack ${ns} ns must be a positive integer`);
  check(prctlFn(PR_SET_TIMERSLACK, 'unsigned long', ns, 'unsigned long', 0, 'unsigned long', 0, 'unsigned long', 0) as number, 'prctl(PR_SET_TIMERSLACK)');
}

// ---- re-executing node with V8 flags (kipfw --rt) -------------------------------------------
const execvFn = libc.func('int execv(const char *path, const char **argv)');
const fcntlFn = libc.func('int fcntl(int fd, int cmd, ...)');
const F_SETFD = 2;

/**
 * Replaces this process (same pid) by `node NODE_FLAGS... SCRIPT ARGS...` with the same script and
 * arguments: for V8 flags that must be set before the heap exists (kipfw --rt runs with
 * --single-threaded-gc; setting GC flags at run time crashed V8). stdin/out/err are kept (libuv
 * marks them close-on-exec). Returns only on failure, by throwing.
 */
export function reexecNode(nodeFlags: string[]): never {
  for (let fd = 0; fd <= 2; fd++) fcntlFn(fd, F_SETFD, 'int', 0);
  // node reports a bare 'node' as its path when it could not resolve its own (seen as user
  // nobody): the kernel's link to the running binary serves then
  const path = process.execPath.startsWith('/') ? process.execPath : '/proc/self/exe';
  const argv = [process.execPath, ...process.execArgv, ...nodeFlags, ...process.argv.slice(1), null];
  execvFn(path, argv);
  const errno = koffi.errno();
  throw new NetmapError(errnoName(errno), `execv(${path}) failed: errno ${errno}`);
}

/**
 * Readies a process whose data path will run at real-time priority `priority` (kipfw --rt,
 * pkt-gen --rt), before anything starts. First it fails as setRealtime would (EPERM with a hint)
 * when the process may not use that priority: it tries it on the calling thread and puts the
 * thread back at once. Then it makes sure node runs with --single-threaded-gc, re-executing it
 * (same pid) if not: V8's parallel GC phases would otherwise make the real-time thread wait for
 * ordinary helper threads, which it has itself pushed off its CPU; the flag must be set before
 * the heap exists.
 */
export function prepareRealtimeProcess(priority: number): void {
  setRealtime(priority);
  setRealtime(0);
  if (!process.execArgv.includes('--single-threaded-gc')) reexecNode(['--single-threaded-gc']);
}

// ---- capture: read-only file mappings (src/capture/reader.ts) --------------------------------
const munmapPtr = libc.func('int munmap(void *addr, size_t length)');

/**
 * Maps `length` bytes of file `fd` from `offset` (a multiple of the page size) read-only and
 * private; returns an ArrayBuffer over the mapping and a function that unmaps it. Nothing may
 * touch the buffer after unmapping, and the file must not shrink while mapped (SIGBUS).
 */
export function mapFileReadOnly(fd: number, offset: number, length: number): { buffer: ArrayBuffer; unmap: () => void } {
  const MAP_POPULATE = 0x8000; // fault the whole window in at once: far cheaper than page by page
  const ptr = c.mmapPtr(null, length, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, offset);
  const address = Number(koffi.address(ptr));
  if (ptr === null || address === 0 || address >= 2 ** 64 - 4096) {
    const e = koffi.errno();
    throw new NetmapError(errnoName(e), `mmap of ${length} bytes of a file at offset ${offset} failed: errno ${e}`);
  }
  let mapped = true;
  return {
    buffer: koffi.view(ptr, length) as ArrayBuffer,
    unmap: () => {
      if (mapped) munmapPtr(ptr, length);
      mapped = false;
    },
  };
}

// ---- readiness: epoll and eventfd (interfaces/notifier.ts) -----------------------------------
const ev = {
  create: libc.func('int epoll_create1(int flags)'),
  ctl: libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  wait: libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'),
  eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
};
export const EPOLLIN = 1, EPOLLOUT = 4, EPOLLONESHOT = 1 << 30;
export const EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
/** sizeof(struct epoll_event): packed (u32 events, u64 data) on x86-64, padded elsewhere. */
export const EPOLL_EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const EPOLL_DATA_AT = process.arch === 'x64' ? 4 : 8;
const epollArg = Buffer.alloc(16);

/** epoll_create1(EPOLL_CLOEXEC). */
export function epollCreate(): number {
  return check(ev.create(O_CLOEXEC), 'epoll_create1');
}

/**
 * epoll_ctl(2) with `events` and a 32-bit `data` (read back by epollData); returns 0 or -errno
 * (no throw: a DEL of a descriptor the kernel already dropped is routine).
 */
export function epollCtl(epfd: number, op: number, fd: number, events: number, data: number): number {
  epollArg.writeUInt32LE(events >>> 0, 0);
  epollArg.writeInt32LE(data | 0, EPOLL_DATA_AT);
  epollArg.writeInt32LE(0, EPOLL_DATA_AT + 4);
  const r = ev.ctl(epfd, op, fd, epollArg);
  return r < 0 ? -koffi.errno() : r;
}

/** epoll_wait(2) into `events` (room for `max` entries); returns the count, 0 on timeout, -errno. */
export function epollWait(epfd: number, events: Buffer, max: number, timeoutMs: number): number {
  const r = ev.wait(epfd, events, max, timeoutMs);
  return r < 0 ? -koffi.errno() : r;
}

/** The `data` of entry `i` of an epollWait result. */
export function epollData(events: Buffer, i: number): number {
  return events.readInt32LE(i * EPOLL_EVENT_SIZE + EPOLL_DATA_AT);
}

/** eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): a counter another thread can make readable. */
export function eventFd(): number {
  return check(ev.eventfd(0, O_CLOEXEC | 0o4000), 'eventfd');
}
