/**
 * Capture files: round trips, interoperability with tcpdump, tshark, capinfos and editcap
 * (micro/nanosecond pcap, pcapng with several interfaces, simple packet blocks, big-endian
 * files), streaming through a small buffer, and errors on corrupt or truncated files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildCorpus, writeCorpus, TS_BASE } from './corpus.js';
import { openCaptureFile, type CaptureFileReader } from '../../src/capture/reader.js';
import { PcapWriter, PcapngWriter } from '../../src/capture/writer.js';
import { NetmapError } from '../../src/errors.js';
import { mapFileReadOnly } from '../../src/native/index.js';

const have = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

interface Rec { sec: number; nsec: number; caplen: number; wirelen: number; hex: string; ifIndex: number }

function readAll(file: string, bufferSize?: number): { recs: Rec[]; reader: CaptureFileReader } {
  const reader = openCaptureFile(file, bufferSize === undefined ? {} : { bufferSize });
  const recs: Rec[] = [];
  try {
    reader.dispatch(0, (u8, o, c, w, s, ns, ifIndex) => {
      recs.push({ sec: s, nsec: ns, caplen: c, wirelen: w, hex: Buffer.from(u8.subarray(o, o + c)).toString('hex'), ifIndex });
    });
  } finally {
    reader.close();
  }
  return { recs, reader };
}

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'netmap-files-'));
}

/** (epoch, caplen, wirelen, interface) per packet as tshark reports them. */
function tsharkFields(file: string): string[] {
  const r = spawnSync('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.cap_len', '-e', 'frame.len', '-e', 'frame.interface_id'],
    { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.replace(/\n+$/, '').split('\n');
}

test('pcap round trip (microseconds and nanoseconds), small read buffer gives the same records', () => {
  const dir = tmpdir();
  try {
    const packets = buildCorpus(300, 3);
    for (const nano of [false, true]) {
      const file = path.join(dir, `rt-${nano}.pcap`);
      const w = new PcapWriter(file, { nanosecond: nano });
      packets.forEach((p, i) => w.write(p.frame, 0, p.caplen, p.frame.length, TS_BASE + i, 123456789));
      w.close();
      const { recs, reader } = readAll(file);
      assert.equal(reader.format, 'pcap');
      assert.equal(reader.nanosecond, nano);
      assert.equal(reader.linktype, 1);
      assert.equal(recs.length, packets.length);
      recs.forEach((r, i) => {
        assert.equal(r.sec, TS_BASE + i);
        assert.equal(r.nsec, nano ? 123456789 : 123456000);
        assert.equal(r.caplen, packets[i]!.caplen);
        assert.equal(r.wirelen, packets[i]!.frame.length);
        assert.equal(r.hex, Buffer.from(packets[i]!.frame.subarray(0, packets[i]!.caplen)).toString('hex'));
      });
      assert.deepEqual(readAll(file, 4096).recs, recs);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('snapshot length truncates written records; big-endian and modified pcap headers are read', () => {
  const dir = tmpdir();
  try {
    const file = path.join(dir, 'snap.pcap');
    const w = new PcapWriter(file, { snaplen: 20 });
    const pkt = new Uint8Array(100).map((_, i) => i);
    w.write(pkt, 0, 100, 100, 5, 1000);
    w.close();
    const { recs, reader } = readAll(file);
    assert.equal(reader.snaplen, 20);
    assert.equal(recs[0]!.caplen, 20);
    assert.equal(recs[0]!.wirelen, 100);
    // Big-endian nanosecond file, built by hand.
    const be = Buffer.alloc(24 + 16 + 4);
    be.writeUInt32BE(0xa1b23c4d, 0); be.writeUInt16BE(2, 4); be.writeUInt16BE(4, 6); be.writeUInt32BE(65535, 16); be.writeUInt32BE(1, 20);
    be.writeUInt32BE(7, 24); be.writeUInt32BE(999999999, 28); be.writeUInt32BE(4, 32); be.writeUInt32BE(60, 36);
    be.write('abcd', 40);
    fs.writeFileSync(path.join(dir, 'be.pcap'), be);
    const b = readAll(path.join(dir, 'be.pcap'));
    assert.equal(b.reader.littleEndian, false);
    assert.deepEqual(b.recs, [{ sec: 7, nsec: 999999999, caplen: 4, wirelen: 60, hex: '61626364', ifIndex: 0 }]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('pcapng: several interfaces, nanosecond resolution, simple packet blocks, round trip', () => {
  const dir = tmpdir();
  try {
    const file = path.join(dir, 'multi.pcapng');
    const w = new PcapngWriter(file, { interfaces: [{ name: 'vale0:a' }, { name: 'netmap:p{1', nanosecond: true, snaplen: 128 }] });
    const pkt = new Uint8Array(200).map((_, i) => (i * 3) & 0xff);
    w.write(pkt, 0, 60, 60, TS_BASE, 1500, 0);
    w.write(pkt, 0, 200, 200, TS_BASE + 1, 999999999, 1);
    w.write(pkt, 0, 61, 61, 4000000000, 5, 1);
    w.writeSimple(pkt, 0, 62, 62);
    w.close();
    const { recs, reader } = readAll(file);
    assert.equal(reader.format, 'pcapng');
    assert.equal(reader.interfaces.length, 2);
    assert.equal(reader.interfaces[0]!.name, 'vale0:a');
    assert.equal(reader.interfaces[1]!.unitsPerSec, 1e9);
    assert.deepEqual(recs.map((r) => [r.sec, r.nsec, r.caplen, r.wirelen, r.ifIndex]), [
      [TS_BASE, 1000, 60, 60, 0], [TS_BASE + 1, 999999999, 128, 200, 1], [4000000000, 5, 61, 61, 1], [0, 0, 62, 62, 0],
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('records copied from any source offset and length come out byte for byte (word copies at every alignment), pcap and pcapng', () => {
  const dir = tmpdir();
  try {
    // one source array, as a port's address space: offsets of every alignment (the writer copies
    // 8 or 4 bytes at a time when source and destination line up, else through DataViews or set())
    const src = new Uint8Array(new ArrayBuffer(8192)).map((_, i) => (i * 131 + (i >>> 8)) & 0xff);
    const f64 = new Float64Array(src.buffer);
    f64[100] = NaN; // bit patterns that are NaNs, signalling included, survive the 8-byte copies
    new Uint32Array(src.buffer).set([0x7ff00001, 0x7ff80000, 0xfff00001, 0xffffffff], 202);
    const lens = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 59, 60, 61, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 513, 1514, 2000];
    const cases: Array<[number, number]> = [];
    for (const len of lens) for (let o = 0; o < 16; o++) cases.push([o + (len * 8 % 512), len]);
    for (const [o, len] of [[800, 64], [808, 32], [800, 1514]] as const) cases.push([o, len]); // over the NaN words
    for (const kind of ['pcap', 'pcapng'] as const) {
      const file = path.join(dir, `align.${kind}`);
      const w = kind === 'pcap' ? new PcapWriter(file) : new PcapngWriter(file);
      cases.forEach(([o, len], i) => (w as PcapWriter).write(src, o, len, len + 3, TS_BASE + i, 1000 * i));
      w.close();
      const { recs } = readAll(file);
      assert.equal(recs.length, cases.length);
      recs.forEach((r, i) => {
        const [o, len] = cases[i]!;
        assert.equal(r.caplen, len);
        assert.equal(r.wirelen, len + 3);
        assert.equal(r.sec, TS_BASE + i);
        assert.equal(r.nsec, 1000 * i);
        assert.equal(r.hex, Buffer.from(src.subarray(o, o + len)).toString('hex'), `${kind}: offset ${o}, ${len} bytes`);
      });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('files we write are read identically by tcpdump, tshark and capinfos', (t) => {
  if (!have('tshark') || !have('capinfos') || !have('tcpdump')) {
    t.skip('tshark/capinfos/tcpdump not installed');
    return;
  }
  const dir = tmpdir();
  try {
    const packets = buildCorpus(200, 5);
    const usec = path.join(dir, 'usec.pcap');
    writeCorpus(usec, packets);
    const nsec = path.join(dir, 'nsec.pcap');
    const wn = new PcapWriter(nsec, { nanosecond: true });
    packets.forEach((p, i) => wn.write(p.frame, 0, p.caplen, p.frame.length, TS_BASE + i, 100000007 * (i % 9)));
    wn.close();
    const ng = path.join(dir, 'two.pcapng');
    const wg = new PcapngWriter(ng, { interfaces: [{ name: 'a' }, { name: 'b', nanosecond: true }] });
    packets.forEach((p, i) => wg.write(p.frame, 0, p.caplen, p.frame.length, TS_BASE + i, 123456789, i % 2));
    wg.close();

    for (const [file, type, digits] of [[usec, 'Wireshark/tcpdump/... - pcap', 6], [nsec, 'Wireshark/tcpdump/... - nanosecond pcap', 9], [ng, 'Wireshark/... - pcapng', 9]] as const) {
      const info = spawnSync('capinfos', [file], { encoding: 'utf8' }).stdout;
      assert.match(info, new RegExp(`File type:\\s+${type.replace(/[./]/g, '\\$&')}`), info);
      assert.match(info, new RegExp(`Number of packets:\\s+${packets.length}\\b`), info);
      const ours = readAll(file).recs;
      const theirs = tsharkFields(file);
      assert.equal(theirs.length, ours.length);
      ours.forEach((r, i) => {
        const [epoch, cap, len, ifid] = theirs[i]!.split('\t');
        const frac = String(r.nsec).padStart(9, '0').slice(0, digits);
        assert.equal(epoch, `${r.sec}.${frac.padEnd(9, '0')}`, `${file} packet ${i}`);
        assert.equal(Number(cap), r.caplen);
        assert.equal(Number(len), r.wirelen);
        assert.equal(Number(ifid ?? ''), r.ifIndex);
      });
    }
    const info = spawnSync('capinfos', [ng], { encoding: 'utf8' }).stdout;
    assert.match(info, /Number of interfaces in file: 2/);
    // tcpdump re-reads and re-writes our file to the same bytes.
    const again = path.join(dir, 'again.pcap');
    assert.equal(spawnSync('tcpdump', ['-r', usec, '-w', again]).status, 0);
    assert.ok(fs.readFileSync(again).equals(fs.readFileSync(usec)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('files tcpdump, tshark and editcap write (nanosecond pcap, pcapng) are read identically by us', (t) => {
  if (!have('tshark') || !have('editcap') || !have('tcpdump')) {
    t.skip('tshark/editcap/tcpdump not installed');
    return;
  }
  const dir = tmpdir();
  try {
    const packets = buildCorpus(200, 9);
    const src = path.join(dir, 'src.pcap');
    writeCorpus(src, packets);
    const reference = readAll(src).recs;
    const variants: Array<[string, string[]]> = [
      ['tcpdump.pcap', ['tcpdump', '-r', src, '-w', path.join(dir, 'tcpdump.pcap')]],
      ['nsec.pcap', ['editcap', '-F', 'nsecpcap', src, path.join(dir, 'nsec.pcap')]],
      ['editcap.pcapng', ['editcap', '-F', 'pcapng', src, path.join(dir, 'editcap.pcapng')]],
      ['tshark.pcapng', ['tshark', '-r', src, '-F', 'pcapng', '-w', path.join(dir, 'tshark.pcapng')]],
    ];
    for (const [name, cmd] of variants) {
      const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 60000 });
      assert.equal(r.status, 0, `${cmd.join(' ')}: ${r.stderr}`);
      const { recs, reader } = readAll(path.join(dir, name));
      assert.equal(reader.format, name.endsWith('pcapng') ? 'pcapng' : 'pcap', name);
      assert.deepEqual(recs.map((x) => ({ ...x, ifIndex: 0 })), reference, name);
      if (name === 'nsec.pcap') assert.equal(reader.nanosecond, true);
    }
    // Two interfaces merged by mergecap into one pcapng are told apart.
    if (have('mergecap')) {
      const b = path.join(dir, 'b.pcapng');
      const wb = new PcapngWriter(b, { interfaces: [{ name: 'other', linktype: 1 }] });
      wb.write(packets[0]!.frame, 0, 60, 60, TS_BASE + 1000, 0, 0);
      wb.close();
      const merged = path.join(dir, 'merged.pcapng');
      assert.equal(spawnSync('mergecap', ['-I', 'none', '-w', merged, path.join(dir, 'editcap.pcapng'), b]).status, 0);
      const m = readAll(merged);
      assert.equal(m.recs.length, 201);
      assert.ok(m.reader.interfaces.length >= 2);
      assert.equal(new Set(m.recs.map((x) => x.ifIndex)).size, 2);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt or truncated files: clear error naming the offset, earlier records delivered', () => {
  const dir = tmpdir();
  try {
    const packets = buildCorpus(50, 11);
    const good = path.join(dir, 'good.pcap');
    writeCorpus(good, packets);
    const bytes = fs.readFileSync(good);
    // Truncated inside the 10th record.
    let off = 24;
    for (let i = 0; i < 9; i++) off += 16 + packets[i]!.caplen;
    const cut = path.join(dir, 'cut.pcap');
    fs.writeFileSync(cut, bytes.subarray(0, off + 20));
    const rd = openCaptureFile(cut);
    let n = 0;
    assert.throws(() => rd.dispatch(0, () => { n++; }), (e: unknown) => e instanceof NetmapError && e.code === 'EIO' && e.message.includes(`offset ${off}`) && /truncated/.test(e.message));
    assert.equal(n, 9);
    rd.close();
    // A record claiming an absurd length.
    const bad = Buffer.from(bytes);
    bad.writeUInt32LE(0x7fffffff, off + 8);
    fs.writeFileSync(path.join(dir, 'bad.pcap'), bad);
    const rb = openCaptureFile(path.join(dir, 'bad.pcap'));
    n = 0;
    assert.throws(() => rb.dispatch(0, () => { n++; }), (e: unknown) => e instanceof NetmapError && e.message.includes(`offset ${off}`) && /captured bytes/.test(e.message));
    assert.equal(n, 9);
    rb.close();
    // Bad magic, empty file, short header, missing file.
    fs.writeFileSync(path.join(dir, 'magic.pcap'), Buffer.from('not a capture file at all'));
    assert.throws(() => openCaptureFile(path.join(dir, 'magic.pcap')), /offset 0: unknown file format/);
    fs.writeFileSync(path.join(dir, 'empty.pcap'), Buffer.alloc(0));
    assert.throws(() => openCaptureFile(path.join(dir, 'empty.pcap')), /empty/);
    fs.writeFileSync(path.join(dir, 'short.pcap'), bytes.subarray(0, 10));
    assert.throws(() => openCaptureFile(path.join(dir, 'short.pcap')), /header is truncated/);
    assert.throws(() => openCaptureFile(path.join(dir, 'missing.pcap')), (e: unknown) => e instanceof NetmapError && e.code === 'ENOENT');
    // pcapng with a damaged block length.
    const ng = path.join(dir, 'x.pcapng');
    const w = new PcapngWriter(ng);
    for (let i = 0; i < 5; i++) w.write(packets[i]!.frame, 0, packets[i]!.caplen, packets[i]!.frame.length, i, 0);
    w.close();
    const ngBytes = fs.readFileSync(ng);
    const shbLen = ngBytes.readUInt32LE(4);
    const idbLen = ngBytes.readUInt32LE(shbLen + 4);
    const epb0 = shbLen + idbLen;
    const epb1 = epb0 + ngBytes.readUInt32LE(epb0 + 4);
    const dmg = Buffer.from(ngBytes);
    dmg.writeUInt32LE(13, epb1 + 4);
    fs.writeFileSync(ng, dmg);
    const rn = openCaptureFile(ng);
    n = 0;
    assert.throws(() => rn.dispatch(0, () => { n++; }), (e: unknown) => e instanceof NetmapError && e.message.includes(`offset ${epb1}`));
    assert.equal(n, 1);
    rn.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('large files read through the sliding mapping give the same records as read(2), errors included', () => {
  const dir = tmpdir();
  try {
    const packets = buildCorpus(512, 13);
    const file = path.join(dir, 'large.pcap');
    const w = new PcapWriter(file);
    let n = 0;
    while (w.bytesWritten < 70 * 1024 * 1024) { // crosses the 64 MiB window
      const p = packets[n % packets.length]!;
      w.write(p.frame, 0, p.caplen, p.frame.length, TS_BASE + n, 0);
      n++;
    }
    w.close();
    const digest = (mmap: boolean, f = file): { count: number; sum: number; last: number; error: string } => {
      const rd = openCaptureFile(f, mmap ? { mapper: mapFileReadOnly } : { mmap: false });
      let count = 0, sum = 0, last = -1, error = '';
      try {
        rd.dispatch(0, (u8, o, c, _w, s) => { count++; sum = (sum + u8[o + (c >> 1)]! * count + c) % 1000000007; last = s; });
      } catch (e) {
        error = (e as Error).message;
      } finally {
        rd.close();
      }
      return { count, sum, last, error };
    };
    const mapped = digest(true), plain = digest(false);
    assert.equal(mapped.count, n);
    assert.deepEqual(mapped, plain);
    // The raw-copy path gives the same bytes from the mapping (runs) and from read(2) (blocks).
    const rawDigest = (mmap: boolean): { read: number; records: number; bytes: number; sum: number } => {
      const rd = openCaptureFile(file, mmap ? { mapper: mapFileReadOnly } : { mmap: false });
      let read = 0, records = 0, total = 0, sum = 0;
      try {
        for (let k; (k = rd.copyAccepted(0, (u8, o) => (u8[o + 12] === 8 ? 1 : 0), (u8, o, l, r) => {
          records += r;
          // every 61st byte of the output, whatever the cuts between calls
          for (let i = (61 - (total % 61)) % 61; i < l; i += 61) sum = (sum * 31 + u8[o + i]!) % 1000000007;
          total += l;
        })) > 0;) read += k;
      } finally {
        rd.close();
      }
      return { read, records, bytes: total, sum };
    };
    const rawMapped = rawDigest(true);
    assert.equal(rawMapped.read, n);
    assert.ok(rawMapped.records > 0 && rawMapped.records < n);
    assert.deepEqual(rawMapped, rawDigest(false));
    const cut = path.join(dir, 'cut.pcap');
    fs.writeFileSync(cut, fs.readFileSync(file).subarray(0, 66 * 1024 * 1024 + 7));
    const a = digest(true, cut), b = digest(false, cut);
    assert.match(a.error, /truncated capture file at offset \d+/);
    assert.deepEqual(a, b);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('copyAccepted hands over exactly the accepted records as raw bytes, any buffer size, limit, mapping, damage', () => {
  const dir = tmpdir();
  try {
    const packets = buildCorpus(400, 21);
    const file = path.join(dir, 'raw.pcap');
    const w = new PcapWriter(file);
    packets.forEach((p, i) => w.write(p.frame, 0, p.caplen, p.frame.length, TS_BASE + i, i * 1000));
    w.close();
    const bytes = fs.readFileSync(file);
    // The raw record boundaries, from the file itself.
    const bounds: Array<[number, number]> = [];
    for (let p = 24; p < bytes.length;) {
      const end = p + 16 + bytes.readUInt32LE(p + 8);
      bounds.push([p, end]);
      p = end;
    }
    assert.equal(bounds.length, packets.length);
    // Accepts runs and isolated records (by the wire length and one data byte), and rejects the rest.
    const filter = (u8: Uint8Array, o: number, caplen: number, wirelen: number): number =>
      (wirelen % 3 === 0 || (caplen > 20 && u8[o + 20]! % 5 < 2)) ? 65535 : 0;
    const ok = ([s]: [number, number]): boolean => filter(bytes, s + 16, bytes.readUInt32LE(s + 8), bytes.readUInt32LE(s + 12)) !== 0;
    const rawOf = (recs: Array<[number, number]>): Buffer => Buffer.concat(recs.filter(ok).map(([s, e]) => bytes.subarray(s, e)));
    const expected = rawOf(bounds);
    assert.ok(expected.length > 0 && expected.length < bytes.length - 24);
    const collect = (f: string, opts: Parameters<typeof openCaptureFile>[1], max: number): { out: Buffer; records: number; read: number; error: string } => {
      const rd = openCaptureFile(f, opts);
      const parts: Buffer[] = [];
      let records = 0, read = 0, error = '';
      try {
        for (let n; (n = rd.copyAccepted(max, filter, (u8, o, l, r) => { parts.push(Buffer.from(u8.subarray(o, o + l))); records += r; })) > 0;) {
          assert.ok(max <= 0 || n <= max);
          read += n;
        }
      } catch (e) {
        error = (e as Error).message;
      } finally {
        rd.close();
      }
      return { out: Buffer.concat(parts), records, read, error };
    };
    const nAccepted = bounds.filter(ok).length;
    for (const opts of [{}, { bufferSize: 4096 }, { bufferSize: 5001 }]) {
      for (const max of [0, 1, 7]) {
        const r = collect(file, opts, max);
        assert.equal(r.error, '');
        assert.equal(r.read, packets.length);
        assert.equal(r.records, nAccepted);
        assert.ok(r.out.equals(expected), `bytes differ (${JSON.stringify(opts)}, max ${max})`);
      }
    }
    // A file cut inside a record: the accepted records before it are handed over, then the error.
    const cutAt = bounds[300]![0] + 20;
    const cut = path.join(dir, 'cut.pcap');
    fs.writeFileSync(cut, bytes.subarray(0, cutAt));
    const before = rawOf(bounds.slice(0, 300));
    for (const opts of [{}, { bufferSize: 4096 }]) {
      const r = collect(cut, opts, 0);
      assert.match(r.error, /truncated capture file at offset \d+/);
      assert.ok(r.out.equals(before));
    }
    // A record with an impossible length: the same error as dispatch, after the earlier records.
    const bad = Buffer.from(bytes);
    bad.writeUInt32LE(0x7fffffff, bounds[200]![0] + 8);
    const badFile = path.join(dir, 'bad.pcap');
    fs.writeFileSync(badFile, bad);
    const viaDispatch = (() => { try { readAll(badFile); return ''; } catch (e) { return (e as Error).message; } })();
    assert.notEqual(viaDispatch, '');
    const rb = collect(badFile, { bufferSize: 4096 }, 0);
    assert.equal(rb.error, viaDispatch);
    assert.ok(rb.out.equals(rawOf(bounds.slice(0, 200))));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
