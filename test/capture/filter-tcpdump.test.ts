/**
 * The filter compiler against tcpdump: for a corpus of generated frames and a large table of
 * expressions, our compiled filter (JIT and interpreter) selects exactly the packets that
 * `tcpdump -r corpus.pcap -w out.pcap EXPR` selects, and rejects the expressions tcpdump rejects.
 * tcpdump's own -ddd programs run through our interpreter also select the same packets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildCorpus, writeCorpus, TS_BASE, type CorpusPacket } from './corpus.js';
import { compileFilter } from '../../src/capture/filter.js';
import { compileProgram } from '../../src/capture/jit.js';
import { interpretProgram } from '../../src/capture/interp.js';
import { parseDddProgram } from '../../src/capture/bpf.js';
import { openCaptureFile } from '../../src/capture/reader.js';

export function haveTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
}

export const EXPRESSIONS: string[] = [
  '', 'ip', 'ip6', 'arp', 'rarp', 'tcp', 'udp', 'icmp', 'icmp6', 'sctp', 'igmp', 'pim', 'esp', 'ah', 'vrrp',
  'not ip', '!tcp', 'ip and tcp', 'ip6 and udp', 'tcp or udp', 'not (tcp or udp)', 'ip and not tcp and not udp',
  'host 198.18.0.1', 'src host 198.18.0.1', 'dst host 198.18.0.2', 'src and dst host 198.18.0.1', 'src or dst host 198.18.0.3',
  'ip host 198.18.0.1', 'arp host 198.18.0.2', 'rarp host 198.18.0.3', 'ip src 198.18.0.1', 'ip dst 198.19.1.1',
  'host 198.18.0.1 or 198.18.0.2', 'host 198.18.0.1 and not 198.18.0.2', 'src 198.18.0.1 or dst 198.18.0.2',
  'host 198.18.0.1 or (198.18.0.2 or 198.18.0.3)', 'host 198.18.0.1 and (tcp or udp)',
  'net 198.18.0.0/16', 'net 198.18.5.0/24', 'src net 198.18.5', 'dst net 198.19', 'net 198.18.0.0 mask 255.255.0.0',
  'net 224.0.0.0/4', 'ip net 198.18.5.0/24', 'arp net 198.18.0.0/16', 'host 198.18', 'net 198',
  'host 2001:db8::1', 'src host 2001:db8::2', 'dst host fe80::1', 'ip6 host ff02::1', 'net 2001:db8::/32',
  'src net 2001:db8:1::/48', 'ip6 dst net ff00::/8', 'net 2001:db8:ffff::/48', 'net ::/0', 'host ::1',
  'ether host 02:00:00:00:00:01', 'ether src 02:00:00:00:00:02', 'ether dst ff:ff:ff:ff:ff:ff', 'ether src and dst 02:00:00:00:00:03',
  'ether host 0a:1b:2c:3d:4e:5f', 'ether host 0a1b.2c3d.4e5f', 'ether dst 01:00:5e:00:00:01',
  'ether broadcast', 'broadcast', 'ether multicast', 'multicast', 'ip multicast', 'ip6 multicast',
  'ether proto 0x88cc', 'ether proto 0x0800', 'ether proto \\ip', 'ether proto \\ip6', 'ether proto \\arp', 'ether proto 0x42', 'ether proto 0xfe', 'ether proto 6',
  'ether proto \\stp', 'ether proto \\iso',
  'ip proto 6', 'ip proto 17', 'ip proto \\tcp', 'ip proto \\udp', 'ip6 proto 6', 'ip6 proto 17', 'ip6 proto 58', 'ip6 proto 0',
  'proto 6', 'proto 17', 'proto \\tcp', 'proto 132', 'ip proto 47', 'ip6 proto 44', 'ip proto 2',
  'port 80', 'port 53', 'src port 80', 'dst port 443', 'tcp port 80', 'udp port 53', 'sctp port 22', 'tcp src port 1024',
  'udp dst port 123', 'port 80 or 443', 'tcp dst port 21 or 20', 'src and dst port 80', 'src or dst port 22',
  'port 65535', 'port 0', 'tcp port 80 and host 198.18.0.1', 'not port 80', 'port domain', 'udp port domain', 'tcp port http', 'port http',
  'portrange 20-23', 'src portrange 1-1024', 'tcp portrange 8000-9000', 'udp dst portrange 60-70', 'portrange 443-80', 'portrange 53',
  'portrange ftp-data-ssh',
  'less 60', 'less 100', 'greater 100', 'greater 1000', 'len > 100', 'len <= 64', 'len = 60', 'length >= 70', 'len != 60',
  'ip[0] = 0x45', 'ip[0] & 0xf > 5', 'ip[0] & 0xf != 5', 'ip[6:2] & 0x1fff != 0', 'ip[6:2] & 0x3fff = 0', 'ip[8] < 64', 'ip[1] & 0xfc = 0xb8',
  'ip[2:2] > 100', 'ip[12:4] = 0xc6120001', 'ip[16] >= 224', 'ip[9] = 6 and ip[6] & 0x20 = 0x20',
  'tcp[tcpflags] & tcp-syn != 0', 'tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn', 'tcp[tcpflags] = tcp-ack', 'tcp[13] & 7 != 0',
  'tcp[tcpflags] & (tcp-rst|tcp-fin) != 0', 'tcp[tcpflags] & (tcp-ece|tcp-cwr) != 0', 'tcp[tcpflags] & tcp-urg != 0',
  'tcp[tcpflags] & tcp-push != 0', 'tcp[12] >> 4 > 5', 'tcp[0:2] = 80', 'tcp[2:2] < 1024', 'tcp[4:4] > 0x80000000',
  'tcp[((tcp[12] & 0xf0) >> 2):1] = 0x2', 'tcp[(tcp[12] >> 4) * 4] = 1', 'tcp[20] = 2',
  'udp[0:2] = 53', 'udp[2:2] = 53 or udp[0:2] = 53', 'udp[4:2] > 20', 'udp[8:4] = 0x01081522',
  'icmp[icmptype] = icmp-echo', 'icmp[icmptype] = icmp-echoreply', 'icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply',
  'icmp[icmpcode] = 1', 'icmp[0] = 3 and icmp[1] = 3', 'icmp[icmptype] = icmp-timxceed', 'icmp[icmptype] = icmp-unreach',
  'icmp6[icmp6type] = icmp6-echo', 'icmp6[icmp6type] = icmp6-neighborsolicit', 'icmp6[0] = 136', 'icmp6[icmp6code] = 4',
  'ip6[6] = 6', 'ip6[6] = 44', 'ip6[40] = 6', 'ip6[7] < 64', 'ip6[24] = 0xff', 'ip6[8:4] = 0x20010db8', 'ip6[0:4] & 0xfffff = 0',
  'arp[6:2] = 1', 'arp[6:2] = 2', 'arp[7] = 3', 'rarp[7] = 4',
  'ether[0] & 1 != 0', 'ether[12:2] = 0x0800', 'ether[12:2] > 1500', 'link[6:4] = 0x02000000', 'ether[14] = 0x42',
  'ether[100] = 1', 'ether[59] = 0', 'ether[0:4] = 0xffffffff', 'ip[100] = 1 or ip', 'not tcp[100] = 1', 'tcp[100] = 1 or udp',
  'vlan', 'vlan 10', 'vlan 100', 'vlan 4095', 'vlan and ip', 'vlan and tcp', 'vlan 10 and udp', 'vlan and vlan', 'vlan 100 and vlan 10',
  'vlan and vlan and ip', 'vlan and vlan 20 and ip6', 'not vlan', 'vlan or ip', 'ip or vlan', 'vlan and host 198.18.0.1',
  'vlan and port 80', 'vlan 20 and ether host 02:00:00:00:00:01', 'vlan and ip[9] = 17', 'vlan and tcp[tcpflags] & tcp-syn != 0',
  'mpls', 'mpls and ip', 'mpls and ip6', 'mpls and tcp', 'mpls and udp', 'mpls and mpls', 'mpls and mpls and ip',
  'mpls and host 198.18.0.1', 'mpls 5', 'not mpls', 'mpls and ip[9] = 6', 'mpls and mpls and ip6',
  'ip[0] + 1 = 0x46', 'ip[0] - 1 = 0x44', 'ip[0] * 2 = 0x8a', 'ip[0] / 2 = 0x22', 'ip[0] % 16 = 5', 'ip[0] | 1 = 0x45',
  'ip[0] ^ 0x45 = 0', 'ip[0] << 1 = 0x8a', 'ip[0] >> 4 = 4', '(-ip[0]) = 0xffffffbb', '0 - ip[0] = 0xffffffbb', 'ip[0] & 1 ^ 2 = 3', 'ip[0] | 1 ^ 2 & 3 = 0x47',
  'ip[2:2] - ip[0] & 0xf * 4 > 40', 'ip[ip[0] & 0xf] = 0', 'ether[ether[0] & 3] = 2', 'ip[2:2] / (ip[0] & 1) = 1', 'ip[2:2] % (ip[1] & 1) = 0', 'ip[2:2] / (ip[1] & 1) = 1', 'ip[3] << ip[1] = 0', 'ip[3] >> (ip[1] & 7) = 0', 'tcp[13] / tcp[0] = 0', 'ip[2:2] << ip[40] = 0',
  'ip[1] - ip[2] = ip[3] * (ip[4] + ip[5])', '(ip[0] & 0xf) > 5', '((ip[0]) & 0xf) = 5', '(ip[0] = 0x45)', '5 = ip[0] & 0xf',
  'len - 14 > 100', 'len * 2 > 200', 'ip[0] & 0xf = 5 and len > 100', 'ip[2:2] = len - 14',
  '(tcp or udp) and host 198.18.0.2', 'tcp and (port 80 or port 443)', 'not (host 198.18.0.1 or host 198.18.0.2)',
  'ip and (src net 198.18.0.0/16 and not dst net 198.18.5.0/24)', 'tcp and not port 22 and not port 80',
  '(ip6 and udp) or (ip and tcp)', 'ether multicast and not broadcast', 'arp or rarp or (ip and icmp)',
  'host 198.18.0.1 or (port 80) or 198.18.0.2', 'not not ip', '! ( ip )', 'ip && tcp || udp', 'ip and tcp or udp and not icmp',
  'tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack = 0', 'greater 80 and less 200',
  // Errors (tcpdump rejects them too).
  'tcp or 80', '1.2.3.4', 'host', 'ip[0:3] = 1', 'ip[0] / 0 = 1', 'ip[0] << 32 = 0', 'vlan 5000', 'mpls 1048576',
  'port 70000', 'host foo.invalid', 'ip host 02:00:00:00:00:01', 'tcp host 198.18.0.1', 'ip6 host 198.18.0.1',
  'ip host 2001:db8::1', 'net 198.18.0.1/16', 'src proto 6', 'ip broadcast', 'ether broadcast or ip broadcast', 'arp proto 6', 'tcp proto 6', '(ip',
  'ip)', 'ip and', 'and ip', 'len-1 > 0', 'ip[0] = ', 'port 80-90', 'udp port http', 'ether proto \\foo', 'tcp[0:2] = ',
  'host 198.18.0.1 mask 255.255.0.0', 'net 2001:db8::1/32', 'host 2001:db8::/32',
];

/** Indices (0-based) of corpus packets selected by tcpdump; null if tcpdump rejected the expression. */
function tcpdumpSelect(corpusPath: string, outPath: string, expr: string): number[] | null {
  const args = ['-r', corpusPath, '-w', outPath];
  if (expr !== '') args.push(expr);
  const res = spawnSync('tcpdump', args, { encoding: 'utf8', timeout: 20000 });
  if (res.status !== 0) return null;
  const sel: number[] = [];
  const rd = openCaptureFile(outPath);
  try {
    rd.dispatch(0, (_u8, _o, _c, _w, sec) => { sel.push(sec - TS_BASE); });
  } finally {
    rd.close();
  }
  return sel;
}

function ourSelect(packets: CorpusPacket[], filter: (u8: Uint8Array, o: number, c: number, w: number) => number): number[] {
  const sel: number[] = [];
  packets.forEach((p, i) => {
    if (filter(p.frame, 0, p.caplen, p.frame.length) !== 0) sel.push(i);
  });
  return sel;
}

function diff(a: number[], b: number[]): string {
  const sa = new Set(a), sb = new Set(b);
  const onlyA = a.filter((x) => !sb.has(x)).slice(0, 8);
  const onlyB = b.filter((x) => !sa.has(x)).slice(0, 8);
  return `only ours: [${onlyA.join(',')}] only tcpdump: [${onlyB.join(',')}]`;
}

/**
 * Runs `fn` with the corpus written to a fresh directory (removed afterwards); skips the test
 * when tcpdump is missing.
 */
function withCorpus(t: { skip(msg: string): void }, fn: (packets: ReturnType<typeof buildCorpus>, corpusPath: string, outPath: string) => void): void {
  if (!haveTool('tcpdump')) {
    t.skip('tcpdump is not installed');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netmap-capture-'));
  try {
    const packets = buildCorpus();
    const corpusPath = path.join(dir, 'corpus.pcap');
    writeCorpus(corpusPath, packets);
    fn(packets, corpusPath, path.join(dir, 'out.pcap'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('filter expressions select exactly what tcpdump selects', { timeout: 120000 }, (t) => {
  withCorpus(t, (packets, corpusPath, outPath) => {
    const failures: string[] = [];
    let compared = 0, rejected = 0;
    for (const expr of EXPRESSIONS) {
      const theirs = tcpdumpSelect(corpusPath, outPath, expr);
      let prog;
      try {
        prog = compileFilter(expr);
      } catch (e) {
        if (theirs === null) { rejected++; continue; }
        failures.push(`'${expr}': we reject (${(e as Error).message}) but tcpdump accepts`);
        continue;
      }
      if (theirs === null) {
        failures.push(`'${expr}': tcpdump rejects it but we compile it`);
        continue;
      }
      const jit = ourSelect(packets, compileProgram(prog));
      const interp = ourSelect(packets, interpretProgram(prog));
      compared++;
      if (jit.join() !== theirs.join()) failures.push(`'${expr}' (compiled): ${jit.length} vs tcpdump ${theirs.length}: ${diff(jit, theirs)}`);
      if (interp.join() !== jit.join()) failures.push(`'${expr}': interpreter and compiled differ: ${diff(interp, jit)}`);
    }
    console.log(`# ${compared} expressions compared with tcpdump on ${packets.length} packets, ${rejected} rejected by both`);
    assert.deepEqual(failures, []);
  });
});

test("tcpdump's own -ddd programs give the same selection through our interpreter and compiler", { timeout: 60000 }, (t) => {
  withCorpus(t, (packets, corpusPath, outPath) => {
    const failures: string[] = [];
    let n = 0;
    for (const expr of EXPRESSIONS.slice(0, 200)) {
      const res = spawnSync('tcpdump', ['-r', corpusPath, '-ddd', expr], { encoding: 'utf8' });
      if (res.status !== 0 || expr === '') continue;
      const prog = parseDddProgram(res.stdout);
      const theirs = tcpdumpSelect(corpusPath, outPath, expr);
      assert.ok(theirs !== null);
      const a = ourSelect(packets, interpretProgram(prog));
      const b = ourSelect(packets, compileProgram(prog));
      n++;
      if (a.join() !== theirs.join()) failures.push(`'${expr}' interpreted tcpdump program: ${diff(a, theirs)}`);
      if (b.join() !== theirs.join()) failures.push(`'${expr}' compiled tcpdump program: ${diff(b, theirs)}`);
    }
    console.log(`# ${n} tcpdump programs checked`);
    assert.deepEqual(failures, []);
  });
});
