/**
 * Conformance with libpcap's and tcpdump's own filter test tables (issue 17). The data lives in
 * ../shared/filter-oracle/ (expressions.json: every expression of libpcap's TESTrun and tcpdump's
 * TESTLIST; tests-eth.pcap: Ethernet records of both projects' test captures) and is read from
 * there, never copied. The judge is the installed tcpdump: for each expression that needs no
 * name look-up, `tcpdump -r tests-eth.pcap -w FILE EXPR` says whether it compiles on Ethernet and
 * which records it selects; our compiler must agree on both, through the JS compiler and the
 * interpreter. The test skips (with the reason) when the folder or tcpdump is absent.
 *
 * Run as a script (`node dist/test/capture/filter-oracle.test.js --report`) it also prints each
 * disagreement.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileFilter } from '../../src/capture/filter.js';
import { compileProgram } from '../../src/capture/jit.js';
import { interpretProgram } from '../../src/capture/interp.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The oracle folder: $NETMAP_FILTER_ORACLE, else shared/filter-oracle beside the repository. */
export function oracleDir(): string | null {
  const candidates = [
    process.env.NETMAP_FILTER_ORACLE,
    path.resolve(HERE, '../../../../shared/filter-oracle'), // dist/test/capture -> repo/.. /shared
    path.resolve(HERE, '../../../shared/filter-oracle'),
    '/work/shared/filter-oracle',
  ];
  for (const c of candidates) {
    if (c !== undefined && fs.existsSync(path.join(c, 'expressions.json')) && fs.existsSync(path.join(c, 'tests-eth.pcap'))) return c;
  }
  return null;
}

/**
 * Combinations beyond the tables, on the same records: primitives after `geneve` (offsets in
 * registers), after `pppoes` (a PPP link), and the link-level protocols mixed with others.
 */
const EXTRA = [
  'geneve and ip', 'geneve and ip6', 'geneve and udp', 'geneve and icmp', 'geneve and ip host 10.0.0.1',
  'geneve and ip src net 10.0.0.0/8', 'geneve and ip6 host fe80::1', 'geneve and port 22', 'geneve and tcp dst port 80',
  'geneve and ether host 00:00:00:00:00:01', 'geneve and ether dst ff:ff:ff:ff:ff:ff', 'geneve and broadcast',
  'geneve and vlan', 'geneve and arp', 'geneve and ip[9] = 6', 'geneve and ether[12:2] = 0x800', 'geneve and udp[0:2] > 1000',
  'geneve and tcp[tcpflags] & tcp-syn != 0', 'geneve 0 or geneve 10', 'not geneve', 'geneve and not ip', 'geneve and ip proto 17',
  'geneve and geneve and ip', 'geneve and ip protochain 6', 'udp port 6081 and geneve', 'geneve and len > 100',
  'pppoes and ip host 10.0.0.1', 'pppoes and udp', 'pppoes and ip6', 'pppoes and tcp port 80', 'pppoes and ip[0] = 0x45',
  'pppoed or pppoes', 'pppoes and ether[0] = 0', 'pppoes and byte 0 = 0', 'pppoes and not ip',
  'ip protochain 17 or ip6 protochain 58', 'protochain 6 and port 80', 'not protochain 17', 'ip6 protochain 44',
  'vlan and protochain 17', 'ip6 protochain 59', 'ip protochain 51 or ip6 protochain 51',
  'ipx or aarp or atalk', 'iso or stp or netbeui', 'llc and not stp', 'llc u or llc s', 'llc i and iso',
  'clnp or esis or isis', 'isis and l1', 'decnet and decnet src 1.1', 'decnet host 50.764 or ip',
  'byte 20 > 3 and ip', 'ip and byte 0 & 1', 'ether proto 0xe0 or ether proto 0x809b', 'link[0:2] & 0 == 0 and ip',
  'ip[100:4] * 0 = 0', '0 / ip[0] = 0', 'ip6 dst net ::/0', 'tcp[13] & 0xffffffff != 0',
  'geneve and tcp[(tcp[12] & 0xf0) >> 2] = 0', 'geneve and ip[ip[0] & 0xf] != 1', 'geneve and udp[udp[4:2] - 9] > 0',
  'geneve and ether[ether[0] & 7] = 0', 'geneve and tcp[13] + tcp[12] > ip[9]', 'geneve and len - 100 > udp[4:2]',
  'vlan and geneve and ip', 'geneve and vlan 10 and ip', 'geneve and mpls and ip', 'mpls and geneve', 'geneve and pppoes',
  'pppoes and geneve', 'geneve and llc', 'geneve and iso', 'geneve and ipx', 'geneve and decnet host 1.1', 'geneve and icmp6',
  'geneve and ip6 proto 58', 'geneve and ip multicast', 'geneve and ip6 multicast', 'geneve and portrange 1-1000',
  'geneve and sctp', 'geneve and host 10.0.0.1', 'geneve and net 10.0.0.0/8', 'geneve and byte 12 = 8', 'geneve and less 200',
];

interface OracleExpression {
  expr: string;
  lookup: string | null;
}

interface Rec {
  /** The whole record (16-byte header and data) as it is in the file. */
  raw: Uint8Array;
  caplen: number;
  wirelen: number;
}

/** Minimal classic-pcap reader for the oracle file (either byte order), independent of reader.ts. */
function readPcap(file: string): Rec[] {
  const buf = fs.readFileSync(file);
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && buf.readUInt32BE(0) !== 0xa1b2c3d4 && buf.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${file}: not a classic pcap file`);
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const out: Rec[] = [];
  let o = 24;
  while (o + 16 <= buf.length) {
    const caplen = u32(o + 8), wirelen = u32(o + 12);
    if (o + 16 + caplen > buf.length) throw new Error(`${file}: truncated record at ${o}`);
    out.push({ raw: buf.subarray(o, o + 16 + caplen), caplen, wirelen });
    o += 16 + caplen;
  }
  return out;
}

type Verdict = { ok: true; body: Buffer } | { ok: false; error: string };

/**
 * tcpdump's verdicts on `exprs`, in order: the bytes of the records each selects (after the file
 * header), or its error. `parallel` shells each run `tcpdump -r PCAP -w FILE -- EXPR` in a loop
 * over their share, into a scratch folder: a Node spawn per expression cost as much again as
 * tcpdump itself (about 4000 runs: 64 s against 16 ms of tcpdump a run on this VM).
 */
async function tcpdumpVerdicts(pcap: string, exprs: readonly string[], parallel: number): Promise<Verdict[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'filter-oracle-'));
  try {
    exprs.forEach((e, i) => fs.writeFileSync(path.join(dir, `${i}.expr`), e));
    // (the `x` keeps an expression's trailing blanks from $(...)'s trimming)
    const script = 'for i in "$@"; do e=$(cat "$D/$i.expr"; echo x); e=${e%x}; '
      + 'if [ -z "$e" ]; then tcpdump -r "$P" -w "$D/$i.out" 2>"$D/$i.err"; else tcpdump -r "$P" -w "$D/$i.out" -- "$e" 2>"$D/$i.err"; fi; '
      + 'echo $? >"$D/$i.rc"; done';
    await Promise.all(Array.from({ length: parallel }, (_, lane) => new Promise<void>((resolve, reject) => {
      const share = exprs.map((_, i) => i).filter((i) => i % parallel === lane).map(String);
      const child = spawn('sh', ['-c', script, 'sh', ...share], { env: { ...process.env, D: dir, P: pcap }, stdio: 'ignore' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 400_000);
      child.on('error', reject);
      child.on('close', () => { clearTimeout(timer); resolve(); });
    })));
    return exprs.map((_, i): Verdict => {
      const file = (ext: string): string => path.join(dir, `${i}.${ext}`);
      if (!fs.existsSync(file('rc'))) return { ok: false, error: 'tcpdump did not finish' };
      const code = Number(fs.readFileSync(file('rc'), 'utf8').trim());
      const stderr = fs.readFileSync(file('err'), 'utf8').split('\n').filter((l) => !l.startsWith('reading from file')).join(' ').trim();
      if (code !== 0) return { ok: false, error: stderr || `exit ${code}` };
      return { ok: true, body: fs.readFileSync(file('out')).subarray(24) };
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Indices of the records whose bytes make up `body`, in order (records appear as a subsequence). */
function indicesOf(records: Rec[], body: Buffer): number[] {
  const sel: number[] = [];
  let o = 0;
  for (let i = 0; i < records.length && o < body.length; i++) {
    const r = records[i]!.raw;
    if (o + r.length <= body.length && Buffer.compare(body.subarray(o, o + r.length), r) === 0) {
      sel.push(i);
      o += r.length;
    }
  }
  return sel;
}

function ourSelection(records: Rec[], filter: (u8: Uint8Array, o: number, c: number, w: number) => number): number[] {
  const sel: number[] = [];
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (filter(r.raw, 16, r.caplen, r.wirelen) !== 0) sel.push(i);
  }
  return sel;
}

function sameBody(records: Rec[], sel: number[], body: Buffer): boolean {
  let o = 0;
  for (const i of sel) {
    const r = records[i]!.raw;
    if (o + r.length > body.length || Buffer.compare(body.subarray(o, o + r.length), r) !== 0) return false;
    o += r.length;
  }
  return o === body.length;
}

export interface OracleReport {
  compared: number;
  agreeing: number;
  skippedLookup: number;
  bothRefuse: number;
  mismatches: string[];
  wrongAccept: string[];
  wrongRefuse: string[];
}

export async function runOracle(dir: string, parallel = 2): Promise<OracleReport> {
  const table = JSON.parse(fs.readFileSync(path.join(dir, 'expressions.json'), 'utf8')) as { expressions: OracleExpression[] };
  const pcap = path.join(dir, 'tests-eth.pcap');
  const records = readPcap(pcap);
  const report: OracleReport = { compared: 0, agreeing: 0, skippedLookup: 0, bothRefuse: 0, mismatches: [], wrongAccept: [], wrongRefuse: [] };
  const todo = table.expressions.filter((e) => {
    if (e.lookup !== null) report.skippedLookup++;
    return e.lookup === null;
  });
  for (const expr of EXTRA) todo.push({ expr, lookup: null });
  const verdicts = await tcpdumpVerdicts(pcap, todo.map((e) => e.expr), parallel);
  for (let n = 0; n < todo.length; n++) {
    const expr = todo[n]!.expr, theirs = verdicts[n]!;
    let prog;
    let ourError = '';
    try {
      prog = compileFilter(expr);
    } catch (e) {
      ourError = (e as Error).message;
    }
    if (!theirs.ok) {
      if (prog === undefined) report.bothRefuse++;
      else report.wrongAccept.push(`${JSON.stringify(expr)}: tcpdump: ${theirs.error}`);
      continue;
    }
    report.compared++;
    if (prog === undefined) {
      report.wrongRefuse.push(`${JSON.stringify(expr)}: ${ourError}`);
      continue;
    }
    const compiled = ourSelection(records, compileProgram(prog));
    const interpreted = ourSelection(records, interpretProgram(prog));
    if (!sameBody(records, compiled, theirs.body) || compiled.join() !== interpreted.join()) {
      const tsel = indicesOf(records, theirs.body);
      const ts = new Set(tsel), ours = new Set(compiled);
      const onlyOurs = compiled.filter((i) => !ts.has(i));
      const onlyTheirs = tsel.filter((i) => !ours.has(i));
      const interpNote = compiled.join() !== interpreted.join() ? ' (interpreter differs from compiled)' : '';
      report.mismatches.push(`${JSON.stringify(expr)}: only ours ${onlyOurs.length} [${onlyOurs.slice(0, 6).join(',')}], only tcpdump ${onlyTheirs.length} [${onlyTheirs.slice(0, 6).join(',')}]${interpNote}`);
      continue;
    }
    report.agreeing++;
  }
  return report;
}

function haveTcpdump(): boolean {
  return spawnSync('sh', ['-c', 'command -v tcpdump'], { encoding: 'utf8' }).status === 0;
}

if (process.argv.includes('--report')) {
  const dir = oracleDir();
  if (dir === null || !haveTcpdump()) {
    console.log('oracle folder or tcpdump missing');
  } else {
    const r = await runOracle(dir);
    for (const l of r.mismatches) console.log(`MISMATCH ${l}`);
    for (const l of r.wrongAccept) console.log(`ACCEPT ${l}`);
    for (const l of r.wrongRefuse) console.log(`REFUSE ${l}`);
    console.log(JSON.stringify({ compared: r.compared, agreeing: r.agreeing, skippedLookup: r.skippedLookup, bothRefuse: r.bothRefuse, mismatches: r.mismatches.length, wrongAccept: r.wrongAccept.length, wrongRefuse: r.wrongRefuse.length }));
  }
} else {
  // ~4000 tcpdump runs: about 40 s on a quiet machine, two minutes on a loaded one
  test("libpcap's and tcpdump's filter test tables: same verdict and same records as tcpdump", { timeout: 480000 }, async (t) => {
    const dir = oracleDir();
    if (dir === null) {
      t.skip('the filter oracle (shared/filter-oracle) is absent');
      return;
    }
    if (!haveTcpdump()) {
      t.skip('tcpdump is not installed');
      return;
    }
    const r = await runOracle(dir);
    console.log(`# ${r.agreeing} of ${r.compared} expressions select the same records as tcpdump; ${r.bothRefuse} refused by both; ${r.skippedLookup} need name look-ups (skipped); ${r.wrongRefuse.length} refused by us only`);
    assert.ok(r.compared + r.bothRefuse > 3000, 'the table was read');
    assert.deepEqual(r.mismatches, [], 'records selected differently');
    assert.deepEqual(r.wrongAccept, [], 'compiled where tcpdump refuses');
    assert.deepEqual(r.wrongRefuse, [], 'refused where tcpdump compiles');
  });
}
