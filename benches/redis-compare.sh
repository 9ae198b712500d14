#!/usr/bin/env bash
# raft-kv (3 nodes on loopback, fsync on) against redis-server (appendonly yes, appendfsync
# always), with redis-benchmark: SET and GET of 256-byte values at 1, 16 and 64 clients, with and
# without -P 16, one after the other in the same sitting. Prints ops/s, p50 and p99 of each,
# and the ratio raft-kv / redis-server.
#
#   benches/redis-compare.sh            # the whole table (a few minutes)
#   SCALE=0.2 benches/redis-compare.sh  # fewer requests per run
#   TARGET=follower ...                 # send raft-kv's load to a follower (it forwards)
#
# Needs Debian's redis-tools and redis-server (apt-get install redis-tools redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/wait-leader.sh
. benches/wait-leader.sh

for tool in redis-benchmark redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install redis-tools redis-server" >&2; exit 1; }
done
cargo build --release -q -p raft-mio --bin raft-kv

scale="${SCALE:-1}"
target="${TARGET:-leader}"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  redis-cli -p 6499 shutdown nosave >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

peers=1=127.0.0.1:17001,2=127.0.0.1:17002,3=127.0.0.1:17003
for i in 1 2 3; do
  target/release/raft-kv serve --id "$i" --peers "$peers" --client "127.0.0.1:1640$i" \
    --data "$tmp/node-$i" --log-level warn 2>"$tmp/node-$i.log" &
  pids+=($!)
done
wait_leader 1640
port=$((16400 + leader))
if [ "$target" = follower ]; then port=$((16400 + (leader % 3) + 1)); fi

mkdir -p "$tmp/redis"
redis-server --port 6499 --dir "$tmp/redis" --save "" --appendonly yes --appendfsync always \
  --daemonize yes --logfile "$tmp/redis.log"
sleep 0.3

# One redis-benchmark run: test, clients, pipeline, requests; prints "rps p50 p99".
bench() {
  local p="$1" test="$2" c="$3" pipe="$4" n="$5"
  redis-benchmark -p "$p" -t "$test" -c "$c" -P "$pipe" -n "$n" -d 256 -r 100000 --csv 2>/dev/null |
    awk -F'","' 'NR==2 { gsub(/"/, "", $0); split($0, f, ","); printf "%s %s %s\n", f[2], f[5], f[7] }'
}

printf 'machine: %s, %s cores; raft-kv: 3 nodes (load at the %s, node %s), fsync on; redis-server: appendfsync always\n' \
  "$(uname -srm)" "$(nproc)" "$target" "$leader"
printf '%-4s %-7s %-4s | %12s %8s %8s | %12s %8s %8s | %6s\n' test clients -P \
  "raft-kv/s" p50 p99 "redis/s" p50 p99 ratio
for test in set get; do
  for c in 1 16 64; do
    for pipe in 1 16; do
      n=$(awk -v c="$c" -v p="$pipe" -v s="$scale" 'BEGIN { n = (c == 1 ? 5000 : 50000) * (p == 16 ? 4 : 1) * s; print int(n < 1000 ? 1000 : n) }')
      read -r r_rps r_p50 r_p99 < <(bench "$port" "$test" "$c" "$pipe" "$n")
      read -r s_rps s_p50 s_p99 < <(bench 6499 "$test" "$c" "$pipe" "$n")
      ratio=$(awk -v a="$r_rps" -v b="$s_rps" 'BEGIN { printf "%.2f", a / b }')
      printf '%-4s %-7s %-4s | %12s %8s %8s | %12s %8s %8s | %6s\n' "$test" "$c" "$pipe" \
        "$r_rps" "$r_p50" "$r_p99" "$s_rps" "$s_p50" "$s_p99" "$ratio"
    done
  done
done
