/**
 * How long the calling thread has waited for a CPU while ready to run: Linux's run delay, the
 * second field of /proc/thread-self/schedstat (nanoseconds). pkt-gen reports it so that a
 * receiver that fell behind because the machine was busy (other programs had the CPUs) can be
 * told from one that was too slow or a sender that was too bursty.
 *
 * It also gives the thread's own CPU time (first field), which pkt-gen reports as `cpu_ms`: the
 * cost of the run whatever else the machine was doing.
 *
 * The file is opened once, by the thread to be measured (thread-self is resolved at open), and
 * re-read in place (pread at offset 0, about 8 µs): no allocation per sample.
 */
import fs from 'node:fs';

export class CpuWaitMeter {
  private readonly fd: number;
  private readonly buf = Buffer.alloc(96);

  constructor() {
    let fd = -1;
    try { fd = fs.openSync('/proc/thread-self/schedstat', 'r'); } catch { fd = -1; }
    this.fd = fd;
  }

  /** Whether the kernel provides the figure. */
  get available(): boolean {
    return this.fd >= 0;
  }

  /** Total run delay of this thread so far (ns), or -1 when unavailable. */
  sampleNs(): number {
    return this.field(1);
  }

  /** Total time this thread has run on a CPU so far (ns), or -1 when unavailable. */
  onCpuNs(): number {
    return this.field(0);
  }

  /** Field k of "<on-cpu ns> <run-delay ns> <timeslices>\n". */
  private field(k: number): number {
    if (this.fd < 0) return -1;
    let n: number;
    try { n = fs.readSync(this.fd, this.buf, 0, this.buf.length, 0); } catch { return -1; }
    const b = this.buf;
    let i = 0;
    for (let skip = 0; skip < k; skip++) {
      while (i < n && b[i] !== 0x20) i++;
      i++;
    }
    let v = 0, digits = 0;
    for (; i < n; i++) {
      const d = b[i]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
      digits++;
    }
    return digits > 0 ? v : -1;
  }

  close(): void {
    if (this.fd >= 0) { try { fs.closeSync(this.fd); } catch { /* already gone */ } }
  }
}
