#!/usr/bin/env bash
# Configure and build one CMake preset (default: `default`). Used by
# quickstart.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
