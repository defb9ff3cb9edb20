#!/usr/bin/env bash
# Installs what is missing, builds, starts warmledgerd on an embedded RocksDB
# under ./data, loads the demo district on first start, prints what to try,
# and serves until Ctrl-C. A second run reuses the data.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh default

data=data/warmledger
listen=127.0.0.1:${WARMLEDGER_PORT:-7420}
mkdir -p "$data"
rm -f "$data/port"
build/bin/warmledgerd --dev --data_dir="$data" --listen="$listen" --port_file="$data/port" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" || true' INT TERM EXIT

for _ in $(seq 1 600); do
  [ -s "$data/port" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "warmledgerd did not start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$data/port" ] || { echo "warmledgerd did not report its port" >&2; exit 1; }

if [ ! -f "$data/demo-loaded" ]; then
  echo "Loading the demo district (first start only)..."
  build/bin/warmledger-demo --server="$listen" ${WARMLEDGER_DEMO_SCALE:+--scale=$WARMLEDGER_DEMO_SCALE} \
    | tee "$data/demo-output.txt"
  touch "$data/demo-loaded"
else
  echo "Demo district already loaded; trace codes from the first run:"
  grep -E "trace" "$data/demo-output.txt" | tail -8 || true
fi

cat <<MSG

warmledgerd is serving $listen (development mode: no authentication).
Try, in another terminal:
  build/bin/warmledger --server=$listen funds
  build/bin/warmledger --server=$listen trace --code=<a trace code printed above>
  build/bin/warmledger --server=$listen tail
Check a gift yourself, trusting only the published verifier key ($data/keys/checkpoint.vkey):
  build/bin/warmledger --server=$listen receipt --code=<trace code> --wait_ms=3000 --out=gift.tlog-proof
  build/bin/warmledger verify-receipt gift.tlog-proof --key=@$data/keys/checkpoint.vkey
  build/bin/warmledger --server=$listen watch --once --state=watch.note --key=@$data/keys/checkpoint.vkey
Press Ctrl-C to stop.
MSG
wait "$pid"
