#!/usr/bin/env bash
# Set-up, build, then the main job: a property campaign against the embedded
# engine -- every gate on every attention target, on the GPU when one is
# visible, on the CPU otherwise -- after a short self-check of the oracle it
# is judged by. Failures print a gate report and a `attncheck repro` line.
# ATTNCHECK_SECONDS (default 120) sets the campaign's length; extra
# arguments go to `attncheck run` (e.g. --backend cpu, --target decode_gqa).
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
ci/build.sh default
build/default/attncheck selfcheck --cases "${ATTNCHECK_CASES:-500}"
exec build/default/attncheck run --seconds "${ATTNCHECK_SECONDS:-120}" "$@"
