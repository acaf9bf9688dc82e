/**
 * nf_tables over netlink, without the `nft` command: the few messages the host-stack split
 * needs (src/interfaces/split.ts), sent as one atomic batch on a NETLINK_NETFILTER socket.
 *
 * Why nf_tables there: a netdev-family chain on an interface's ingress or egress hook is made
 * and removed in a fraction of a millisecond, where a tcx link's creation and release each wait
 * for an RCU grace period while holding the RTNL lock (10 ms and more on a VM). A table made with
 * NFT_TABLE_F_OWNER belongs to the socket that made it: the kernel deletes it when that socket
 * closes, also when its process is killed, so nothing of ours outlives its owner.
 *
 * Integers in nf_tables attributes are big-endian; values compared with or loaded into registers
 * (the skb mark, an interface index) are in host order, as the kernel keeps them. Pure
 * TypeScript over src/native/index.ts.
 */
import { NetmapError, errnoName } from '../errors.js';
import * as native from './index.js';
import { AF_NETLINK, NLM_F_REQUEST, NLMSG_ERROR, NLMSG_HDRLEN, readAnswers, answerErrno } from './netlink.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 16, NFNL_MSG_BATCH_END = 17;
const NLM_F_ACK = 4, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400, NLM_F_APPEND = 0x800;
const NLA_F_NESTED = 0x8000;
export const NFPROTO_NETDEV = 5;
export const NF_NETDEV_INGRESS = 0, NF_NETDEV_EGRESS = 1;
const NF_DROP = 0, NF_ACCEPT = 1;

const NFT_MSG_NEWTABLE = 0, NFT_MSG_GETTABLE = 1, NFT_MSG_DELTABLE = 2, NFT_MSG_NEWCHAIN = 3, NFT_MSG_NEWRULE = 6, NFT_MSG_DELRULE = 8;
const NFTA_TABLE_NAME = 1, NFTA_TABLE_FLAGS = 2;
const NFT_TABLE_F_OWNER = 2;
const NFTA_CHAIN_TABLE = 1, NFTA_CHAIN_NAME = 3, NFTA_CHAIN_HOOK = 4, NFTA_CHAIN_POLICY = 5, NFTA_CHAIN_TYPE = 7;
const NFTA_HOOK_HOOKNUM = 1, NFTA_HOOK_PRIORITY = 2, NFTA_HOOK_DEV = 3;
const NFTA_RULE_TABLE = 1, NFTA_RULE_CHAIN = 2, NFTA_RULE_EXPRESSIONS = 4;
const NFTA_LIST_ELEM = 1, NFTA_EXPR_NAME = 1, NFTA_EXPR_DATA = 2;
const NFTA_DATA_VALUE = 1, NFTA_DATA_VERDICT = 2, NFTA_VERDICT_CODE = 1;
const NFT_REG_VERDICT = 0, NFT_REG_1 = 1;
const NFT_META_MARK = 3, NFT_CMP_EQ = 0;

/** Netlink attributes, appended in order; nest() wraps a finished list. */
export class Attrs {
  private readonly parts: Buffer[] = [];

  private put(type: number, value: Buffer): this {
    const head = Buffer.alloc(4);
    head.writeUInt16LE(4 + value.length, 0);
    head.writeUInt16LE(type, 2);
    this.parts.push(head, value, Buffer.alloc((4 - (value.length & 3)) & 3));
    return this;
  }

  /** A NUL-terminated string. */
  str(type: number, s: string): this {
    return this.put(type, Buffer.from(`${s}\0`, 'latin1'));
  }

  /** A big-endian 32-bit integer (nf_tables' own numbers). */
  be32(type: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v | 0, 0);
    return this.put(type, b);
  }

  /** A host-order 32-bit value (register contents: a mark, an interface index). */
  host32(type: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0, 0);
    return this.put(type, b);
  }

  nest(type: number, inner: Attrs): this {
    return this.put(type | NLA_F_NESTED, inner.build());
  }

  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** One nf_tables expression (name and its attributes), for rule(). */
export interface Expr { name: string; data: Attrs }

/** `meta mark == value`: the mark into register 1, then compared. */
export function markEquals(value: number): Expr[] {
  return [
    { name: 'meta', data: new Attrs().be32(1 /* DREG */, NFT_REG_1).be32(2 /* KEY */, NFT_META_MARK) },
    { name: 'cmp', data: new Attrs().be32(1 /* SREG */, NFT_REG_1).be32(2 /* OP */, NFT_CMP_EQ).nest(3 /* DATA */, new Attrs().host32(NFTA_DATA_VALUE, value)) },
  ];
}

/** The verdict `accept`. */
export function accept(): Expr {
  const verdict = new Attrs().nest(NFTA_DATA_VERDICT, new Attrs().be32(NFTA_VERDICT_CODE, NF_ACCEPT));
  return { name: 'immediate', data: new Attrs().be32(1 /* DREG */, NFT_REG_VERDICT).nest(2 /* DATA */, verdict) };
}

/** `fwd to <ifindex>`: the frame is sent on that interface instead (and stolen from this path). */
export function forwardTo(ifindex: number): Expr[] {
  return [
    { name: 'immediate', data: new Attrs().be32(1 /* DREG */, NFT_REG_1).nest(2 /* DATA */, new Attrs().host32(NFTA_DATA_VALUE, ifindex)) },
    { name: 'fwd', data: new Attrs().be32(1 /* SREG_DEV */, NFT_REG_1) },
  ];
}

/** One message of a batch: its nf_tables type, extra netlink flags and attributes. */
export interface NftMessage { type: number; flags: number; attrs: Attrs }

/** A netdev-family table owned by the socket that sends it (deleted when that socket closes). */
export function newOwnedTable(name: string): NftMessage {
  return { type: NFT_MSG_NEWTABLE, flags: NLM_F_CREATE | NLM_F_EXCL, attrs: new Attrs().str(NFTA_TABLE_NAME, name).be32(NFTA_TABLE_FLAGS, NFT_TABLE_F_OWNER) };
}

export function deleteTable(name: string): NftMessage {
  return { type: NFT_MSG_DELTABLE, flags: 0, attrs: new Attrs().str(NFTA_TABLE_NAME, name) };
}

/** A filter base chain on hook `hook` (NF_NETDEV_INGRESS/EGRESS) of interface `device`, dropping what no rule accepts. */
export function newDropChain(table: string, chain: string, hook: number, device: string, priority = 0): NftMessage {
  const h = new Attrs().be32(NFTA_HOOK_HOOKNUM, hook).be32(NFTA_HOOK_PRIORITY, priority).str(NFTA_HOOK_DEV, device);
  return {
    type: NFT_MSG_NEWCHAIN, flags: NLM_F_CREATE | NLM_F_EXCL,
    attrs: new Attrs().str(NFTA_CHAIN_TABLE, table).str(NFTA_CHAIN_NAME, chain).nest(NFTA_CHAIN_HOOK, h).be32(NFTA_CHAIN_POLICY, NF_DROP).str(NFTA_CHAIN_TYPE, 'filter'),
  };
}

/** A rule appended to `chain` (after those before it in the batch), made of `exprs` in order. */
export function rule(table: string, chain: string, exprs: readonly Expr[]): NftMessage {
  const list = new Attrs();
  for (const e of exprs) list.nest(NFTA_LIST_ELEM, new Attrs().str(NFTA_EXPR_NAME, e.name).nest(NFTA_EXPR_DATA, e.data));
  return { type: NFT_MSG_NEWRULE, flags: NLM_F_CREATE | NLM_F_APPEND, attrs: new Attrs().str(NFTA_RULE_TABLE, table).str(NFTA_RULE_CHAIN, chain).nest(NFTA_RULE_EXPRESSIONS, list) };
}

/** Deletes every rule of `chain` (its policy stays). */
export function flushChain(table: string, chain: string): NftMessage {
  return { type: NFT_MSG_DELRULE, flags: 0, attrs: new Attrs().str(NFTA_RULE_TABLE, table).str(NFTA_RULE_CHAIN, chain) };
}

let seq = 1;

function header(buf: Buffer, at: number, len: number, type: number, flags: number, family: number, resId: number): number {
  buf.writeUInt32LE(len, at);
  buf.writeUInt16LE(type, at + 4);
  buf.writeUInt16LE(NLM_F_REQUEST | flags, at + 6);
  const s = seq++;
  buf.writeUInt32LE(s, at + 8);
  buf.writeUInt32LE(0, at + 12);
  buf.writeUInt8(family, at + 16);
  buf.writeUInt8(0, at + 17); // NFNETLINK_V0
  buf.writeUInt16BE(resId, at + 18);
  return s;
}

/** A NETLINK_NETFILTER socket of the calling thread's network namespace (EPERM: not root). */
export function openSocket(): number {
  return native.socket(AF_NETLINK, native.SOCK_RAW | native.SOCK_NONBLOCK, NETLINK_NETFILTER);
}

/**
 * Sends `msgs` on socket `fd` as one nf_tables transaction (all or nothing) and waits for the
 * kernel's acknowledgement of each; a refusal throws with its errno (EEXIST, ENOENT, EPERM...).
 */
export function transact(fd: number, msgs: readonly NftMessage[], what: string): void {
  const bodies = msgs.map((m) => m.attrs.build());
  const size = 2 * (NLMSG_HDRLEN + 4) + bodies.reduce((n, b) => n + NLMSG_HDRLEN + 4 + b.length, 0);
  const req = Buffer.alloc(size);
  let at = 0;
  header(req, at, NLMSG_HDRLEN + 4, NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES);
  at += NLMSG_HDRLEN + 4;
  const waiting = new Set<number>();
  msgs.forEach((m, i) => {
    const len = NLMSG_HDRLEN + 4 + bodies[i]!.length;
    waiting.add(header(req, at, len, (NFNL_SUBSYS_NFTABLES << 8) | m.type, m.flags | NLM_F_ACK, NFPROTO_NETDEV, 0));
    bodies[i]!.copy(req, at + NLMSG_HDRLEN + 4);
    at += len;
  });
  header(req, at, NLMSG_HDRLEN + 4, NFNL_MSG_BATCH_END, 0, 0, NFNL_SUBSYS_NFTABLES);
  const sent = native.sendto(fd, native.bufferAddress(req), req.length, 0);
  if (sent !== req.length) throw new NetmapError(errnoName(-sent), `${what}: nf_tables request failed: errno ${-sent}`);
  readAnswers(fd, what, (type, s, msg) => {
    if (type !== NLMSG_ERROR || !waiting.has(s)) return false;
    const err = answerErrno(msg);
    if (err !== 0) throw new NetmapError(errnoName(err), `${what}: refused by nf_tables (errno ${err}${err === 17 ? ': it exists already' : ''})`);
    waiting.delete(s);
    return waiting.size === 0;
  });
}

/** Whether netdev table `name` exists in the calling thread's network namespace. */
export function tableExists(name: string): boolean {
  const fd = openSocket();
  try {
    const body = new Attrs().str(NFTA_TABLE_NAME, name).build();
    const req = Buffer.alloc(NLMSG_HDRLEN + 4 + body.length);
    const s = header(req, 0, req.length, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, NLM_F_ACK, NFPROTO_NETDEV, 0);
    body.copy(req, NLMSG_HDRLEN + 4);
    const sent = native.sendto(fd, native.bufferAddress(req), req.length, 0);
    if (sent !== req.length) throw new NetmapError(errnoName(-sent), `nf_tables look-up failed: errno ${-sent}`);
    let found = false;
    readAnswers(fd, 'nf_tables look-up', (type, got, msg) => {
      if (got !== s) return false;
      if (type !== NLMSG_ERROR) { found = true; return false; } // the table; its ack follows
      const err = answerErrno(msg);
      if (err !== 0 && err !== 2 /* ENOENT */) throw new NetmapError(errnoName(err), `nf_tables look-up of '${name}': errno ${err}`);
      return true;
    });
    return found;
  } finally {
    native.closeFd(fd);
  }
}
