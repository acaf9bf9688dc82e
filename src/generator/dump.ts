/** pkt-gen -X: a hex and ASCII dump of a received frame (debugging only, allocates freely). */
export function hexDump(u8: Uint8Array, at: number, len: number, header: string): string {
  const lines = [header];
  for (let o = 0; o < len; o += 16) {
    let hex = '', txt = '';
    for (let i = 0; i < 16; i++) {
      if (o + i < len) {
        const b = u8[at + o + i]!;
        hex += b.toString(16).padStart(2, '0') + ' ';
        txt += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
      } else hex += '   ';
    }
    lines.push(`${o.toString(16).padStart(4, '0')}: ${hex} ${txt}`);
  }
  return lines.join('\n');
}
