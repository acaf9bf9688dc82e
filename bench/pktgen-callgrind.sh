#!/usr/bin/env bash
# Instructions a packet of each side of a netmap pipe, pkt-gen against bench/pipes.ts, counted by
# valgrind's callgrind (load-independent, unlike wall-clock Mpps on a shared machine).
#
# For each side (tx, rx) and each program (pkt-gen, pipes), the side runs under callgrind while its
# peer (the same program) runs normally. bench/lib/callgrind-window.js watches the pipe's packet
# counter in the shared memory: after --warm packets (start-up and JIT warm-up) it zeroes
# callgrind's counters, after --window more it dumps them, so
#   instr_per_pkt = Ir(window) / packets(window)
# for the whole process (every thread, the syncs, polls and sleeps included; start-up and exit
# excluded). The packets of the window are known to within the counter reads around each vgdb
# command (`uncertainty`, a few 10k of 10M). Under callgrind the measured side runs ~50x slower
# than its peer, so the peer keeps up: a measured sender finds its ring emptied, a measured
# receiver finds it full.
#
# Usage: bench/pktgen-callgrind.sh [--batch 512] [--warm 2000000] [--window 10000000]
#                                  [--sides tx,rx] [--progs pkt-gen,pipes] [--root DIR]
#   --root: the checkout whose dist/ is run (default: the one holding this script).
#   --pktgen-root: the checkout whose pkt-gen is measured (default: --root), e.g. an older commit
#     built in its own worktree, beside this checkout's pipes bench.
#   --keep DIR: keep each window's callgrind file (with --dump-instr=yes) and node's
#     --perf-basic-prof map of JIT code, as DIR/SIDE-PROG.cg and DIR/SIDE-PROG.map, to see where
#     the instructions go (node dist/bench/lib/callgrind-jit.js DIR/tx-pkt-gen.cg DIR/tx-pkt-gen.map).
# Prints JSON lines: {"bench":"pktgen-callgrind","side":"tx","prog":"pkt-gen","value":...} and one
# {"metric":"ratio",...} line per side when both programs ran.
# Needs valgrind (with vgdb) and a built tree (npx tsc -p .). Uses only netmap pipes, in its own
# NETMAP_TS_DIR under /dev/shm, removed at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# run from dist/bench/ (a copy tsc does not make) or from bench/: find the checkout either way
[ -d "$root/dist" ] || root=$(cd "$here/../.." && pwd)
batch=512 warm=2000000 window=10000000 sides=tx,rx progs=pkt-gen,pipes
node_flags=${NODE_FLAGS_CG-} keep="" cg_opts="" pgroot=""
while [ $# -gt 0 ]; do
  case "$1" in
    --batch) batch=$2; shift 2 ;;
    --warm) warm=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --sides) sides=$2; shift 2 ;;
    --progs) progs=$2; shift 2 ;;
    --root) root=$(cd "$2" && pwd); shift 2 ;;
    --pktgen-root) pgroot=$(cd "$2" && pwd); shift 2 ;;
    --keep) keep=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    *) echo "usage: $0 [--batch N] [--warm N] [--window N] [--sides tx,rx] [--progs pkt-gen,pipes] [--root DIR] [--pktgen-root DIR] [--keep DIR]" >&2; exit 64 ;;
  esac
done
for v in "$batch" "$warm" "$window"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --batch, --warm and --window are positive integers" >&2; exit 64; }
done
# The measured side optimizes on its own thread (V8 compiles in the background by default): under
# valgrind, which runs one thread at a time, a background compile could spill into the window;
# the code it makes is the same.
side_flags="--no-concurrent-recompilation --no-concurrent-osr"
[ -z "$keep" ] || { side_flags="$side_flags --perf-basic-prof"; cg_opts="--dump-instr=yes"; }
command -v valgrind >/dev/null || { echo '{"bench":"pktgen-callgrind","skipped":"valgrind is not installed"}'; exit 0; }
cli="${pgroot:-$root}/dist/src/tools/cli.js" pipes="$root/dist/bench/pipes.js" watch="$root/dist/bench/lib/callgrind-window.js"
[ -f "$cli" ] && [ -f "$pipes" ] && [ -f "$watch" ] || { echo "$0: build first (npx tsc -p . in $root)" >&2; exit 1; }

work=$(mktemp -d /dev/shm/nmts-bench-pgcg-XXXXXX)
export NETMAP_TS_DIR="$work"
peer_pid="" side_pid=""
cleanup() {
  for p in $side_pid $peer_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the command line of one side: prog side count pipe-name
side_cmd() {
  local prog=$1 side=$2 n=$3 name=$4 node_flags="$node_flags ${5-}"
  if [ "$prog" = pkt-gen ]; then
    if [ "$side" = tx ]; then echo node $node_flags "$cli" pkt-gen -f tx -l 60 -b "$batch" -i "netmap:$name{1" -n "$n" --json -T 0
    else echo node $node_flags "$cli" pkt-gen -f rx -b "$batch" -i "netmap:$name}1" -n "$n" --json -T 0; fi
  else
    if [ "$side" = tx ]; then echo node $node_flags "$pipes" --child "{\"role\":\"tx\",\"name\":\"$name\",\"batch\":$batch,\"count\":$n}"
    else echo node $node_flags "$pipes" --child "{\"role\":\"rx\",\"name\":\"$name\",\"batch\":$batch}"; fi
  fi
}

seq=0
# instructions a packet of `side` of `prog` over a window of packets, its peer running normally
measure() {
  local prog=$1 side=$2
  local name="cg$$x$seq" other out total=$((warm + window + window / 5 + 1000000))
  seq=$((seq + 1))
  other=$([ "$side" = tx ] && echo rx || echo tx)
  out="$work/cg.$seq.out"
  # shellcheck disable=SC2046
  timeout 900 $(side_cmd "$prog" "$other" "$total" "$name") >"$work/peer.log" 2>&1 &
  peer_pid=$!
  # shellcheck disable=SC2046
  timeout 900 valgrind --tool=callgrind $cg_opts --callgrind-out-file="$out" $(side_cmd "$prog" "$side" "$total" "$name" "$side_flags") >"$work/side.log" 2>&1 &
  side_pid=$!
  local vg=""
  for _ in $(seq 1 500); do vg=$(pgrep -P "$side_pid" || true); [ -n "$vg" ] && break; sleep 0.01; done
  local win
  if ! win=$(node "$watch" "$vg" "$name{1" "$warm" "$window" 800); then
    echo "$0: no window for $prog $side:" >&2; tail -5 "$work/side.log" >&2; return 1
  fi
  if ! wait "$side_pid"; then echo "$0: $prog $side failed:" >&2; tail -5 "$work/side.log" >&2; return 1; fi
  side_pid=""
  wait "$peer_pid" || { echo "$0: the $prog $other peer failed:" >&2; tail -5 "$work/peer.log" >&2; return 1; }
  peer_pid=""
  local moved
  moved=$(grep -o '"packets":[0-9]*' "$work/side.log" | tail -1 | cut -d: -f2)
  [ "${moved:-0}" = "$total" ] || { echo "$0: $prog $side reported ${moved:-nothing} packets, expected $total" >&2; return 1; }
  [ -f "$out.1" ] || { echo "$0: callgrind wrote no dump for the window" >&2; return 1; }
  local ir
  ir=$(awk '/^summary:/ { print $2; exit }' "$out.1")
  if [ -n "$keep" ]; then cp "$out.1" "$keep/$side-$prog.cg"; mv "/tmp/perf-$vg.map" "$keep/$side-$prog.map" 2>/dev/null || true; fi
  rm -f "$out" "$out.1"
  # Ir, the window's packets and their uncertainty
  echo >"$work/result" "$ir $(echo "$win" | grep -o '"packets":[0-9.]*' | cut -d: -f2) $(echo "$win" | grep -o '"uncertainty":[0-9.]*' | cut -d: -f2)"
}

declare -A result
IFS=, read -ra side_list <<<"$sides"
IFS=, read -ra prog_list <<<"$progs"
for side in "${side_list[@]}"; do
  for prog in "${prog_list[@]}"; do
    measure "$prog" "$side"
    read -r ir pk unc <"$work/result"
    per=$(awk -v a="$ir" -v p="$pk" 'BEGIN { printf "%.2f", a / p }')
    result[$side.$prog]=$per
    echo "{\"bench\":\"pktgen-callgrind\",\"side\":\"$side\",\"prog\":\"$prog\",\"batch\":$batch,\"pkt_len\":60,\"metric\":\"instr_per_pkt\",\"value\":$per,\"unit\":\"instructions\",\"ir\":$ir,\"packets\":$pk,\"packets_uncertainty\":$unc,\"warm\":$warm}"
  done
  if [ -n "${result[$side.pkt-gen]:-}" ] && [ -n "${result[$side.pipes]:-}" ]; then
    r=$(awk -v g="${result[$side.pkt-gen]}" -v p="${result[$side.pipes]}" 'BEGIN { printf "%.3f", g / p }')
    echo "{\"bench\":\"pktgen-callgrind\",\"side\":\"$side\",\"metric\":\"ratio\",\"value\":$r,\"unit\":\"pkt-gen / pipes instructions a packet\",\"pktgen\":${result[$side.pkt-gen]},\"pipes\":${result[$side.pipes]},\"batch\":$batch}"
  fi
done
