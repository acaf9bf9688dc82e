/** flowKeyFromFrame: the flow id dummynet masks, read from real frame layouts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowKey, flowKeyFromFrame } from '../../src/firewall/dummynet/index.js';

function eth(type: number, payload: number[], vlan = false): Uint8Array {
  const h = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  if (vlan) h.push(0x81, 0x00, 0x00, 0x05);
  h.push(type >> 8, type & 255);
  return Uint8Array.from([...h, ...payload]);
}
function ipv4(proto: number, src: number[], dst: number[], l4: number[], frag = 0): number[] {
  return [0x45, 0, 0, 20 + l4.length, 0, 1, frag >> 8, frag & 255, 64, proto, 0, 0, ...src, ...dst, ...l4];
}

test('IPv4 UDP and TCP: addresses and ports; VLAN tag skipped', () => {
  const k = new FlowKey();
  const f = eth(0x0800, ipv4(17, [198, 18, 0, 1], [198, 18, 1, 2], [0x13, 0x88, 0x14, 0x51, 0, 8, 0, 0]));
  assert.equal(flowKeyFromFrame(f, 0, f.length, k), true);
  assert.deepEqual([k.proto, k.srcIp, k.srcPort, k.dstIp, k.dstPort, k.isV6], [17, 0xc6120001, 5000, 0xc6120102, 5201, false]);
  const t = eth(0x0800, ipv4(6, [198, 18, 0, 9], [198, 18, 1, 2], [0, 80, 0x30, 0x39, 0, 0, 0, 0]), true);
  assert.equal(flowKeyFromFrame(t, 0, t.length, k), true);
  assert.deepEqual([k.proto, k.srcIp, k.srcPort, k.dstPort], [6, 0xc6120009, 80, 12345]);
});

test('ICMP and non-first fragments have no ports; ARP and truncated frames are not IP', () => {
  const k = new FlowKey();
  const icmp = eth(0x0800, ipv4(1, [198, 18, 0, 1], [198, 18, 1, 2], [8, 0, 0, 0, 0, 1, 0, 1]));
  assert.equal(flowKeyFromFrame(icmp, 0, icmp.length, k), true);
  assert.deepEqual([k.proto, k.srcPort, k.dstPort], [1, 0, 0]);
  const frag = eth(0x0800, ipv4(17, [198, 18, 0, 1], [198, 18, 1, 2], [1, 2, 3, 4], 0x0010));
  flowKeyFromFrame(frag, 0, frag.length, k);
  assert.deepEqual([k.proto, k.srcPort, k.dstPort], [17, 0, 0]);
  const arp = eth(0x0806, new Array(28).fill(0));
  assert.equal(flowKeyFromFrame(arp, 0, arp.length, k), false);
  assert.equal(flowKeyFromFrame(icmp, 0, 20, k), false);
  assert.equal(k.isNonZero(), false);
});

test('IPv6 with a hop-by-hop header: addresses, flow label, ports', () => {
  const k = new FlowKey();
  const src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  const dst = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
  const hbh = [17, 0, 0, 0, 0, 0, 0, 0];
  const udp = [0, 53, 0x14, 0xe9, 0, 8, 0, 0];
  const f = eth(0x86dd, [0x60, 0x0a, 0xbc, 0xde, 0, 16, 0, 64, ...src, ...dst, ...hbh, ...udp]);
  assert.equal(flowKeyFromFrame(f, 0, f.length, k), true);
  assert.equal(k.isV6, true);
  assert.deepEqual([k.proto, k.flowId6, k.srcPort, k.dstPort], [17, 0xabcde, 53, 5353]);
  assert.deepEqual([...k.src6], [0x20010db8, 0, 0, 1]);
  assert.deepEqual([...k.dst6], [0x20010db8, 0, 0, 2]);
});
