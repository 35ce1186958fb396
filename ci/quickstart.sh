#!/usr/bin/env bash
# Set-up, build, then the main job: a property campaign against the embedded
# engine -- every gate on every attention target, then the complete model
# under random configurations (attncheck run --target model), on the GPU
# when one is visible, on the CPU otherwise -- after a short self-check of
# the oracle it is judged by. Failures print a gate report and a
# `attncheck repro` line; the exit status is non-zero if either campaign
# found one.
# ATTNCHECK_SECONDS (default 120) sets the attention campaign's length and
# ATTNCHECK_MODEL_SECONDS (default 30; 0 skips it) the model campaign's;
# extra arguments go to the attention `attncheck run` (e.g. --backend cpu,
# --target decode_gqa), and its --backend to the model campaign too.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
ci/build.sh default
build/default/attncheck selfcheck --cases "${ATTNCHECK_CASES:-500}"
backend=()
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  case "${args[i]}" in
    --backend) backend=(--backend "${args[i + 1]:-}") ;;
    --backend=*) backend=("${args[i]}") ;;
  esac
done
rc=0
build/default/attncheck run --seconds "${ATTNCHECK_SECONDS:-120}" "$@" || rc=$?
if [[ "${ATTNCHECK_MODEL_SECONDS:-30}" != 0 ]]; then
  build/default/attncheck run --target model --seconds "${ATTNCHECK_MODEL_SECONDS:-30}" "${backend[@]}" || rc=$((rc ? rc : $?))
fi
exit "$rc"
