/**
 * Dummynet for netmap-ts: pipes, queues and schedulers (link emulation and shaping), driven by the
 * firewall's `pipe N` / `queue N` actions. See src/firewall/dummynet/README.md.
 *
 * The daemon calls enqueue() for a packet a rule sends to a pipe or queue, sleeps until
 * nextEventNs() (sleepUntilNs), then collects the packets whose time has come with dequeueDue().
 * Packets are the caller's integer handles; dummynet never touches their bytes.
 */
import { assert, fail } from '../../errors.js';
import { CommandError, DummynetConfig, DN_MAX_ID, EX_USAGE, wholeArg } from './config.js';
import { Engine, DROP, DROP_NAMES, lateBucketBound } from './engine.js';
import { FlowKey } from './flowkey.js';
import { showText } from './show.js';

export { FlowKey, flowKeyFromFrame } from './flowkey.js';
export { DROP, DROP_NAMES } from './engine.js';
export { sleepUntilNs, nowNs, DEFAULT_BUSY_WAIT_NS } from './timing.js';
export { DN_MAX_ID } from './config.js';

export interface DummynetOptions {
  /** packets that may wait at once (queued or in a delay line); default 8192. */
  maxPackets?: number;
  /** dynamic scheduler instances (one per sched-mask flow); default 65536. */
  maxInstances?: number;
  /** flow queues (one per flow-mask flow and instance); default 65536. */
  maxQueues?: number;
  /** idle dynamic instances and queues are removed after this long; default 1 s. */
  gcIntervalNs?: number;
  /** PRNG seed for plr, RED and profiles (reproducible tests); default fixed. */
  seed?: number;
}

export interface CommandResult { status: number; stdout: string; stderr: string }

export class Dummynet {
  private readonly conf = new DummynetConfig();
  private readonly engine: Engine;
  /** net.inet.ip.fw.one_pass and net.inet.ip.dummynet.io_fast. */
  readonly settings: { ioFast: boolean; onePass: boolean };

  constructor(opts: DummynetOptions = {}) {
    const limit = (v: number | undefined, dflt: number, max: number, name: string): number => {
      const x = v ?? dflt;
      if (!Number.isInteger(x) || x < 1 || x > max) fail('EINVAL', `dummynet: ${name} must be an integer in 1..${max}`);
      return x;
    };
    opts = { ...opts, maxPackets: limit(opts.maxPackets, 8192, 1 << 24, 'maxPackets'), maxInstances: limit(opts.maxInstances, 65536, 1 << 22, 'maxInstances'), maxQueues: limit(opts.maxQueues, 65536, 1 << 22, 'maxQueues') };
    this.engine = new Engine({
      maxPackets: opts.maxPackets ?? 8192,
      maxInstances: opts.maxInstances ?? 65536,
      maxQueues: opts.maxQueues ?? 65536,
      gcIntervalNs: opts.gcIntervalNs ?? 1e9,
      seed: opts.seed ?? 0x12345678,
    });
    const engine = this.engine;
    let ioFast = false;
    this.settings = {
      get ioFast() { return ioFast; },
      set ioFast(v: boolean) { ioFast = v; engine.ioFast = v; },
      onePass: true,
    };
  }

  /**
   * One ipfw command about dummynet; argv starts at 'pipe' | 'queue' | 'flowset' | 'sched', as
   * `ipfw pipe 1 config bw 10Mbit/s` splits after `ipfw`. Never throws for bad input.
   */
  command(argv: string[]): CommandResult {
    const res: CommandResult = { status: 0, stdout: '', stderr: '' };
    try {
      const word = argv[0];
      const kind = word === 'pipe' ? 'pipe' : word === 'queue' || word === 'flowset' ? 'queue' : word === 'sched' ? 'sched' : null;
      if (!kind) throw new CommandError(EX_USAGE, `bad command \`${word ?? ''}'`);
      let av = argv.slice(1);
      if (av.length === 0) throw new CommandError(EX_USAGE, 'missing command');
      // ipfw swaps `pipe N config` into `pipe config N`.
      if (av.length > 1 && /^[0-9]/.test(av[0]!)) av = [av[1]!, av[0]!, ...av.slice(2)];
      const cmd = av[0]!;
      const rest = av.slice(1);
      switch (cmd) {
        case 'config': {
          const notices: string[] = [];
          this.conf.configure(kind, rest, notices);
          this.apply();
          // fq_codel's unknown parameters are printed on stdout by ipfw; the kernel's notices go to stderr.
          for (const n of notices) {
            if (n.endsWith(' is Invalid parameter')) res.stdout += `${n}\n`; else res.stderr += `${n}\n`;
          }
          break;
        }
        case 'delete': {
          // 1..65535, every number checked before any is deleted (a larger number named an
          // internal twin: pipe 70000 was the FIFO of pipe 4464)
          const numbers: number[] = [];
          for (const a of rest) {
            if (!/^[0-9]/.test(a)) break;
            numbers.push(wholeArg(a, `${kind} number`, 1, 65535));
          }
          const any = numbers.length > 0;
          for (const n of numbers) {
            if (!this.conf.delete(kind, n)) {
              // ipfw_delete_pipe() sets i = 1 before warn(): FreeBSD really prints "rule 1".
              res.stderr += 'ipfw: rule 1: setsockopt(IP_DUMMYNET_DEL): Invalid argument\n';
              res.status = 1;
            }
          }
          // `ipfw pipe delete` with no number does nothing and succeeds, as FreeBSD's loop.
          if (any) this.apply();
          break;
        }
        case 'show': case 'list': case 'print':
          res.stdout = showText(kind, rest, this.conf, this.engine);
          break;
        case 'flush':
          this.conf.flush();
          this.apply();
          break;
        default:
          throw new CommandError(EX_USAGE, `bad command \`${cmd}'`);
      }
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      res.status = e.status;
      res.stderr += `ipfw: ${e.message}\n`;
    }
    return res;
  }

  private apply(): void {
    const j = this.conf.toJSON();
    this.engine.install(j.scheds, j.flowsets);
  }

  /** The configuration as JSON (FirewallConfig.dummynet). */
  configJSON(): unknown { return this.conf.toJSON(); }

  /** Replaces the configuration (e.g. from FirewallConfig.dummynet); null clears it. */
  loadConfig(json: unknown): void {
    try {
      this.conf.load(json);
    } catch (e) {
      if (e instanceof CommandError) fail('EINVAL', `dummynet: ${e.message}`);
      throw e;
    }
    this.apply();
  }

  /**
   * A packet a rule sends to `pipe n` or `queue n`. Returns 0 when dummynet took it (it comes back
   * from dequeueDue), or a DROP code (>0) when it was refused: the caller still owns the handle.
   * `len` is the counted length (the whole Ethernet frame without FCS on our L2 path).
   * key.extra is overwritten with n (FreeBSD's flow id carries the pipe/queue number there).
   */
  enqueue(kind: 'pipe' | 'queue', n: number, handle: number, len: number, key: FlowKey, ruleIndex: number, nowNs: number): number {
    assert(len >= 0 && len <= 0xffff, 'dummynet: frame length out of range');
    const fsNr = kind === 'pipe' ? n + 2 * DN_MAX_ID : n;
    if (!(n >= 1 && n < DN_MAX_ID)) return this.engine.enqueue(-1, handle, len, key, ruleIndex, nowNs);
    // FreeBSD keeps the pipe/queue number in the flow id's `extra` word (used by `mask queue`).
    key.extra = n;
    return this.engine.enqueue(fsNr, handle, len, key, ruleIndex, nowNs);
  }

  /** True when the flowset a rule names has `noerror` (a refused packet is not reported to the sender). */
  isNoError(kind: 'pipe' | 'queue', n: number): boolean {
    const f = this.conf.flowsets.get(kind === 'pipe' ? n + 2 * DN_MAX_ID : n);
    return f ? f.noerror : false;
  }

  /** When something next becomes due (ns, same clock as enqueue), 0 if now, Infinity if nothing waits. */
  nextEventNs(): number { return this.engine.nextEventNs(); }

  /**
   * Fills handles/ruleIndexes with the packets due at nowNs, in order per pipe instance; returns
   * how many. A rule index of -1 means "drop it": a profile loss, a CoDel drop, or a packet that
   * waited in a pipe since deleted or reconfigured. With one_pass=0 the caller re-injects a packet
   * after rule ruleIndexes[i]. At most `max` packets (default: as many as the arrays hold); the
   * others stay due for the next call.
   */
  dequeueDue(nowNs: number, handles: Int32Array, ruleIndexes: Int32Array, max = handles.length): number {
    return this.engine.dequeueDue(nowNs, handles, ruleIndexes, max);
  }

  /** Releases every waiting packet (e.g. an interface went away) and forgets the dynamic state. */
  flushAll(release: (handle: number) => void): void { this.engine.flushAll(release); }

  /** ECN marking hook for RED `ecn` and fq_codel `ecn`: return true when CE was set on the frame. */
  setEcnMarker(mark: ((handle: number) => boolean) | null): void { this.engine.ecnMark = mark; }

  /**
   * Release lateness so far (how long after its output time dequeueDue handed each packet out):
   * the number of packets and the upper bound of the bucket holding the p50, p90, p99 and the
   * worst, in µs (four buckets per power of two: "≤ 48 µs" means 40 to 48 µs; 0 means under 1 µs).
   */
  releaseLateness(): { packets: number; p50Us: number; p90Us: number; p99Us: number; maxUs: number } {
    const h = this.engine.lateness;
    let total = 0;
    for (let i = 0; i < h.length; i++) total += h[i]!;
    const at = (q: number): number => {
      if (total === 0) return 0;
      let seen = 0;
      for (let i = 0; i < h.length; i++) {
        seen += h[i]!;
        if (seen >= q * total) return lateBucketBound(i);
      }
      return Infinity;
    };
    return { packets: total, p50Us: at(0.5), p90Us: at(0.9), p99Us: at(0.99), maxUs: at(1) };
  }

  /** Counters for diagnostics: drops by reason, packets waiting, objects in use. */
  counters(): { enqueued: number; delivered: number; waiting: number; instances: number; queues: number; drops: Record<string, number> } {
    const st = this.engine.stats();
    const drops: Record<string, number> = {};
    for (let i = 1; i < DROP_NAMES.length; i++) drops[DROP_NAMES[i]!] = this.engine.dropCounts[i]!;
    return { enqueued: this.engine.enqueued, delivered: this.engine.delivered, waiting: st.waiting, instances: st.instances, queues: st.queues, drops };
  }
}

void DROP;
