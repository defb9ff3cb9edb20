#!/usr/bin/env bash
# warmledger-bench against a running warmledgerd: every workload and mode
# runs to the end with every operation confirmed (the bench exits 1 and its
# JSON line says "ok":false otherwise), and bad flags are usage errors (exit
# 2). Small runs: this checks the measuring instrument, not the speed.
#
# Usage: bench_smoke_test.sh WARMLEDGERD WARMLEDGER_BENCH
set -euo pipefail

server_bin=$1
bench_bin=$2
source "$(dirname "$0")/bench_test_lib.sh"
dir=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

"$server_bin" --dev --data_dir="$dir/data" --listen=127.0.0.1:0 --port_file="$dir/port" \
  > "$dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  [ -s "$dir/port" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "warmledgerd exited: $(tail -5 "$dir/server.log")"
  sleep 0.1
done
[ -s "$dir/port" ] || fail "warmledgerd wrote no port file"
server="127.0.0.1:$(cat "$dir/port")"

# run WORKLOAD MODE EXPECTED_MODE_FIELD COUNT_FIELD ENTRIES [FLAGS...]
run() {
  local workload=$1 mode=$2 json_mode=$3 count=$4 entries=$5
  shift 5
  local out status=0
  out=$("$bench_bin" --server="$server" --server_pid="$server_pid" --workload="$workload" \
    --mode="$mode" --entries="$entries" "$@") || status=$?
  local last
  last=$(printf '%s\n' "$out" | tail -1)
  [ "$status" -eq 0 ] || fail "$workload $mode exited $status: $last"
  case "$last" in
    *"\"mode\":\"$json_mode\""*) ;;
    *) fail "$workload $mode: mode is not $json_mode: $last" ;;
  esac
  case "$last" in *'"ok":true'*) ;; *) fail "$workload $mode: not ok: $last" ;; esac
  case "$last" in *'"failed_ops":0'*) ;; *) fail "$workload $mode: failed operations: $last" ;; esac
  # The confirmed operations are exactly the ones asked for.
  if [ "$count" = "operations" ]; then
    local p r f
    p=$(printf '%s' "$last" | grep -oE '"purchases":[0-9]+' | cut -d: -f2)
    r=$(printf '%s' "$last" | grep -oE '"redemptions":[0-9]+' | cut -d: -f2)
    f=$(printf '%s' "$last" | grep -oE '"refunds":[0-9]+' | cut -d: -f2)
    [ $((p + r + f)) -eq "$entries" ] || fail "$workload $mode: $p + $r + $f != $entries: $last"
    [ "$p" -gt 0 ] && [ "$r" -gt 0 ] && [ "$f" -gt 0 ] || fail "$workload $mode: a kind is missing: $last"
  else
    case "$last" in
      *"\"$count\":$entries,"*) ;;
      *) fail "$workload $mode: $count is not $entries: $last" ;;
    esac
  fi
  echo "ok: $workload $mode"
}

run donations unary server-unary donations 400 --callers=16 --connections=2
run donations batch server-batch donations 900 --batch=100 --callers=3
run checkout unary server-checkout-unary operations 400 --callers=8
run checkout batch server-checkout-batch operations 900 --batch=100
run health unary server-health-unary checks 400 --callers=16 --connections=1

# Calls that miss their deadline are failures, counted by code: a batch of
# 1,000 durable writes cannot finish within 1 ms.
missed() {
  local workload=$1 out status=0
  out=$("$bench_bin" --server="$server" --workload="$workload" --mode=batch --entries=2000 \
    --callers=2 --deadline_ms=1) || status=$?
  local last
  last=$(printf '%s\n' "$out" | tail -1)
  [ "$status" -eq 1 ] || fail "$workload with missed deadlines exited $status: $last"
  case "$last" in *'"ok":false'*) ;; *) fail "$workload: missed deadlines but ok: $last" ;; esac
  case "$last" in
    *'"errors_by_code":"DEADLINE_EXCEEDED=2000"'*) ;;
    *) fail "$workload: missed deadlines not counted by code: $last" ;;
  esac
  echo "ok: $workload missed deadlines counted"
}
missed donations
missed checkout

# Usage errors: exit 2, nothing run.
usage --server="$server" --workload=health --mode=batch
usage --server="$server" --mode=unary --callers=2 --connections=3
usage --server="$server" --connections=0
usage --server="$server" --workload=gossip
echo "bench smoke test passed"
