#!/usr/bin/env bash
# GET latency and throughput at a raft-kv follower that serves reads itself (--follower-reads on,
# the default: it asks the leader for a read index and answers from its own store) against one
# that forwards them to the leader (--follower-reads off), with the leader's own figures beside
# them. 3 nodes on loopback, fsync on; redis-benchmark GETs of 256-byte values at 1, 16 and 64
# clients (no pipelining). Each mode gets a fresh cluster; prints ops/s, p50 and p99 (ms).
#
#   benches/follower-reads.sh            # about a minute
#   SCALE=0.2 benches/follower-reads.sh  # fewer requests per run
#
# Needs Debian's redis-tools (apt-get install redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/wait-leader.sh
. benches/wait-leader.sh

for tool in redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install redis-tools" >&2; exit 1; }
done
cargo build --release -q -p raft-mio --bin raft-kv

scale="${SCALE:-1}"
tmp="$(mktemp -d)"
pids=()
stop_cluster() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
trap 'stop_cluster; rm -rf "$tmp"' EXIT

# Starts a 3-node cluster with --follower-reads $1 and sets $leader to the leading node.
start_cluster() {
  local mode="$1" peers=1=127.0.0.1:17101,2=127.0.0.1:17102,3=127.0.0.1:17103
  rm -rf "$tmp/$mode"
  for i in 1 2 3; do
    target/release/raft-kv serve --id "$i" --peers "$peers" --client "127.0.0.1:1650$i" \
      --data "$tmp/$mode/node-$i" --follower-reads "$mode" --log-level warn \
      2>"$tmp/$mode-node-$i.log" &
    pids+=($!)
  done
  wait_leader 1650
  # Something to read: the keys redis-benchmark draws from (-r 1000).
  redis-benchmark -p "1650$leader" -t set -n 2000 -r 1000 -d 256 -c 16 -q >/dev/null
}

# One redis-benchmark GET run: port, clients, requests; prints "rps p50 p99".
bench() {
  redis-benchmark -p "$1" -t get -c "$2" -n "$3" -d 256 -r 1000 --csv 2>/dev/null |
    awk -F'","' 'NR==2 { gsub(/"/, "", $0); split($0, f, ","); printf "%s %s %s\n", f[2], f[5], f[7] }'
}

printf 'machine: %s, %s cores; raft-kv: 3 nodes on loopback, fsync on; GET of 256-byte values\n' \
  "$(uname -srm)" "$(nproc)"
printf '%-18s %-7s | %10s %8s %8s\n' "at" clients "GET/s" p50 p99
for mode in on off; do
  start_cluster "$mode"
  follower=$(( leader % 3 + 1 ))
  for c in 1 16 64; do
    n=$(awk -v c="$c" -v s="$scale" 'BEGIN { n = (c == 1 ? 5000 : 50000) * s; print int(n < 1000 ? 1000 : n) }')
    if [ "$mode" = on ]; then
      read -r rps p50 p99 < <(bench "1650$leader" "$c" "$n")
      printf '%-18s %-7s | %10s %8s %8s\n' "leader" "$c" "$rps" "$p50" "$p99"
    fi
    read -r rps p50 p99 < <(bench "1650$follower" "$c" "$n")
    label="follower, $([ "$mode" = on ] && echo serves || echo forwards)"
    printf '%-18s %-7s | %10s %8s %8s\n' "$label" "$c" "$rps" "$p50" "$p99"
  done
  stop_cluster
done
