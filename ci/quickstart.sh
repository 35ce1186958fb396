#!/usr/bin/env bash
# Set-up, build, then the main job: a property run against the embedded
# engine -- on the GPU when one is visible, on the CPU otherwise. Until the
# property runner lands (issue 4) the job is the oracle's own self-check:
# closed forms, agreement of its number types and of two independent
# references, and the error model over thousands of random cases.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
ci/build.sh default
exec build/default/attncheck selfcheck --cases "${ATTNCHECK_CASES:-3000}" "$@"
