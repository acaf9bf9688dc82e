/**
 * rtnetlink dumps without spawning `ip` or `tc`: one request on a NETLINK_ROUTE socket, the
 * kernel's answers collected until NLMSG_DONE. The socket is made by the calling thread, so the
 * answers are about that thread's network namespace. Pure TypeScript over src/native/index.ts.
 */
import { NetmapError, errnoName } from '../errors.js';
import * as native from './index.js';

export const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;
export const NLM_F_REQUEST = 1;
const NLM_F_DUMP = 0x300;
export const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
export const RTM_GETLINK = 18, RTM_GETTFILTER = 46;
export const IFLA_IFNAME = 3;
export const NLMSG_HDRLEN = 16;
const RECV_TIMEOUT_MS = 2000;

let seq = 1;
let recvBuffer: Buffer | null = null;

/**
 * Reads the kernel's answers on netlink socket `fd` (non-blocking), handing each message (type,
 * sequence number, the whole message) to `take` until it returns true. ETIMEDOUT when the kernel
 * stays silent for RECV_TIMEOUT_MS.
 */
export function readAnswers(fd: number, what: string, take: (type: number, seq: number, msg: Buffer) => boolean): void {
  // one receive buffer for every request of this thread (each open looks for tc leftovers: a
  // fresh 64 KiB buffer for each of those dumps cost milliseconds of an interface open)
  const buf = (recvBuffer ??= Buffer.alloc(64 * 1024));
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(native.POLLIN, 4);
  const deadline = Date.now() + RECV_TIMEOUT_MS;
  for (;;) {
    const n = native.readAt(fd, native.bufferAddress(buf), buf.length);
    if (n === -11 /* EAGAIN */) {
      const left = deadline - Date.now();
      if (left <= 0) throw new NetmapError('ETIMEDOUT', `${what}: no answer from the kernel`);
      native.poll(pfd, 1, left);
      continue;
    }
    if (n < 0) throw new NetmapError(errnoName(-n), `${what} failed: errno ${-n}`);
    for (let at = 0; at + NLMSG_HDRLEN <= n;) {
      const len = buf.readUInt32LE(at);
      if (len < NLMSG_HDRLEN || at + len > n) break;
      if (take(buf.readUInt16LE(at + 4), buf.readUInt32LE(at + 8), buf.subarray(at, at + len))) return;
      at += (len + 3) & ~3;
    }
  }
}

/** The errno an NLMSG_ERROR message `msg` carries (0: an acknowledgement). */
export function answerErrno(msg: Buffer): number {
  return -msg.readInt32LE(NLMSG_HDRLEN);
}

/**
 * Sends dump request `type` with `payload` (the family header: ifinfomsg, tcmsg...) and returns
 * each answer's payload (after the 16-byte header). A kernel error answer throws with its errno.
 */
export function dump(type: number, payload: Buffer): Buffer[] {
  const fd = native.socket(AF_NETLINK, native.SOCK_RAW | native.SOCK_NONBLOCK, NETLINK_ROUTE);
  try {
    const req = Buffer.alloc(NLMSG_HDRLEN + payload.length);
    const mySeq = seq++;
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(type, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt32LE(mySeq, 8);
    payload.copy(req, NLMSG_HDRLEN);
    const sent = native.sendto(fd, native.bufferAddress(req), req.length, 0);
    if (sent !== req.length) throw new NetmapError(errnoName(-sent), `netlink request ${type} failed: errno ${-sent}`);
    const out: Buffer[] = [];
    readAnswers(fd, `netlink dump ${type}`, (t, s, msg) => {
      if (s !== mySeq) return false;
      if (t === NLMSG_DONE) return true;
      if (t === NLMSG_ERROR) {
        const err = answerErrno(msg);
        if (err === 0) return true;
        throw new NetmapError(errnoName(err), `netlink dump ${type} refused: errno ${err}`);
      }
      out.push(Buffer.from(msg.subarray(NLMSG_HDRLEN)));
      return false;
    });
    return out;
  } finally {
    native.closeFd(fd);
  }
}

/** Each route attribute (type, value) of `msg` from byte `from` on (after the family header). */
export function attributes(msg: Buffer, from: number): { type: number; value: Buffer }[] {
  const out: { type: number; value: Buffer }[] = [];
  for (let at = from; at + 4 <= msg.length;) {
    const len = msg.readUInt16LE(at), type = msg.readUInt16LE(at + 2) & 0x3fff;
    if (len < 4 || at + len > msg.length) break;
    out.push({ type, value: msg.subarray(at + 4, at + len) });
    at += (len + 3) & ~3;
  }
  return out;
}

/** The interfaces of the calling thread's network namespace: index and name. */
export function links(): { index: number; name: string }[] {
  const out: { index: number; name: string }[] = [];
  for (const m of dump(RTM_GETLINK, Buffer.alloc(16))) {
    if (m.length < 16) continue;
    const index = m.readInt32LE(4);
    const a = attributes(m, 16).find((x) => x.type === IFLA_IFNAME);
    if (a !== undefined) out.push({ index, name: a.value.toString('utf8').replace(/\0.*$/s, '') });
  }
  return out;
}

/** tc parents of the clsact qdisc's two hooks. */
export const TC_PARENT_INGRESS = 0xfffffff2, TC_PARENT_EGRESS = 0xfffffff3;

/**
 * The preferences of the tc filters at `parent` of interface `ifindex` (one per filter, as
 * `tc filter show` lists them); empty when the hook has none or there is no clsact qdisc.
 */
export function tcFilterPrefs(ifindex: number, parent: number): number[] {
  const req = Buffer.alloc(20);
  req.writeInt32LE(ifindex, 4);
  req.writeUInt32LE(parent, 12);
  let answers: Buffer[];
  try {
    answers = dump(RTM_GETTFILTER, req);
  } catch (e) {
    if (e instanceof NetmapError && (e.code === 'EINVAL' || e.code === 'ENOENT')) return []; // no qdisc there
    throw e;
  }
  const out: number[] = [];
  for (const m of answers) if (m.length >= 20 && m.readInt32LE(4) === ifindex) out.push(m.readUInt32LE(16) >>> 16);
  return out;
}
