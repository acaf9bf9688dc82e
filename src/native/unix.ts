/**
 * Unix-domain stream sockets that carry descriptors (SCM_RIGHTS), for the vhost-user backend
 * (src/vhost): listen on a path, accept, receive a message with the descriptors sent along with
 * it, send a reply. Node's `net` module cannot pass descriptors, so these go through libc.
 * Thin wrappers: a failure is a NetmapError with the errno name, except where noted.
 */
import { koffi, libc, bufferAddress, closeFd, ioctl, ftruncate } from './index.js';
import { NetmapError, errnoName } from '../errors.js';

const u = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  accept4: libc.func('int accept4(int fd, void *addr, void *len, int flags)'),
  recvmsg: libc.func('intptr_t recvmsg(int fd, void *msg, int flags)'),
  recv: libc.func('intptr_t recv(int fd, uintptr_t buf, size_t len, int flags)'),
  send: libc.func('intptr_t send(int fd, uintptr_t buf, size_t len, int flags)'),
};

const AF_UNIX = 1, SOCK_STREAM = 1, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000, MSG_WAITALL = 0x100, MSG_NOSIGNAL = 0x4000, MSG_DONTWAIT = 0x40;
const FIONBIO = 0x5421;
/** Longest path of a sockaddr_un (108 bytes with the terminating zero). */
export const UNIX_PATH_MAX = 107;

function fail(what: string): never {
  const e = koffi.errno();
  throw new NetmapError(errnoName(e), `${what} failed: errno ${e}`);
}

/**
 * A listening AF_UNIX stream socket bound at `path` (which must not exist), non-blocking (accept
 * returns -EAGAIN when nobody is waiting), close-on-exec.
 */
export function listenUnix(path: string, backlog = 4): number {
  const bytes = Buffer.byteLength(path);
  if (bytes === 0 || bytes > UNIX_PATH_MAX) throw new NetmapError('EINVAL', `a unix socket path is 1 to ${UNIX_PATH_MAX} bytes, not ${bytes}`);
  const fd = u.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail('socket(AF_UNIX)');
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  addr.write(path, 2, 'utf8');
  if (u.bind(fd, addr, 2 + bytes + 1) < 0) { const e = koffi.errno(); closeFd(fd); throw new NetmapError(errnoName(e), `bind(${path}) failed: errno ${e}`); }
  if (u.listen(fd, backlog) < 0) { const e = koffi.errno(); closeFd(fd); throw new NetmapError(errnoName(e), `listen(${path}) failed: errno ${e}`); }
  return fd;
}

/** accept4(2), close-on-exec, blocking descriptor; returns the descriptor or -errno (-EAGAIN: nobody waiting). */
export function acceptUnix(fd: number): number {
  const r = u.accept4(fd, null, null, SOCK_CLOEXEC);
  return r < 0 ? -koffi.errno() : r;
}

/** Sets or clears O_NONBLOCK on any descriptor (FIONBIO). */
export function setNonBlocking(fd: number, on: boolean): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(on ? 1 : 0, 0);
  ioctl(fd, FIONBIO, v);
}

/** Most descriptors one message may carry (vhost-user: 8 memory regions). */
export const MAX_FDS = 8;
const MSGHDR_SIZE = 56, IOV_SIZE = 16;
const CMSG_HDR = 16, CONTROL_SIZE = CMSG_HDR + 4 * MAX_FDS;

/** A receiver of messages with descriptors: buffers made once, reused for every message. */
export class FdReceiver {
  private readonly msg = Buffer.alloc(MSGHDR_SIZE);
  private readonly iov = Buffer.alloc(IOV_SIZE);
  private readonly control = Buffer.alloc(CONTROL_SIZE);
  /** Descriptors that came with the last receive(). */
  readonly fds: number[] = [];

  /**
   * Receives up to `len` bytes into `buf` (from its start) in one recvmsg, with the descriptors
   * sent along (into `fds`, close-on-exec; the caller owns them). Returns the byte count, 0 at
   * end of stream, or -errno. Descriptors beyond MAX_FDS are closed by the kernel (MSG_CTRUNC).
   */
  receive(fd: number, buf: Buffer, len: number): number {
    this.fds.length = 0;
    const iov = this.iov, msg = this.msg;
    iov.writeBigUInt64LE(BigInt(bufferAddress(buf)), 0);
    iov.writeBigUInt64LE(BigInt(len), 8);
    msg.fill(0);
    this.control.fill(0);
    msg.writeBigUInt64LE(BigInt(bufferAddress(iov)), 16);
    msg.writeBigUInt64LE(1n, 24);
    msg.writeBigUInt64LE(BigInt(bufferAddress(this.control)), 32);
    msg.writeBigUInt64LE(BigInt(CONTROL_SIZE), 40);
    const r = Number(u.recvmsg(fd, msg, MSG_CMSG_CLOEXEC));
    if (r < 0) return -koffi.errno();
    const controlLen = Number(msg.readBigUInt64LE(40));
    let at = 0;
    while (at + CMSG_HDR <= controlLen) {
      const cl = Number(this.control.readBigUInt64LE(at));
      if (cl < CMSG_HDR || at + cl > CONTROL_SIZE) break;
      if (this.control.readInt32LE(at + 8) === SOL_SOCKET && this.control.readInt32LE(at + 12) === SCM_RIGHTS) {
        for (let p = at + CMSG_HDR; p + 4 <= at + cl; p += 4) this.fds.push(this.control.readInt32LE(p));
      }
      at += (cl + 7) & ~7;
    }
    return r;
  }
}

/** Reads exactly `len` bytes into `buf` at `offset` (MSG_WAITALL); returns the count (less at end of stream) or -errno. */
export function receiveAll(fd: number, buf: Buffer, offset: number, len: number): number {
  if (len === 0) return 0;
  const r = Number(u.recv(fd, bufferAddress(buf) + offset, len, MSG_WAITALL));
  return r < 0 ? -koffi.errno() : r;
}

/** Sends `len` bytes of `buf` (no SIGPIPE); returns the count or -errno. */
export function sendBytes(fd: number, buf: Buffer, len: number): number {
  const r = Number(u.send(fd, bufferAddress(buf), len, MSG_NOSIGNAL));
  return r < 0 ? -koffi.errno() : r;
}

/** Whether `fd` has bytes to read now or its peer closed (a non-blocking peek of one byte). */
export function peekReadable(fd: number, scratch: Buffer): boolean {
  const r = Number(u.recv(fd, bufferAddress(scratch), 1, MSG_DONTWAIT | 2 /* MSG_PEEK */));
  return r >= 0 || koffi.errno() !== 11;
}

// ---- the frontend's side (tests play QEMU) ---------------------------------------------------
const f = {
  connect: libc.func('int connect(int fd, const void *addr, uint32_t len)'),
  sendmsg: libc.func('intptr_t sendmsg(int fd, void *msg, int flags)'),
  memfdCreate: libc.func('int memfd_create(const char *name, unsigned int flags)'),
};

/** A blocking AF_UNIX stream socket connected to `path`. */
export function connectUnix(path: string): number {
  const fd = u.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail('socket(AF_UNIX)');
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  addr.write(path, 2, 'utf8');
  if (f.connect(fd, addr, 2 + Buffer.byteLength(path) + 1) < 0) { const e = koffi.errno(); closeFd(fd); throw new NetmapError(errnoName(e), `connect(${path}) failed: errno ${e}`); }
  return fd;
}

/** Sends `len` bytes of `buf` in one sendmsg with `fds` alongside (SCM_RIGHTS); returns the count or -errno. */
export function sendWithFds(fd: number, buf: Buffer, len: number, fds: readonly number[]): number {
  if (fds.length > MAX_FDS) throw new NetmapError('EINVAL', `at most ${MAX_FDS} descriptors per message`);
  const iov = Buffer.alloc(IOV_SIZE), msg = Buffer.alloc(MSGHDR_SIZE);
  const control = Buffer.alloc(fds.length > 0 ? ((CMSG_HDR + 4 * fds.length + 7) & ~7) : 8);
  iov.writeBigUInt64LE(BigInt(bufferAddress(buf)), 0);
  iov.writeBigUInt64LE(BigInt(len), 8);
  msg.writeBigUInt64LE(BigInt(bufferAddress(iov)), 16);
  msg.writeBigUInt64LE(1n, 24);
  if (fds.length > 0) {
    control.writeBigUInt64LE(BigInt(CMSG_HDR + 4 * fds.length), 0);
    control.writeInt32LE(SOL_SOCKET, 8);
    control.writeInt32LE(SCM_RIGHTS, 12);
    fds.forEach((d, k) => control.writeInt32LE(d, CMSG_HDR + 4 * k));
    msg.writeBigUInt64LE(BigInt(bufferAddress(control)), 32);
    msg.writeBigUInt64LE(BigInt(control.length), 40);
  }
  const r = Number(f.sendmsg(fd, msg, MSG_NOSIGNAL));
  return r < 0 ? -koffi.errno() : r;
}

/** memfd_create(2) of `size` bytes (close-on-exec): guest memory for a test's frontend. */
export function memfd(name: string, size: number): number {
  const fd = f.memfdCreate(name, 1 /* MFD_CLOEXEC */);
  if (fd < 0) fail('memfd_create');
  try {
    ftruncate(fd, size);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  return fd;
}
