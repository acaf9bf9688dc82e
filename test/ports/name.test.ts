import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetmapError, type ErrnoName } from '../../src/errors.js';
import { parsePortSpec, formatPortSpec, type PortSpec } from '../../src/ports/name.js';
import { rng } from '../helpers/prng.js';

// ---- helpers ------------------------------------------------------------------------------------

type Opts = { strictNames?: boolean };

function parse(spec: string, opts?: Opts): PortSpec {
  return parsePortSpec(spec, opts);
}

/** Asserts that parsing throws a NetmapError with this code, message part and offset. */
function rejects(spec: string, code: ErrnoName, what: RegExp | string, offset?: number, opts?: Opts): NetmapError {
  let caught: unknown = null;
  try {
    parsePortSpec(spec, opts);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof NetmapError, `'${spec}' should be rejected, got ${String(caught)}`);
  assert.equal(caught.code, code, `'${spec}': ${caught.message}`);
  if (typeof what === 'string') assert.ok(caught.message.includes(what), `'${spec}': message '${caught.message}' lacks '${what}'`);
  else assert.match(caught.message, what, `'${spec}'`);
  if (offset !== undefined) assert.ok(caught.message.includes(` at offset ${offset} `), `'${spec}': '${caught.message}' not at offset ${offset}`);
  return caught;
}

/** Every field but `spec`. */
function withoutSpec(p: PortSpec): Omit<PortSpec, 'spec'> {
  const { spec: _spec, ...rest } = p;
  return rest;
}

function roundTrip(p: PortSpec, opts?: Opts): void {
  const text = formatPortSpec(p);
  const back = parsePortSpec(text, opts);
  assert.deepEqual(withoutSpec(back), withoutSpec(p), `round trip of '${p.spec}' via '${text}'`);
  assert.equal(formatPortSpec(back), text, `format of '${text}' is not a fixed point`);
}

const DEFAULTS = {
  switchName: null, pipe: null, mode: 'ALL_NIC', ringId: 0, exclusive: false, zcopyMonitor: false,
  monitorTx: false, monitorRx: false, rxRingsOnly: false, txRingsOnly: false, memId: 0, conf: {},
  share: null,
} as const;

function expectSpec(spec: string, fields: Partial<PortSpec>, opts?: Opts): PortSpec {
  const p = parse(spec, opts);
  const subsystem = spec.startsWith('vale') ? 'vale' : 'netmap';
  const expected = { spec, subsystem, ...DEFAULTS, ...fields };
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual((p as unknown as Record<string, unknown>)[k], v, `'${spec}': field ${k}`);
  }
  roundTrip(p, opts);
  return p;
}

// ---- the example table of netmap-core.md §2.5 ---------------------------------------------------

test('§2.5 table: plain names, ring selectors, flags', () => {
  expectSpec('netmap:eth0', { name: 'eth0', portName: 'eth0', parentName: 'eth0' });
  expectSpec('netmap:eth0-1', { name: 'eth0', mode: 'ONE_NIC', ringId: 1 });
  rejects('netmap:eth0-', 'EINVAL', "invalid port name 'netmap:eth0-': got '' while expecting a number at offset 12");
  expectSpec('netmap:eth0/x', { name: 'eth0', exclusive: true });
  expectSpec('netmap:eth0/z', { name: 'eth0', zcopyMonitor: true });
  expectSpec('netmap:eth0/r', { name: 'eth0', monitorRx: true });
  expectSpec('netmap:eth0/t', { name: 'eth0', monitorTx: true });
  expectSpec('netmap:eth0-2/Tx', { name: 'eth0', mode: 'ONE_NIC', ringId: 2, txRingsOnly: true, exclusive: true });
  expectSpec('netmap:eth0*', { name: 'eth0', mode: 'NIC_SW' });
  expectSpec('netmap:eth0^', { name: 'eth0', mode: 'SW' });
  expectSpec('netmap:eth0^3', { name: 'eth0', mode: 'ONE_SW', ringId: 3 });
  expectSpec('netmap:eth0^/r', { name: 'eth0', mode: 'SW', monitorRx: true });
  expectSpec('netmap:14', { name: '14', portName: '14', parentName: '14' });
});

test('§2.5 table: mem_id and options', () => {
  expectSpec('netmap:eth0@2', { name: 'eth0', memId: 2 });
  expectSpec('netmap:eth0@2/R', { name: 'eth0', memId: 2, rxRingsOnly: true });
  expectSpec('netmap:eth0@2/R@2', { name: 'eth0', memId: 2, rxRingsOnly: true });
  rejects('netmap:eth0@2/R@3', 'EINVAL', 'double setting of mem_id', 16);
  rejects('netmap:eth0@netmap:lo/R', 'EINVAL', "unknown option: 'netmap'", 12);
  rejects('netmap:eth0/R@xxx', 'EINVAL', "unknown option: 'xxx'", 14);
  rejects('netmap:eth0@', 'EINVAL', 'invalid empty mem_id', 12);
  expectSpec('netmap:eth0@conf:rings=4,slots=512', {
    name: 'eth0', conf: { txRings: 4, rxRings: 4, txSlots: 512, rxSlots: 512 },
  });
  expectSpec('vale1:a@share=netmap:eth0', {
    name: 'vale1:a', switchName: 'vale1', portName: 'a', parentName: 'vale1:a', share: 'netmap:eth0',
  });
  // interfaces: the backend of the NIC rings, a word
  const b = expectSpec('netmap:eth0@conf:backend=xdp,rings=2', { name: 'eth0', conf: { backend: 'xdp', txRings: 2, rxRings: 2 } });
  assert.equal(formatPortSpec(b), 'netmap:eth0@conf:rings=2,backend=xdp');
  expectSpec('netmap:eth0@conf:backend=packet', { name: 'eth0', conf: { backend: 'packet' } });
  rejects('netmap:eth0@conf:backend=afxdp', 'EINVAL', "key 'backend' must be xdp or packet, not 'afxdp'", 25);
  rejects('netmap:eth0@conf:backend=xdp,backend=packet', 'EINVAL', "duplicate key 'backend'", 29);
});

test('§2.5 table: bad prefixes and empty names', () => {
  rejects('netmap:', 'EINVAL', 'invalid empty port name', 7);
  rejects('netmap:^', 'EINVAL', 'invalid empty port name', 7);
  rejects('netmap:{', 'EINVAL', 'invalid empty pipe name', 8);
  rejects('netmap:pipe{1}2', 'EINVAL', "invalid pipe name '1}2'", 13);
  rejects('eth0', 'EINVAL', 'prefix unknown or missing', 0);
  rejects('netmapXXX:eth0', 'EINVAL', "no identifier allowed between 'netmap' and ':'", 6);
  rejects('', 'EINVAL', 'prefix unknown or missing', 0);
});

test('§2.5 table: VALE ports', () => {
  expectSpec('vale0:0', { name: 'vale0:0', switchName: 'vale0', portName: '0', parentName: 'vale0:0' });
  expectSpec('vale:0', { name: 'vale:0', switchName: 'vale', portName: '0', parentName: 'vale:0' });
  expectSpec('valeXXX:YYY', { name: 'valeXXX:YYY', switchName: 'valeXXX', portName: 'YYY', parentName: 'valeXXX:YYY' });
  expectSpec('valeXXX:YYY-4', { name: 'valeXXX:YYY', switchName: 'valeXXX', portName: 'YYY', parentName: 'valeXXX:YYY', mode: 'ONE_NIC', ringId: 4 });
  rejects('vale0:0@opt', 'EINVAL', "unknown option: 'opt'", 8);
  rejects('vale0:0/Tx@opt', 'EINVAL', "unknown option: 'opt'", 11);
  rejects('vale0:0-3@opt', 'EINVAL', "unknown option: 'opt'", 10);
});

test('§2.5 table: pipes', () => {
  expectSpec('netmap:pipe{0', { name: 'pipe{0', portName: 'pipe', parentName: 'pipe', pipe: { role: 'master', id: '0' } });
  expectSpec('netmap:pipe{in', { name: 'pipe{in', portName: 'pipe', parentName: 'pipe', pipe: { role: 'master', id: 'in' } });
  expectSpec('netmap:pipe{in-7', { name: 'pipe{in', portName: 'pipe', parentName: 'pipe', pipe: { role: 'master', id: 'in' }, mode: 'ONE_NIC', ringId: 7 });
  expectSpec('vale0:0{0', { name: 'vale0:0{0', switchName: 'vale0', portName: '0', parentName: 'vale0:0', pipe: { role: 'master', id: '0' } });
  expectSpec('netmap:eth0}3', { name: 'eth0}3', portName: 'eth0', parentName: 'eth0', pipe: { role: 'slave', id: '3' } });
});

test('§2.5 strict/relaxed note: strict by default, relaxed on request', () => {
  // ctrl-api-test encodes the strict behaviour: both EINVAL
  rejects('netmap:vale0:0', 'EINVAL', "invalid character ':' in port name", 12);
  rejects('netmap:eth0&', 'EINVAL', "invalid character '&' in port name", 11);
  // current libnetmap (relaxed) accepts them
  const relaxed = { strictNames: false };
  expectSpec('netmap:vale0:0', { name: 'vale0:0', portName: 'vale0:0', parentName: 'vale0:0' }, relaxed);
  expectSpec('netmap:eth0&', { name: 'eth0&', portName: 'eth0&', parentName: 'eth0&' }, relaxed);
  expectSpec('vale0:a:b=c,d', { name: 'vale0:a:b=c,d', switchName: 'vale0', portName: 'a:b=c,d', parentName: 'vale0:a:b=c,d' }, relaxed);
  expectSpec('netmap:\u00e9th0-1', { name: '\u00e9th0', portName: '\u00e9th0', parentName: '\u00e9th0', mode: 'ONE_NIC', ringId: 1 }, relaxed);
  // '.' is allowed even in strict mode, for VLAN interfaces
  expectSpec('netmap:em0.123', { name: 'em0.123', portName: 'em0.123', parentName: 'em0.123' });
  expectSpec('vale0:a.b', { name: 'vale0:a.b', switchName: 'vale0', portName: 'a.b', parentName: 'vale0:a.b' });
  // validated in both modes
  for (const opts of [undefined, relaxed]) {
    rejects('netmap:..', 'EINVAL', "invalid port name '..'", 7, opts);
    rejects('vale0:.', 'EINVAL', "invalid port name '.'", 6, opts);
    rejects('netmap:a\u0000b', 'EINVAL', 'invalid character U+0000', 8, opts);
    rejects('netmap:a\tb', 'EINVAL', 'invalid character U+0009', 8, opts);
    rejects('netmap:a\ud800', 'EINVAL', 'invalid character U+D800', 8, opts);
    rejects('vale0.1:a', 'EINVAL', "invalid bridge name 'vale0.1': character '.' not allowed", 5, opts);
    rejects('vale/..:a', 'EINVAL', 'invalid bridge name', 4, opts);
    rejects('netmap:p{a.b', 'EINVAL', "invalid pipe name 'a.b'", 10, opts);
  }
  // a paired surrogate is a real character in relaxed mode, 4 UTF-8 bytes
  expectSpec('netmap:a\ud83d\ude00', { name: 'a\ud83d\ude00', portName: 'a\ud83d\ude00', parentName: 'a\ud83d\ude00' }, relaxed);
  rejects('netmap:a\ud83d\ude00', 'EINVAL', 'invalid character U+D83D', 8);
});

// ---- every error kind ---------------------------------------------------------------------------

test('errors: prefix, switch and name', () => {
  rejects('netmap', 'EINVAL', "missing ':' after 'netmap'", 6);
  rejects('vale0', 'EINVAL', "missing ':' in vale name", 5);
  rejects('vale0/x', 'EINVAL', "missing ':' in vale name", 7);
  rejects('vale0-1:a', 'EINVAL', "invalid bridge name 'vale0-1': character '-' not allowed", 5);
  rejects('netmap@1:a', 'EINVAL', "no identifier allowed between 'netmap' and ':'", 6);
  rejects('vale0:', 'EINVAL', 'invalid empty port name', 6);
  rejects('vale0:-1', 'EINVAL', 'invalid empty port name', 6);
  rejects('vale0:{a', 'EINVAL', 'invalid empty port name', 6);
  rejects('vale0:a}', 'EINVAL', 'invalid empty pipe name', 8);
  rejects('netmap:a{-1', 'EINVAL', 'invalid empty pipe name', 9);
  rejects('netmap:a{b{c', 'EINVAL', "invalid pipe name 'b{c'", 10);
  rejects('netmap:a}b}c', 'EINVAL', "invalid pipe name 'b}c'", 10);
  rejects('NETMAP:eth0', 'EINVAL', 'prefix unknown or missing', 0);
  rejects(' netmap:eth0', 'EINVAL', 'prefix unknown or missing', 0);
});

test('errors: length limits', () => {
  expectSpec('netmap:' + 'a'.repeat(15), { name: 'a'.repeat(15), portName: 'a'.repeat(15), parentName: 'a'.repeat(15) });
  rejects('netmap:' + 'a'.repeat(16), 'EINVAL', 'interface name', 7);
  rejects('netmap:' + 'a'.repeat(16), 'EINVAL', '16 bytes, max 15');
  // a pipe suffix lifts the IFNAMSIZ rule, the whole name stays < 64
  const parent = 'p'.repeat(40);
  expectSpec(`netmap:${parent}{${'i'.repeat(22)}`, { name: `${parent}{${'i'.repeat(22)}`, portName: parent, parentName: parent, pipe: { role: 'master', id: 'i'.repeat(22) } });
  rejects(`netmap:${parent}{${'i'.repeat(23)}`, 'EINVAL', 'too long (64 bytes, max 63)', 7);
  // UTF-8 bytes count in relaxed mode: 8 x 2-byte characters = 16 bytes
  rejects('netmap:' + '\u00e9'.repeat(8), 'EINVAL', 'too long (16 bytes', 7, { strictNames: false });
  expectSpec('netmap:' + '\u00e9'.repeat(7), { name: '\u00e9'.repeat(7), portName: '\u00e9'.repeat(7), parentName: '\u00e9'.repeat(7) }, { strictNames: false });
  // VALE: switch name incl. 'vale' < 16, port part < 16, whole name < 64
  const sw = 'vale' + 'S'.repeat(11);
  expectSpec(`${sw}:${'P'.repeat(15)}`, { name: `${sw}:${'P'.repeat(15)}`, switchName: sw, portName: 'P'.repeat(15), parentName: `${sw}:${'P'.repeat(15)}` });
  rejects(`${sw}S:p`, 'EINVAL', 'bridge name', 0);
  rejects(`${sw}S:p`, 'EINVAL', '16 characters, max 15');
  rejects(`vale0:${'P'.repeat(16)}`, 'EINVAL', 'VALE port name', 6);
  expectSpec(`${sw}:${'P'.repeat(15)}{${'i'.repeat(30)}`, { name: `${sw}:${'P'.repeat(15)}{${'i'.repeat(30)}`, switchName: sw, portName: 'P'.repeat(15), parentName: `${sw}:${'P'.repeat(15)}`, pipe: { role: 'master', id: 'i'.repeat(30) } });
  rejects(`${sw}:${'P'.repeat(15)}{${'i'.repeat(32)}`, 'EINVAL', 'too long (64 bytes, max 63)', 0);
  // the whole spec is bounded
  rejects('netmap:eth0@conf:rings=' + '0'.repeat(1100) + '1', 'EINVAL', 'port spec too long', 1024);
  // long but legal digits (leading zeros) are fine under the bound
  expectSpec('netmap:eth0@conf:rings=' + '0'.repeat(500) + '4', { name: 'eth0', conf: { txRings: 4, rxRings: 4 } });
});

test('errors: ring selector', () => {
  rejects('netmap:eth0-5000', 'EINVAL', "'5000' out of range [0, 4095)", 12);
  rejects('netmap:eth0-4095', 'EINVAL', "'4095' out of range [0, 4095)", 12);
  expectSpec('netmap:eth0-4094', { name: 'eth0', mode: 'ONE_NIC', ringId: 4094 });
  expectSpec('netmap:eth0-0', { name: 'eth0', mode: 'ONE_NIC', ringId: 0 });
  expectSpec('netmap:eth0-007', { name: 'eth0', mode: 'ONE_NIC', ringId: 7 });
  rejects('netmap:eth0^4095', 'EINVAL', "'4095' out of range [0, 4095)", 12);
  rejects('netmap:eth0-99999999999999999999999', 'EINVAL', "'99999999999999999999999' out of range", 12);
  rejects('netmap:eth0-x', 'EINVAL', "got 'x' while expecting a number", 12);
  rejects('netmap:eth0--1', 'EINVAL', "got '-1' while expecting a number", 12);
  rejects('netmap:eth0-+1', 'EINVAL', "got '+1' while expecting a number", 12);
  // only one ring selector, and only right after the name
  rejects('netmap:eth0*-1', 'EINVAL', "unexpected character '-'", 12);
  rejects('netmap:eth0-1*', 'EINVAL', "unexpected character '*'", 13);
  rejects('netmap:eth0^*', 'EINVAL', "unexpected character '*'", 12);
  rejects('netmap:eth0**', 'EINVAL', "unexpected character '*'", 12);
  rejects('netmap:eth0^x', 'EINVAL', "unexpected character 'x'", 12);
  rejects('netmap:eth0@2*', 'EINVAL', "unexpected character '*'", 13);
  rejects('netmap:eth0@2x', 'EINVAL', "unexpected character 'x'", 13);
  rejects('netmap:eth0/x-1', 'EINVAL', "unrecognized flag '-'", 13);
  rejects('netmap:eth0-1-2', 'EINVAL', "unexpected character '-'", 13);
  // pipes have no host rings
  rejects('netmap:pipe{1^', 'EINVAL', 'has no host rings', 13);
  rejects('netmap:pipe{1*', 'EINVAL', "'*' not allowed", 13);
  rejects('vale0:p}x^2/r', 'EINVAL', 'has no host rings', 9);
});

test('errors: flags and mem_id', () => {
  rejects('netmap:eth0/q', 'EINVAL', "unrecognized flag 'q'", 12);
  rejects('netmap:eth0/xq', 'EINVAL', "unrecognized flag 'q'", 13);
  rejects('netmap:eth0/x/R', 'EINVAL', "unrecognized flag '/'", 13);
  rejects('netmap:eth0/', 'EINVAL', "'/' must be followed by at least one flag letter", 12);
  rejects('netmap:eth0/@2', 'EINVAL', "'/' must be followed by at least one flag letter", 12);
  rejects('netmap:eth0@0', 'EINVAL', 'invalid mem_id 0, must be > 0', 12);
  rejects('netmap:eth0@000', 'EINVAL', 'invalid mem_id 0, must be > 0', 12);
  rejects('netmap:eth0@65536', 'EINVAL', 'invalid mem_id 65536', 12);
  expectSpec('netmap:eth0@65535', { name: 'eth0', memId: 65535 });
  rejects('netmap:eth0@1@2', 'EINVAL', 'double setting of mem_id: 2, already set to 1', 14);
  rejects('netmap:eth0/x@', 'EINVAL', 'invalid empty mem_id', 14);
  // flags, mem_id alternate after the selector; repeats are harmless
  expectSpec('netmap:eth0/x@2/R', { name: 'eth0', exclusive: true, memId: 2, rxRingsOnly: true });
  expectSpec('netmap:eth0/xxRTRzrt', { name: 'eth0', exclusive: true, zcopyMonitor: true, monitorTx: true, monitorRx: true, rxRingsOnly: true, txRingsOnly: true });
  expectSpec('netmap:eth0@7@7/t@7', { name: 'eth0', memId: 7, monitorTx: true });
});

test('errors: options', () => {
  rejects('netmap:eth0@xxx', 'EINVAL', "unknown option: 'xxx'", 12);
  rejects('netmap:eth0@conf:rings=2@', 'EINVAL', 'invalid empty option', 25);
  rejects('netmap:eth0@@', 'EINVAL', 'invalid empty option', 12);
  rejects('netmap:eth0@conf:rings=2@3', 'EINVAL', "unknown option: '3'", 25);
  rejects('netmap:eth0@extmem:file=/tmp/x', 'EOPNOTSUPP', "option 'extmem' is not supported", 12);
  rejects('netmap:eth0@extmem=/tmp/x', 'EOPNOTSUPP', "option 'extmem' is not supported", 12);
  rejects('netmap:eth0@offset=64', 'EOPNOTSUPP', "option 'offset' is not supported", 12);
  rejects('netmap:eth0@conf', 'EINVAL', "syntax error: missing body after 'conf'", 16);
  rejects('netmap:eth0@share', 'EINVAL', "syntax error: missing body after 'share'", 17);
  rejects('netmap:eth0@conf=4', 'EINVAL', "syntax error: '=' not valid after 'conf'", 16);
  rejects('netmap:eth0@share=', 'EINVAL', "missing value for option 'share'", 18);
  rejects('netmap:eth0@conf:', 'EINVAL', "option 'conf': missing key=value list", 17);
  rejects('netmap:eth0@conf:xxx=1', 'EINVAL', "option 'conf': unknown key 'xxx'", 17);
  rejects('netmap:eth0@conf:rings=1,rings=2', 'EINVAL', "duplicate key 'rings'", 25);
  rejects('netmap:eth0@conf:host-rings=1,host_rings=2', 'EINVAL', "duplicate key 'host_rings'", 30);
  rejects('netmap:eth0@conf:rings', 'EINVAL', "missing '=value' for key 'rings'", 22);
  rejects('netmap:eth0@conf:rings=', 'EINVAL', "missing value for key 'rings'", 23);
  rejects('netmap:eth0@conf:rings=1,', 'EINVAL', "option 'conf': empty key", 25);
  rejects('netmap:eth0@conf:,rings=1', 'EINVAL', "option 'conf': empty key", 17);
  rejects('netmap:eth0@conf:rings=1,,slots=4', 'EINVAL', "option 'conf': empty key", 25);
  rejects('netmap:eth0@conf:rings=1@conf:slots=4', 'EINVAL', "duplicate option 'conf'", 25);
  rejects('netmap:eth0@share=vale0:a@share=vale0:b', 'EINVAL', "duplicate option 'share'", 26);
  rejects('netmap:eth0@share:file=x', 'EINVAL', "option 'share': unknown key 'file'", 18);
  rejects('netmap:eth0@share:port=vale0:a,port=vale0:b', 'EINVAL', "duplicate key 'port'", 31);
  // the share value is a port name with nothing after it
  rejects('netmap:eth0@share=eth1', 'EINVAL', "option 'share': prefix unknown or missing", 18);
  rejects('netmap:eth0@share=netmap:eth1-1', 'EINVAL', "option 'share': unexpected '-1' after port name", 29);
  rejects('netmap:eth0@share=vale0', 'EINVAL', "option 'share': missing ':' in vale name", 23);
  rejects('netmap:eth0@share=netmap:a&b', 'EINVAL', "option 'share': invalid character '&'", 26);
});

test('errors: conf numbers', () => {
  const cases: [string, number, number][] = [
    ['rings', 1, 256], ['host-rings', 1, 256], ['tx-rings', 1, 256], ['rx-rings', 1, 256],
    ['host-tx-rings', 1, 256], ['host-rx-rings', 1, 256], ['slots', 2, 16384], ['tx-slots', 2, 16384],
    ['rx-slots', 2, 16384], ['extra-bufs', 0, 1048576],
  ];
  for (const [key, lo, hi] of cases) {
    parse(`netmap:eth0@conf:${key}=${lo}`);
    parse(`netmap:eth0@conf:${key}=${hi}`);
    if (lo > 0) rejects(`netmap:eth0@conf:${key}=${lo - 1}`, 'EINVAL', `key '${key}' value ${lo - 1} out of range [${lo}, ${hi}]`, 18 + key.length);
    rejects(`netmap:eth0@conf:${key}=${hi + 1}`, 'EINVAL', `key '${key}' value ${hi + 1} out of range [${lo}, ${hi}]`, 18 + key.length);
    for (const v of ['-1', '+1', '0x10', '1.5', '1e3', ' 1', '4k', '\u0661']) {
      rejects(`netmap:eth0@conf:${key}=${v}`, 'EINVAL', `key '${key}' needs a decimal integer`, 18 + key.length);
    }
  }
  rejects('netmap:eth0@conf:rings=99999999999999999999999', 'EINVAL', "key 'rings' value 99999999999999999999999 out of range");
});

// ---- conf and share semantics -------------------------------------------------------------------

test('conf: generic keys fill both directions, specific keys override in any order', () => {
  const all = { txRings: 2, rxRings: 3, hostTxRings: 5, hostRxRings: 4, txSlots: 256, rxSlots: 1024, extraBufs: 100 };
  expectSpec('netmap:eth0@conf:tx-rings=2,rings=3,host-rings=4,host-tx-rings=5,slots=1024,tx-slots=256,extra-bufs=100', { name: 'eth0', conf: all });
  expectSpec('netmap:eth0@conf:rings=3,tx-rings=2,host-tx-rings=5,host-rings=4,tx-slots=256,slots=1024,extra-bufs=100', { name: 'eth0', conf: all });
  expectSpec('netmap:eth0@conf:tx_rings=2,rx_rings=3,host_tx_rings=5,host_rx_rings=4,tx_slots=256,rx_slots=1024,extra_bufs=100', { name: 'eth0', conf: all });
  expectSpec('netmap:eth0@conf:host-rx-rings=1', { name: 'eth0', conf: { hostRxRings: 1 } });
  expectSpec('netmap:eth0@conf:extra-bufs=0', { name: 'eth0', conf: { extraBufs: 0 } });
  const p = parse('netmap:eth0@conf:rings=4,tx-rings=8,rx-slots=64');
  assert.equal(formatPortSpec(p), 'netmap:eth0@conf:tx-rings=8,rx-rings=4,rx-slots=64');
  const q = parse('netmap:eth0@conf:tx-rings=4,rx-rings=4');
  assert.equal(formatPortSpec(q), 'netmap:eth0@conf:rings=4');
  // conf holds only the keys that were given
  assert.deepEqual(Object.keys(parse('netmap:eth0@conf:tx-rings=4').conf), ['txRings']);
});

test('share: both syntaxes, with and without mem_id, options in any order', () => {
  expectSpec('netmap:eth0@share:port=vale0:1', { name: 'eth0', share: 'vale0:1' });
  expectSpec('vale0:a@share=netmap:pipe{x', { name: 'vale0:a', switchName: 'vale0', portName: 'a', parentName: 'vale0:a', share: 'netmap:pipe{x' });
  expectSpec('vale0:a-1/x@3@share=vale:b@conf:rings=2', {
    name: 'vale0:a', switchName: 'vale0', portName: 'a', parentName: 'vale0:a', mode: 'ONE_NIC', ringId: 1,
    exclusive: true, memId: 3, share: 'vale:b', conf: { txRings: 2, rxRings: 2 },
  });
  // relaxed names in the share value follow the same option
  expectSpec('netmap:eth0@share=netmap:a,b', { name: 'eth0', share: 'netmap:a,b' }, { strictNames: false });
  rejects('netmap:eth0@share=netmap:a,b', 'EINVAL', "invalid character ','", 26);
});

// ---- formatter ----------------------------------------------------------------------------------

test('format: canonical text', () => {
  const canon: [string, string][] = [
    ['netmap:eth0', 'netmap:eth0'],
    ['netmap:eth0/Tx-', ''],
    ['netmap:eth0-2/Tx', 'netmap:eth0-2/xT'],
    ['netmap:eth0@2/R@2', 'netmap:eth0/R@2'],
    ['netmap:eth0/rt@conf:slots=8,rings=2@share=vale:x', 'netmap:eth0/tr@conf:rings=2,slots=8@share=vale:x'],
    ['netmap:eth0@share:port=vale:x', 'netmap:eth0@share=vale:x'],
    ['vale:x^7', 'vale:x^7'],
    ['netmap:eth0^', 'netmap:eth0^'],
    ['netmap:eth0*/z', 'netmap:eth0*/z'],
    ['netmap:p}q-001', 'netmap:p}q-1'],
  ];
  for (const [input, out] of canon) {
    if (out === '') {
      assert.throws(() => parse(input), NetmapError);
      continue;
    }
    assert.equal(formatPortSpec(parse(input)), out, input);
  }
});

test('format: inconsistent or foreign objects are EINVAL, never another exception', () => {
  const good = parse('vale0:a{b-1/x@2@conf:rings=2@share=netmap:eth0');
  const bads: unknown[] = [
    { ...good, name: 'vale0:zz' },
    { ...good, parentName: 'x' },
    { ...good, ringId: 5000 },
    { ...good, ringId: 1.5 },
    { ...good, ringId: -1 },
    { ...good, mode: 'ALL_NIC' },
    { ...good, mode: 'BOGUS' },
    { ...good, memId: 0.5 },
    { ...good, memId: Number.NaN },
    { ...good, switchName: null },
    { ...good, subsystem: 'netmap' },
    { ...good, portName: 'a@b' },
    { ...good, pipe: { role: 'master', id: 'x y' } },
    { ...good, pipe: null },
    { ...good, conf: { txRings: 0 } },
    { ...good, conf: null },
    { ...good, share: 'eth0' },
    { ...good, share: 'netmap:eth0@conf:rings=2' },
    null,
    42,
    'netmap:eth0',
    {},
  ];
  for (const b of bads) {
    assert.throws(() => formatPortSpec(b as PortSpec), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL', JSON.stringify(b));
  }
  assert.equal(formatPortSpec(good), 'vale0:a{b-1/x@2@conf:rings=2@share=netmap:eth0');
  // non-string input to the parser
  assert.throws(() => parsePortSpec(42 as unknown as string), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  assert.throws(() => parsePortSpec(undefined as unknown as string), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
});

test('messages escape hostile input and stay short', () => {
  const e = rejects('netmap:eth0/\u0007' + 'x'.repeat(500), 'EINVAL', "unrecognized flag U+0007");
  assert.ok(e.message.includes('\\x07'), e.message);
  assert.ok(e.message.length < 300, `message length ${e.message.length}`);
  assert.ok(!/[\u0000-\u001f]/.test(e.message));
});

// ---- round trip ---------------------------------------------------------------------------------

const ROUND_TRIP = [
  'netmap:eth0', 'netmap:eth0-1', 'netmap:eth0/x', 'netmap:eth0-2/Tx', 'netmap:eth0*', 'netmap:eth0^',
  'netmap:eth0^3', 'netmap:eth0@2/R@2', 'netmap:eth0^/r', 'netmap:14', 'vale0:0', 'vale:0', 'valeXXX:YYY-4',
  'netmap:pipe{0', 'netmap:pipe{in-7', 'vale0:0{0', 'netmap:eth0}3', 'netmap:eth0@conf:rings=4,slots=512',
  'vale1:a@share=netmap:eth0', 'netmap:em0.123/zrtRTx@9@share:port=vale_x:y}z@conf:host-tx-rings=3,extra-bufs=7',
  'vale_:_-0', 'netmap:a@conf:tx-slots=2,rx-slots=16384,rx-rings=256',
];

test('round trip: parse -> format -> parse is equal (all fields but spec)', () => {
  for (const s of ROUND_TRIP) roundTrip(parse(s));
  for (const s of ['netmap:vale0:0', 'netmap:a=b,c:d@share=netmap:x:y', 'vale0:\u00e9\ud83d\ude00{p-3']) {
    roundTrip(parse(s, { strictNames: false }), { strictNames: false });
  }
});

// ---- fuzz ---------------------------------------------------------------------------------------


const PIECES = [
  'netmap:', 'netmap', 'vale', 'vale0:', 'vale:', 'valeX_1:', ':', 'eth0', 'em0.123', 'p', 'pipe', '{', '}',
  'in', '0', '1', '7', '4094', '4095', '65535', '65536', '-', '*', '^', '/', '@', 'x', 'z', 't', 'r', 'R', 'T',
  'conf', 'conf:', 'share', 'share=', 'share:port=', 'extmem:file=', 'offset=', 'rings=', 'host-rings=',
  'slots=', 'tx-rings=', 'rx-rings=', 'host_tx_rings=', 'host-rx-rings=', 'tx-slots=', 'rx-slots=',
  'extra-bufs=', ',', '=', '.', '..', '&', ' ', '\u0000', '\t', '\u00e9', '\ud83d\ude00', '\ud800', '\udfff',
  '\uffff', '%', '\\', '"', "'", '9'.repeat(30), '@extmem:file=/x', '@offset=64', '@conf:rings=2',
];

function randomSpec(rnd: () => number): string {
  const kind = rnd();
  if (kind < 0.1) {
    // random code units, any value
    let s = '';
    const n = Math.floor(rnd() * 40);
    for (let i = 0; i < n; i++) s += String.fromCharCode(Math.floor(rnd() * 0x10000));
    return s;
  }
  if (kind < 0.2) {
    // random bytes decoded as latin1 with a valid prefix
    let s = rnd() < 0.5 ? 'netmap:' : 'vale0:';
    const n = Math.floor(rnd() * 30);
    for (let i = 0; i < n; i++) s += String.fromCharCode(Math.floor(rnd() * 256));
    return s;
  }
  if (kind < 0.6) {
    // grammar-shaped: a valid spec, then a few mutations
    const v = rnd() < 0.5
      ? ROUND_TRIP[Math.floor(rnd() * ROUND_TRIP.length)]!
      : genValid(rnd);
    const chars = [...v];
    const muts = Math.floor(rnd() * 3);
    for (let m = 0; m < muts; m++) {
      const at = Math.floor(rnd() * (chars.length + 1));
      const op = rnd();
      const piece = PIECES[Math.floor(rnd() * PIECES.length)]!;
      if (op < 0.4) chars.splice(at, 0, piece);
      else if (op < 0.7) chars.splice(at, 1);
      else chars.splice(at, 1, piece);
    }
    return chars.join('');
  }
  // concatenation of grammar pieces
  let s = '';
  const n = 1 + Math.floor(rnd() * 12);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(rnd() * PIECES.length)]!;
  return s;
}

/** A random spec from the grammar (valid most of the time). */
function genValid(rnd: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  let s = rnd() < 0.5 ? 'netmap:' + pick(['eth0', 'em0.1', 'lo', 'p', '14']) : pick(['vale', 'vale0', 'valeA_b']) + ':' + pick(['a', 'p1', 'x.y']);
  const isPipe = rnd() < 0.3;
  if (isPipe) s += pick(['{', '}']) + pick(['0', 'in', 'a_b']);
  const r = rnd();
  if (r < 0.2) s += '-' + Math.floor(rnd() * 4095);
  else if (r < 0.3 && !isPipe) s += '^';
  else if (r < 0.4 && !isPipe) s += '^' + Math.floor(rnd() * 10);
  else if (r < 0.5 && !isPipe) s += '*';
  if (rnd() < 0.4) {
    s += '/';
    const k = 1 + Math.floor(rnd() * 4);
    for (let i = 0; i < k; i++) s += pick([...'xztrRT']);
  }
  if (rnd() < 0.3) s += '@' + (1 + Math.floor(rnd() * 100));
  if (rnd() < 0.3) {
    const keys = ['rings', 'host-rings', 'slots', 'tx-rings', 'rx-rings', 'host-tx-rings', 'host-rx-rings', 'tx-slots', 'rx-slots', 'extra-bufs'];
    const chosen = keys.filter(() => rnd() < 0.3);
    if (chosen.length > 0) s += '@conf:' + chosen.map((k) => `${k}=${k.includes('slots') ? 2 + Math.floor(rnd() * 2000) : 1 + Math.floor(rnd() * 256)}`).join(',');
  }
  if (rnd() < 0.2) s += '@share=' + pick(['netmap:eth0', 'vale0:1', 'vale:x{y']);
  return s;
}

test('fuzz: 20,000 random strings give a PortSpec or NetmapError EINVAL/EOPNOTSUPP, quickly', () => {
  const rnd = rng(0x6e6d6170);
  const t0 = performance.now();
  let ok = 0;
  let einval = 0;
  let enotsup = 0;
  let worst = 0;
  for (let iter = 0; iter < 20000; iter++) {
    const s = randomSpec(rnd);
    const opts = { strictNames: (iter & 1) === 0 };
    const t = performance.now();
    let p: PortSpec | null = null;
    try {
      p = parsePortSpec(s, opts);
    } catch (e) {
      if (!(e instanceof NetmapError) || (e.code !== 'EINVAL' && e.code !== 'EOPNOTSUPP')) {
        assert.fail(`iteration ${iter}: ${JSON.stringify(s)} threw ${String(e)}`);
      }
      if (e.code === 'EINVAL') einval++;
      else enotsup++;
    }
    worst = Math.max(worst, performance.now() - t);
    if (p !== null) {
      ok++;
      // invariants of every accepted spec
      assert.equal(p.spec, s);
      assert.ok(p.name.length > 0 && Buffer.byteLength(p.name) < 64, JSON.stringify(s));
      assert.ok(p.ringId >= 0 && p.ringId < 4095 && Number.isInteger(p.ringId));
      assert.ok(p.mode === 'ONE_NIC' || p.mode === 'ONE_SW' || p.ringId === 0);
      assert.ok(p.memId >= 0 && p.memId <= 65535 && Number.isInteger(p.memId));
      assert.equal(p.parentName + (p.pipe ? (p.pipe.role === 'master' ? '{' : '}') + p.pipe.id : ''), p.name);
      assert.equal(p.subsystem === 'vale', p.switchName !== null);
      roundTrip(p, opts);
    }
  }
  const elapsed = performance.now() - t0;
  console.log(`fuzz: ${ok} parsed, ${einval} EINVAL, ${enotsup} EOPNOTSUPP in ${elapsed.toFixed(0)} ms (worst single parse ${worst.toFixed(2)} ms)`);
  assert.ok(ok > 2000, `too few valid specs generated (${ok}): the fuzz would not exercise the round trip`);
  assert.ok(einval > 2000, `too few invalid specs generated (${einval})`);
  assert.ok(enotsup > 20, `too few EOPNOTSUPP specs generated (${enotsup})`);
  assert.ok(elapsed < 5000, `fuzz took ${elapsed} ms`);
  assert.ok(worst < 100, `a single parse took ${worst} ms`);
});

test('fuzz: very long hostile inputs stay bounded', () => {
  const big = [
    'netmap:' + 'a'.repeat(1_000_000),
    'vale' + '0'.repeat(1_000_000) + ':a',
    'netmap:a@' + '@'.repeat(100_000),
    'netmap:a' + '/x'.repeat(100_000),
    'netmap:a@conf:' + 'rings=1,'.repeat(100_000),
  ];
  for (const s of big) {
    const t = performance.now();
    assert.throws(() => parsePortSpec(s), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
    assert.ok(performance.now() - t < 50, `slow on a ${s.length}-character input`);
  }
});
