# Sourced by the benches' shell scripts. wait_leader PREFIX: waits (up to 10 s) until one of the
# raft-kv nodes on ports PREFIX1, PREFIX2 and PREFIX3 reports itself leader, and sets $leader to
# its number (1 to 3); exits the script if none does.
wait_leader() {
  leader=""
  for _ in $(seq 1 100); do
    for i in 1 2 3; do
      if redis-cli -p "$1$i" INFO raft 2>/dev/null | grep -q '^role:leader'; then leader=$i; fi
    done
    [ -n "$leader" ] && return 0
    sleep 0.1
  done
  echo "no leader" >&2
  exit 1
}
