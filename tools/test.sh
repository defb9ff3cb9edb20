#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite.
# Usage: tools/test.sh [preset]   (presets: default, asan, tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
tools/build.sh "$preset"
ctest --preset "$preset"
