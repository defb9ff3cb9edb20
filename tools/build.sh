#!/usr/bin/env bash
# Configures and builds one CMake preset (default: "default") into build/ (or
# build-<preset>/ for other presets). Usage: tools/build.sh [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
tools/setup.sh
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/warmledger-ccache}"
# Paths relative to the checkout, so that every clone shares the cache.
export CCACHE_BASEDIR="$PWD"
# With -g the compiler records the build folder in the debug info; do not let
# that make every clone's cache entries different.
export CCACHE_NOHASHDIR=1
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j"$(nproc)"
