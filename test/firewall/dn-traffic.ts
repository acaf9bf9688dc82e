/**
 * Traffic tools for the dummynet namespace tests and benchmark: unlike iperf3 they give the raw
 * arrival time of every packet, which the timing and sharing checks need. Run as a child in a namespace:
 *   node dn-traffic.js udp-send '{"flows":[{"dst":"198.18.0.2","port":5001,"pps":800,"src":"198.18.0.1"}],"payload":1400,"durationMs":2500,"count":0}'
 *   node dn-traffic.js udp-recv '{"bind":"198.18.0.2","ports":[5001],"durationMs":4000,"idleMs":800}'
 *   node dn-traffic.js tcp-send '{"dst":"198.18.0.2","port":5201,"durationMs":2500,"bytes":0}'
 *   node dn-traffic.js tcp-recv '{"bind":"198.18.0.2","port":5201,"durationMs":5000}'
 * Receivers print `{"ready":true}` once listening, then one JSON line with what they saw. Every
 * mode is bounded in time (at most 20 s) and, for senders, in count.
 */
import dgram from 'node:dgram';
import net from 'node:net';

const HARD_LIMIT_MS = 20_000;
const mode = process.argv[2];
const opts = JSON.parse(process.argv[3] ?? '{}') as Record<string, unknown>;
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const limit = (ms: unknown): number => Math.min(HARD_LIMIT_MS, Math.max(1, Number(ms)));
setTimeout(() => process.exit(3), HARD_LIMIT_MS + 2000).unref();

interface SendFlow { dst: string; port: number; pps: number; src?: string }

/** Sends each flow at its own packet rate (paced against the clock every millisecond) until durationMs or count. */
async function udpSend(): Promise<void> {
  const flows = opts.flows as SendFlow[];
  const payload = Number(opts.payload);
  const durationMs = limit(opts.durationMs);
  const count = Number(opts.count ?? 0);
  const socks = await Promise.all(flows.map((f) => new Promise<dgram.Socket>((resolve) => {
    const s = dgram.createSocket('udp4');
    s.on('error', () => { /* ENOBUFS and the like: the packet is simply not sent */ });
    s.bind({ address: f.src ?? '0.0.0.0', port: 0 }, () => resolve(s));
  })));
  const sent = flows.map(() => 0);
  const bufs = flows.map((_, i) => { const b = Buffer.alloc(payload); b[0] = i; return b; });
  const t0 = nowMs();
  let turn = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const el = nowMs() - t0;
      let done = el >= durationMs;
      // the flow that sends first changes every tick: independent senders, not one that always
      // wins the queue slot freed since the last tick (drop-tail shares depend on arrival order)
      turn = turn + 1 === flows.length ? 0 : turn + 1;
      for (let f = 0; f < flows.length; f++) {
        const i = (turn + f) % flows.length;
        let due = Math.floor((Math.min(el, durationMs) / 1000) * flows[i]!.pps);
        if (count > 0 && due > count) due = count;
        while (sent[i]! < due) {
          bufs[i]!.writeUInt32BE(sent[i]!, 4);
          socks[i]!.send(bufs[i]!, flows[i]!.port, flows[i]!.dst);
          sent[i]!++;
        }
      }
      if (count > 0 && sent.every((s) => s >= count)) done = true;
      if (done) resolve(); else setTimeout(tick, 1);
    };
    tick();
  });
  await new Promise((r) => setTimeout(r, 50)); // let the last sends leave
  for (const s of socks) s.close();
  console.log(JSON.stringify({ sent, elapsedMs: nowMs() - t0 }));
}

/** Records the arrival time of every datagram, per (source address, destination port). */
async function udpRecv(): Promise<void> {
  const ports = opts.ports as number[];
  const durationMs = limit(opts.durationMs);
  const idleMs = Number(opts.idleMs ?? 1000);
  const flows = new Map<string, { n: number; bytes: number; times: number[] }>();
  const t0 = nowMs();
  let last = 0;
  const socks = await Promise.all(ports.map((port) => new Promise<dgram.Socket>((resolve) => {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    s.on('message', (msg, rinfo) => {
      const t = nowMs() - t0;
      last = t;
      const key = `${rinfo.address}:${port}`;
      let f = flows.get(key);
      if (f === undefined) { f = { n: 0, bytes: 0, times: [] }; flows.set(key, f); }
      f.n++;
      f.bytes += msg.length;
      if (f.times.length < 100_000) f.times.push(Math.round(t * 1000) / 1000);
    });
    s.bind({ address: String(opts.bind), port }, () => resolve(s));
  })));
  console.log(JSON.stringify({ ready: true }));
  await new Promise<void>((resolve) => {
    const check = (): void => {
      const t = nowMs() - t0;
      if (t >= durationMs || (last > 0 && t - last >= idleMs)) resolve(); else setTimeout(check, 20);
    };
    check();
  });
  for (const s of socks) s.close();
  console.log(JSON.stringify({ flows: Object.fromEntries(flows) }));
}

/** Writes as fast as TCP takes it for durationMs (or `bytes`), then closes. */
async function tcpSend(): Promise<void> {
  const durationMs = limit(opts.durationMs);
  const total = Number(opts.bytes ?? 0);
  const chunk = Buffer.alloc(65536, 0x5a);
  const t0 = nowMs();
  let written = 0;
  await new Promise<void>((resolve) => {
    const s = net.connect({ host: String(opts.dst), port: Number(opts.port) });
    const finish = (): void => { s.end(); s.once('close', () => resolve()); };
    s.on('error', () => resolve());
    const pump = (): void => {
      while (nowMs() - t0 < durationMs && (total === 0 || written < total)) {
        const n = total === 0 ? chunk.length : Math.min(chunk.length, total - written);
        written += n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) { s.once('drain', pump); return; }
      }
      finish();
    };
    s.on('connect', pump);
    setTimeout(() => { s.destroy(); resolve(); }, durationMs + 5000).unref();
  });
  console.log(JSON.stringify({ written, elapsedMs: nowMs() - t0 }));
}

/** Accepts one connection and records (time, cumulative bytes) at every read. */
async function tcpRecv(): Promise<void> {
  const durationMs = limit(opts.durationMs);
  const t0 = nowMs();
  const samples: number[] = [];
  let bytes = 0;
  let closedAt = -1;
  const server = net.createServer((c) => {
    c.on('data', (d) => {
      bytes += d.length;
      if (samples.length < 400_000) samples.push(Math.round((nowMs() - t0) * 1000) / 1000, bytes);
    });
    c.on('close', () => { closedAt = nowMs() - t0; });
    c.on('error', () => { /* counted what came */ });
  });
  await new Promise<void>((r) => server.listen(Number(opts.port), String(opts.bind), () => r()));
  console.log(JSON.stringify({ ready: true }));
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (nowMs() - t0 >= durationMs || closedAt >= 0) resolve(); else setTimeout(check, 20);
    };
    check();
  });
  server.close();
  console.log(JSON.stringify({ bytes, closedAt, samples }));
}

const modes: Record<string, () => Promise<void>> = { 'udp-send': udpSend, 'udp-recv': udpRecv, 'tcp-send': tcpSend, 'tcp-recv': tcpRecv };
if (mode === undefined) {
  // `node --test dist/test/` runs every file under test/ as a test: without a mode, succeed quietly
  console.log('# dn-traffic: traffic helper of dummynet-netns.test.ts; nothing to do without a mode');
  process.exit(0);
}
const run = modes[mode];
if (run === undefined) {
  console.error(`dn-traffic: unknown mode '${mode}' (${Object.keys(modes).join(', ')})`);
  process.exit(64);
}
await run();
process.exit(0);
