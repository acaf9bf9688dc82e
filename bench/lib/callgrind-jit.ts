/**
 * Where the instructions of a callgrind run went, per JavaScript function: callgrind names JIT
 * code only by address, and node's --perf-basic-prof map (/tmp/perf-PID.map: start, size, name)
 * names those addresses. bench/pktgen-callgrind.sh --keep DIR leaves both for each side.
 *
 *   node dist/bench/lib/callgrind-jit.js FILE.cg FILE.map [TOP] [FUNCTION]
 *
 * Prints the total and the TOP (40) functions by self cost (JIT code as `JS:*name` for optimized,
 * `JS:^name` for baseline code; native code as `native:OBJECT:function`); with FUNCTION (a
 * substring of a JIT name), also that function's code offsets with their counts, to set beside
 * its machine code (node --print-opt-code --print-opt-code-filter=NAME). The callgrind file must
 * come from --dump-instr=yes.
 */
import fs from 'node:fs';

const [cgFile, mapFile, topArg, want] = process.argv.slice(2);
if (cgFile === undefined || mapFile === undefined) {
  console.error('usage: node callgrind-jit.js FILE.cg FILE.map [TOP] [FUNCTION]');
  process.exit(64);
}
const top = Number(topArg ?? 40);

interface Entry { start: number; size: number; name: string }
const entries: Entry[] = [];
for (const line of fs.readFileSync(mapFile, 'latin1').split('\n')) {
  const a = line.indexOf(' '), b = line.indexOf(' ', a + 1);
  if (a < 0 || b < 0) continue;
  entries.push({ start: parseInt(line.slice(0, a), 16), size: parseInt(line.slice(a + 1, b), 16), name: line.slice(b + 1) });
}
entries.sort((x, y) => x.start - y.start);

function nameAt(addr: number): string | null {
  let lo = 0, hi = entries.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (entries[mid]!.start <= addr) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  if (found < 0) return null;
  const e = entries[found]!;
  return addr < e.start + e.size ? e.name : null;
}

const cost = new Map<string, number>();
const addrCost = new Map<number, number>();
const fnNames = new Map<string, string>(), obNames = new Map<string, string>();
let fn = '?', ob = '?', last = 0, skipNext = false;
// a cost line: instruction address (absolute, +/- relative, or * same), the line column, the count
const costLine = /^(0x[0-9a-fA-F]+|[+-]\d+|\*)\s+(?:\S+\s+)?(\d+)\s*$/;
const named = /^\((\d+)\)(?: (.*))?$/;

function position(t: string): void {
  if (t.startsWith('0x')) last = parseInt(t, 16);
  else if (t !== '*') last += Number(t);
}

function compressed(v: string, names: Map<string, string>): string {
  const m = named.exec(v);
  if (m === null) return v;
  if (m[2] !== undefined) names.set(m[1]!, m[2]);
  return names.get(m[1]!) ?? v;
}

for (const line of fs.readFileSync(cgFile, 'latin1').split('\n')) {
  if (skipNext) {
    // the line after calls=: the call's position and inclusive cost, not self cost
    skipNext = false;
    const m = costLine.exec(line);
    if (m !== null) position(m[1]!);
    continue;
  }
  if (line.startsWith('calls=')) { skipNext = true; continue; }
  if (line.startsWith('fn=')) { fn = compressed(line.slice(3).trim(), fnNames); continue; }
  if (line.startsWith('ob=')) { ob = compressed(line.slice(3).trim(), obNames); continue; }
  if (line.startsWith('cfn=')) { compressed(line.slice(4).trim(), fnNames); continue; }
  if (line.startsWith('cob=')) { compressed(line.slice(4).trim(), obNames); continue; }
  const m = costLine.exec(line);
  if (m === null) continue;
  position(m[1]!);
  const c = Number(m[2]);
  const name = nameAt(last) ?? `native:${ob.split('/').pop()}:${fn}`;
  cost.set(name, (cost.get(name) ?? 0) + c);
  addrCost.set(last, (addrCost.get(last) ?? 0) + c);
}

let total = 0;
for (const c of cost.values()) total += c;
console.log(`total ${total}`);
for (const [name, c] of [...cost.entries()].sort((x, y) => y[1] - x[1]).slice(0, top)) {
  console.log(`${String(c).padStart(14)} ${(100 * c / total).toFixed(2).padStart(6)}% ${name.slice(0, 150)}`);
}
if (want !== undefined) {
  for (const e of entries) {
    if (!e.name.includes(want)) continue;
    const rows = [...addrCost.entries()].filter(([a]) => a >= e.start && a < e.start + e.size).sort((x, y) => x[0] - y[0]);
    if (rows.length === 0) continue;
    console.log(`== ${e.name} at 0x${e.start.toString(16)}, ${e.size} bytes`);
    for (const [a, c] of rows) if (c * 1e6 >= total) console.log(`  +0x${(a - e.start).toString(16).padStart(4, '0')} ${c}`);
  }
}
