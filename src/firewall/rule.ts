/**
 * The firewall's rule representation: the contract between the parser (parse.ts), the printer
 * (print.ts), the interpreter (interp.ts) and the compiler (compile.ts).
 *
 * A rule is ipfw's: a number, a set, an optional probability, a list of match commands and one
 * action. The match commands mirror ipfw's microinstructions (ip_fw.h's O_* opcodes), because
 * ipfw's semantics are defined on them: commands are ANDed in order; `neg` inverts one command
 * (`not`); `or` marks a command ORed with the next one (F_OR), which is how `{ a or b }` blocks
 * are stored — the last member of a block has `or: false`. Evaluation (ipfw_chk):
 *
 *     skipOr = false
 *     for cmd of cmds:
 *       if skipOr: { if !cmd.or: skipOr = false; continue }
 *       m = match(cmd); if cmd.neg: m = !m
 *       if cmd.or: { if m: skipOr = true; continue }
 *       if !m: rule does not match
 *
 * The order of `cmds` is the order ipfw stores them in (compile_rule): the implicit probe-state
 * first (a packet of a known flow, a reply too, hits its state before any other match), then
 * protocol, source address(es), source ports, destination address(es), destination ports,
 * options as written, and the keep-state/limit command last. `list` skips probe-state.
 *
 * Rules are plain data (JSON-serialisable: numbers, strings, booleans, arrays, no bigint, no
 * typed arrays), so a ruleset can travel through the control socket and through shared memory
 * as text, and every process rebuilds the same evaluator from it.
 */

/** ip_fw.h's IPFW_DEFAULT_RULE. */
export const DEFAULT_RULE = 65535;
/** The most rules one firewall holds, the default rule included (counter slots). */
export const MAX_RULES = 16384;
/** Rule numbers 1..65534 for users; 65535 is the default rule. */
export const MAX_RULE_NUMBER = 65534;
/** Sets 0..31; set 31 holds the default rule, is never disabled nor flushed. */
export const NUM_SETS = 32;
export const RESVD_SET = 31;
/** The call/return stack depth (IPFW_CALLSTACK_SIZE). */
export const CALL_STACK = 16;
/** The most entries of one port or address list (ipfw: 30 ports). */
export const MAX_PORT_LIST = 30;

/** A closed range of unsigned values [lo, hi]; a single value has lo === hi. */
export type Range = [number, number];

/** An IPv4 address and mask, each an unsigned 32-bit number (host order: 10.0.0.1 = 0x0a000001). */
export interface Ip4Masked { addr: number; mask: number }

/** An IPv6 address and mask as 4 unsigned 32-bit words, most significant first. */
export interface Ip6Masked { addr: [number, number, number, number]; mask: [number, number, number, number] }

/** Which field of the packet a `lookup` or table match keys on. */
export type LookupKey = 'src-ip' | 'dst-ip' | 'src-port' | 'dst-port' | 'dscp' | 'rulenum' | 'uid' | 'jail';

/** A `limit` / dynamic-state flow mask (ipfw DYN_SRC_ADDR...). */
export interface LimitMask { srcAddr: boolean; srcPort: boolean; dstAddr: boolean; dstPort: boolean }

/** The match commands. Field names follow ipfw's options; comments give the O_* opcode. */
export type Cmd = CmdBase & CmdBody;

export interface CmdBase {
  /** `not` in front of this command (F_NOT). */
  neg: boolean;
  /** ORed with the next command (F_OR): a member of a `{ a or b }` block other than the last. */
  or: boolean;
}

export type CmdBody =
  // protocol and version
  | { op: 'proto'; proto: number }                               // O_PROTO
  | { op: 'ip4' }                                                // O_IP4 (ip4/ipv4 as protocol or option)
  | { op: 'ip6' }                                                // O_IP6
  | { op: 'ipversion'; version: number }                         // O_IPVER
  // addresses; dir says source or destination
  | { op: 'ip-addr'; dir: 'src' | 'dst'; list: Ip4Masked[] }    // O_IP_SRC/_MASK, O_IP_DST/_MASK
  | { op: 'ip-set'; dir: 'src' | 'dst'; base: number; bits: number; members: number[] } // O_IP_SRC_SET: base/bits{members}
  | { op: 'ip6-addr'; dir: 'src' | 'dst'; list: Ip6Masked[] }   // O_IP6_SRC/_MASK
  | { op: 'me'; dir: 'src' | 'dst'; v6: boolean }               // O_IP_SRC_ME / O_IP6_SRC_ME
  | { op: 'table'; dir: 'src' | 'dst'; table: string; value: number | null } // O_IP_SRC_LOOKUP: table(T[,value])
  | { op: 'ports'; dir: 'src' | 'dst'; ranges: Range[] }        // O_IP_SRCPORT / O_IP_DSTPORT
  // direction and interfaces
  | { op: 'in' }                                                 // O_IN (`out` is `not in`)
  | { op: 'iface'; which: 'recv' | 'xmit' | 'via'; name: string | null; table: string | null; addr: number | null } // O_RECV/O_XMIT/O_VIA; name may end in '*'; null name+table+addr = any
  | { op: 'layer2' }                                             // O_LAYER2
  | { op: 'mac'; dst: string; dstMask: string; src: string; srcMask: string } // O_MACADDR2, MACs as 'xx:xx:..'
  | { op: 'mac-type'; ranges: Range[] }                          // O_MAC_TYPE
  // IP header
  | { op: 'iplen'; ranges: Range[] }                             // O_IPLEN
  | { op: 'ipttl'; ranges: Range[] }                             // O_IPTTL
  | { op: 'ipid'; ranges: Range[] }                              // O_IPID
  | { op: 'iptos'; set: number; clear: number }                  // O_IPTOS (flag bits of iptos lowdelay,...)
  | { op: 'dscp'; codes: number[] }                              // O_DSCP (0..63)
  | { op: 'ipprecedence'; value: number }                        // O_IPPRECEDENCE
  | { op: 'ipoptions'; set: number; clear: number }              // O_IPOPT
  | { op: 'frag' }                                               // O_FRAG
  | { op: 'flow-id'; labels: number[] }                          // O_FLOW6ID
  | { op: 'ext6hdr'; set: number; clear: number }                // O_EXT_HDR
  // TCP / ICMP
  | { op: 'tcpflags'; set: number; clear: number }               // O_TCPFLAGS (setup = syn,!ack)
  | { op: 'established' }                                        // O_ESTAB
  | { op: 'tcpoptions'; set: number; clear: number }             // O_TCPOPTS
  | { op: 'tcpseq'; value: number }                              // O_TCPSEQ
  | { op: 'tcpack'; value: number }                              // O_TCPACK
  | { op: 'tcpwin'; ranges: Range[] }                            // O_TCPWIN
  | { op: 'tcpdatalen'; ranges: Range[] }                        // O_TCPDATALEN
  | { op: 'icmptypes'; types: number[] }                         // O_ICMPTYPE
  | { op: 'icmp6types'; types: number[] }                        // O_ICMP6TYPE
  // tags, probability-free misc
  | { op: 'tagged'; ranges: Range[] }                            // O_TAGGED
  | { op: 'lookup'; key: LookupKey; table: string }              // O_IP_DST_LOOKUP with a key (sets tablearg)
  // dynamic state: probe-state first in the rule, keep-state/limit last
  | { op: 'probe-state'; name: string }                          // O_PROBE_STATE (implicit, in every keep-state/limit rule)
  | { op: 'keep-state'; name: string; record: boolean }          // O_KEEP_STATE (record-state: record=true)
  | { op: 'limit'; name: string; mask: LimitMask; limit: number; record: boolean }; // O_LIMIT

export type CmdOp = CmdBody['op'];

/** Actions. `arg` holds the number of skipto/call/pipe/queue/unreach/setdscp; tablearg takes it from the last table match. */
export type ActionKind =
  | 'allow' | 'deny' | 'reject' | 'unreach' | 'unreach6' | 'reset' | 'reset6'
  | 'count' | 'skipto' | 'call' | 'return' | 'check-state' | 'setdscp' | 'pipe' | 'queue';

export interface Action {
  kind: ActionKind;
  /** skipto/call target, pipe/queue number, ICMP unreachable code (unreach/reject), setdscp value; 0 otherwise. */
  arg: number;
  /** The argument is `tablearg`. */
  tablearg: boolean;
  /** check-state: the state name (`:default` unless given). */
  stateName?: string;
}

export interface Rule {
  /** 1..65535. */
  number: number;
  /**
   * The rule's counter slot, 0..MAX_RULES-1, unique within a ruleset and stable for the rule's
   * life (counters and dynamic states refer to it, so rules may be added before it without
   * moving its counters). Assigned by the command executor when the rule is added (the smallest
   * free slot; its counters are zeroed then); the default rule has slot 0.
   */
  slot: number;
  /** 0..31. */
  set: number;
  /** Match probability in (0, 1]; 1 when the rule has no `prob`. */
  prob: number;
  action: Action;
  /** `log [logamount N]`: logAmount 0 means the default (net.inet.ip.fw.verbose_limit). */
  log: boolean;
  logAmount: number;
  /** `tag T` / `untag T` (T 1..65534, or tablearg). */
  tag: { untag: boolean; value: number; tablearg: boolean } | null;
  cmds: Cmd[];
  /** `// comment` text without the slashes, or null. */
  comment: string | null;
  /**
   * Printing only (ipfw's IPFW_RULE_NOOPT): the rule was written with `ip from any to any`
   * followed by options, so `list` prints its address and protocol options as options
   * (`ip from any to any src-ip 1.2.3.4`) rather than folding them into the head. Absent = false.
   */
  optionsOnly?: boolean;
}

/** The default rule for a daemon accepting by default (netmap-ipfw: IPFIREWALL_DEFAULT_TO_ACCEPT). */
export function defaultRule(accept: boolean): Rule {
  return {
    number: DEFAULT_RULE, slot: 0, set: RESVD_SET, prob: 1,
    action: { kind: accept ? 'allow' : 'deny', arg: 0, tablearg: false },
    log: false, logAmount: 0, tag: null, cmds: [], comment: null,
  };
}

/** ICMP unreachable codes by ipfw name (`unreach port`...), as ipfw2.c's icmpcodes. */
export const UNREACH_CODES: Record<string, number> = {
  'net': 0, 'host': 1, 'protocol': 2, 'port': 3, 'needfrag': 4, 'srcfail': 5,
  'net-unknown': 6, 'host-unknown': 7, 'isolated': 8, 'net-prohib': 9, 'host-prohib': 10,
  'tosnet': 11, 'toshost': 12, 'filter-prohib': 13, 'host-precedence': 14, 'precedence-cutoff': 15,
};

/** ICMPv6 unreachable codes by ipfw name (`unreach6 ...`), as ipfw2.c's icmp6codes. */
export const UNREACH6_CODES: Record<string, number> = {
  'no-route': 0, 'admin-prohib': 1, 'address': 3, 'port': 4,
};

/** TCP flag bits as on the wire (ipfw's tcpflags names). */
export const TCP_FLAGS: Record<string, number> = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20 };

/** `tcpoptions` bits (ipfw's IP_FW_TCPOPT_*). */
export const TCP_OPTIONS: Record<string, number> = { mss: 0x01, window: 0x02, sack: 0x04, ts: 0x08, cc: 0x10 };

/** `ipoptions` bits (IP_FW_IPOPT_*). */
export const IP_OPTIONS: Record<string, number> = { ssrr: 0x01, lsrr: 0x02, rr: 0x04, ts: 0x08 };

/** `iptos` bits (IPTOS_*). */
export const IP_TOS: Record<string, number> = { lowdelay: 0x10, throughput: 0x08, reliability: 0x04, mincost: 0x02, congestion: 0x01 };

/** `ext6hdr` bits (EXT_*). */
export const EXT6_HEADERS: Record<string, number> = { frag: 0x01, hopopt: 0x02, route: 0x04, dstopt: 0x08, ah: 0x10, esp: 0x20, rthdr0: 0x40, rthdr2: 0x80 };

/** A table's kind (`table T create type ...`). */
export type TableType = 'addr' | 'number' | 'iface';

/** One table entry: the key as `list` prints it ('10.0.0.0/8', '2001:db8::/32', '80', 'veth0'), and its value. */
export interface TableEntry { key: string; value: number }

export interface TableConfig {
  name: string;
  type: TableType;
  /** Entries sorted as `table T list` prints them. */
  entries: TableEntry[];
}

/** Tunables (ipfw's sysctls); lifetimes in seconds. */
export interface Settings {
  /** Rule 65535: allow (netmap-ipfw's default) or deny. */
  defaultAccept: boolean;
  autoincStep: number;
  dynMax: number;
  dynBuckets: number;
  dynAckLifetime: number;
  dynSynLifetime: number;
  dynFinLifetime: number;
  dynRstLifetime: number;
  dynUdpLifetime: number;
  dynShortLifetime: number;
  dynKeepalive: boolean;
  /** net.inet.ip.fw.one_pass: a packet leaving a dummynet pipe is accepted (true) or re-enters after the pipe rule. */
  onePass: boolean;
  /** net.inet.ip.dummynet.io_fast. */
  ioFast: boolean;
  verboseLimit: number;
}

export const DEFAULT_SETTINGS: Settings = {
  defaultAccept: true, autoincStep: 100, dynMax: 8192, dynBuckets: 256,
  dynAckLifetime: 300, dynSynLifetime: 20, dynFinLifetime: 1, dynRstLifetime: 1,
  dynUdpLifetime: 10, dynShortLifetime: 5, dynKeepalive: true, onePass: true, ioFast: false, verboseLimit: 0,
};

/**
 * Everything a firewall is configured with, as one JSON-serialisable value: what the control
 * side edits and publishes, and what every evaluating thread or process rebuilds its evaluator
 * from. Counters and dynamic states are not in it (they live in shared memory, by rule slot).
 */
export interface FirewallConfig {
  /** Bumped by every change; evaluators compare it to notice a new ruleset. */
  version: number;
  /** Sorted by number; rules of one number in insertion order; the default rule last. */
  rules: Rule[];
  /** Bit s set: set s is disabled. */
  disabledSets: number;
  tables: TableConfig[];
  settings: Settings;
  /** Dummynet's pipes, queues and schedulers (the dummynet module's own JSON value), or null. */
  dummynet: unknown;
}
