#!/usr/bin/env python3
"""Self instruction counts of a callgrind run (--dump-instr=yes) per JIT function, using node's
--perf-basic-prof map (/tmp/perf-PID.map). usage: cgjit.py callgrind.out perf-PID.map [top]"""
import sys, bisect, collections, re

out, pmap = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 40
ents = []
for line in open(pmap):
    p = line.rstrip('\n').split(' ', 2)
    if len(p) < 3: continue
    ents.append((int(p[0], 16), int(p[1], 16), p[2]))
ents.sort()
starts = [e[0] for e in ents]

def name_of(a):
    i = bisect.bisect_right(starts, a) - 1
    if i >= 0 and a < ents[i][0] + ents[i][1]:
        return ents[i][2]
    return None

cost = collections.Counter()
addr_cost = collections.Counter()
fnames = {}
obnames = {}
cur_fn = '?'
cur_ob = '?'
last = 0
skip = False
pos_re = re.compile(r'^(0x[0-9a-fA-F]+|[+-][0-9]+|\*)\s+(?:\S+\s+)?(\d+)\s*$')
for line in open(out):
    if skip:
        # the line after calls=: position + inclusive cost of the call, not self cost
        skip = False
        m = pos_re.match(line)
        if m:
            t = m.group(1)
            if t.startswith('0x'): last = int(t, 16)
            elif t[0] in '+-': last += int(t)
        continue
    if line.startswith('cfn=') or line.startswith('cob='):
        m = re.match(r'\((\d+)\) (.+)', line[4:].strip())
        if m: (fnames if line[1] == 'f' else obnames)[m.group(1)] = m.group(2)
        continue
    if line.startswith('calls='):
        skip = True
        continue
    if line.startswith('fn='):
        v = line[3:].strip()
        m = re.match(r'\((\d+)\)(?: (.*))?', v)
        if m:
            if m.group(2): fnames[m.group(1)] = m.group(2)
            cur_fn = fnames.get(m.group(1), v)
        else: cur_fn = v
        continue
    if line.startswith('ob='):
        v = line[3:].strip()
        m = re.match(r'\((\d+)\)(?: (.*))?', v)
        if m:
            if m.group(2): obnames[m.group(1)] = m.group(2)
            cur_ob = obnames.get(m.group(1), v)
        else: cur_ob = v
        continue
    m = pos_re.match(line)
    if m:
        t = m.group(1)
        if t.startswith('0x'): last = int(t, 16)
        elif t[0] in '+-': last += int(t)
        c = int(m.group(2))
        n = name_of(last)
        if n is None:
            n = 'native:' + cur_ob.split('/')[-1] + ':' + cur_fn
        cost[n] += c
        addr_cost[last] += c

total = sum(cost.values())
print('total', total)
for n, c in cost.most_common(top):
    print(f'{c:14d} {100*c/total:6.2f}% {n[:150]}')

# with a 4th argument (a function name's substring): that function's hottest code offsets
if len(sys.argv) > 4:
    want = sys.argv[4]
    for st, size, nm in ents:
        if want in nm:
            rows = [(a - st, c) for a, c in addr_cost.items() if st <= a < st + size]
            if not rows: continue
            print(f'== {nm} at {st:#x}, {size} bytes')
            for off, c in sorted(rows):
                if c * 1000000 >= total: print(f'  +{off:#06x} {c}')
