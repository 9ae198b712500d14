#!/usr/bin/env bash
# Instructions per entry, counted by callgrind, for the compare runner's workloads.
#
#   benches/callgrind.sh [--side ours|raft-rs|both] [--entries N] [WORKLOAD ...]
#
# Default: our side, 20,000 entries, the workloads "3 nodes 16 B batch 64", "3 nodes 16 B batch 1"
# and "sync". Only the timed runs are counted (callgrind's collection is toggled on inside
# `benches::workload::run*`); the runner's warm-up run of entries/10 is inside that toggle, so the
# count is divided by 1.1 * entries. Counts repeat to within a fraction of a percent, unlike wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

side=ours
entries=20000
workloads=()
while [ $# -gt 0 ]; do
  case "$1" in
    --side) side="$2"; shift 2 ;;
    --entries) entries="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) workloads+=("$1"); shift ;;
  esac
done
[ ${#workloads[@]} -gt 0 ] || workloads=("3 nodes 16 B batch 64" "3 nodes 16 B batch 1" "sync")
case "$side" in
  both) sides=(ours raft-rs) ;;
  ours|raft-rs) sides=("$side") ;;
  *) echo "--side: ours, raft-rs or both" >&2; exit 2 ;;
esac

command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
cargo build --release --locked -q -p benches --features raft-rs --bin compare
bin="${CARGO_TARGET_DIR:-target}/release/compare"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for w in "${workloads[@]}"; do
  for s in "${sides[@]}"; do
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" --toggle-collect='benches::workload::run*' \
      "$bin" --only "$s" --workload "$w" --entries "$entries" --reps 1 >/dev/null 2>"$out/log"
    ir=$(grep -m1 -E '^summary:' "$out/cg" | awk '{print $2}')
    awk -v ir="$ir" -v n="$entries" -v w="$w" -v s="$s" \
      'BEGIN { printf "callgrind %-24s %-8s %10.0f instructions/entry\n", w ":", s, ir / (1.1 * n) }'
  done
done
