#!/usr/bin/env bash
# warmledger-bench's in-process mode: the mix runs to the end with every
# write and trace confirmed (the bench exits 1 and its JSON line says
# "ok":false otherwise) with one submitter, batches in flight and several
# submitting threads; its last line carries the fields docs/performance.md
# quotes; a ledger it keeps passes warmledger-audit; bad flags are usage
# errors (exit 2). Small runs: this checks the measuring instrument, not the
# speed.
#
# Usage: bench_inprocess_test.sh WARMLEDGER_BENCH WARMLEDGER_AUDIT
set -euo pipefail

bench_bin=$1
audit_bin=$2
source "$(dirname "$0")/bench_test_lib.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# expect LAST_LINE PATTERN WHAT
expect() {
  case "$1" in
    *$2*) ;;
    *) fail "$3: expected $2 in: $1" ;;
  esac
}

# run NAME OPERATIONS [FLAGS...]: the bench must exit 0 with every
# operation confirmed; prints its last line.
run() {
  local name=$1 operations=$2
  shift 2
  local out status=0 last
  rm -rf "$dir/$name"
  out=$("$bench_bin" --entries="$operations" --data_dir="$dir/$name" "$@" 2>&1) || status=$?
  last=$(printf '%s\n' "$out" | tail -1)
  [ "$status" -eq 0 ] || fail "$name exited $status: $(printf '%s\n' "$out" | tail -5)"
  expect "$last" '"mode":"in-process"' "$name"
  expect "$last" "\"operations\":$operations," "$name"
  expect "$last" '"failed_ops":0,' "$name"
  expect "$last" '"ok":true' "$name"
  case "$last" in
    *'"trace_ops":0,'*) fail "$name: no traces ran: $last" ;;
  esac
  for field in ops_per_s raw_rocksdb_appends_per_s limit_ratio p50_batch_ms p99_batch_ms \
               peak_rss_mib entries; do
    expect "$last" "\"$field\":" "$name"
  done
  printf '%s\n' "$last"
}

last=$(run one 3000 --batch=100 --no_raw)
expect "$last" '"threads":1,"inflight":1,' one
expect "$last" '"limit_ratio":null' one
echo "ok: one submitter"

# Traces run between batches still in flight: each must wait for exactly
# what it shows, and every one must balance.
last=$(run inflight 6000 --batch=100 --inflight=4 --no_raw)
expect "$last" '"inflight":4,' inflight
echo "ok: four batches in flight"

last=$(run threads 6000 --batch=100 --threads=3 --inflight=2 --no_raw)
expect "$last" '"threads":3,"inflight":2,' threads
echo "ok: three submitting threads"

last=$(run single 300 --batch=1 --no_raw)
expect "$last" '"batch":1,' single
echo "ok: batches of one"

# With the raw RocksDB limit measured, and the ledger kept: the auditor
# re-verifies what the benchmark wrote.
last=$(run kept 2000 --batch=100 --keep)
case "$last" in
  *'"limit_ratio":null'*) fail "kept: no limit_ratio with the raw limit measured: $last" ;;
esac
"$audit_bin" --data_dir="$dir/kept/ledger" > "$dir/audit.out" 2>&1 ||
  fail "warmledger-audit of the kept ledger: $(tail -5 "$dir/audit.out")"
echo "ok: the kept ledger passes warmledger-audit"

# Usage errors: exit 2, nothing run and no temporary folder left behind.
mkdir "$dir/tmp"
export TMPDIR="$dir/tmp"
usage --batch=0
usage --batch=8193
usage --inflight=9
usage --threads=65
usage --threads=8 --batch=8192 --inflight=2
usage --data_dir="$dir/kept"
usage --entries=lots
leftover=$(ls -A "$dir/tmp")
[ -z "$leftover" ] || fail "usage errors left folders behind: $leftover"
echo "ok: usage errors leave no folder behind"
echo "bench in-process test passed"
