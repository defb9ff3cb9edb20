#!/usr/bin/env bash
# Installs what is missing, builds, and runs warmledger's main job on an
# embedded RocksDB under ./data. Safe to run again: it reuses the data.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh default
exec build/bin/warmledger-ledger-demo --data_dir=data/ledger-demo "$@"
