# Helpers shared by the warmledger-bench tests; sourced after they set
# $bench_bin.

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# usage FLAGS...: the bench must refuse FLAGS as a usage error (exit 2).
usage() {
  local status=0
  "$bench_bin" "$@" > /dev/null 2>&1 || status=$?
  [ "$status" -eq 2 ] || fail "expected a usage error (2) for $*, got $status"
  echo "ok: usage error for $*"
}
