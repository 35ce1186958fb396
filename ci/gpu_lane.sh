#!/usr/bin/env bash
# The GPU lane, run on a machine with a CUDA device from the repository root,
# with gpu_bundle/ made by ci/gpu_bundle.sh. Writes logs and gtest XML to
# $OUT (or ./gpu_results). Usage: ci/gpu_lane.sh [tests|sanitize|all]
set -uo pipefail
cd "$(dirname "$0")/.."
# Logs go to a work folder; $OUT (the device tool brings back at most 8
# files) gets the summary and one tarball of every log.
final="${OUT:-gpu_results}"
out="$(mktemp -d)"
mkdir -p "$final"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export ATTNCHECK_SOURCE_DIR="$PWD"
mode="${1:-all}"
rc=0
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(cat gpu_bundle/COMMIT | tr '\n' ' ')"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} | tee "$out/environment.txt"

run() {  # name, command...
  local name="$1"; shift
  echo "=== $name: $*"
  # A hung kernel must not eat the whole lease: each step has a time limit.
  timeout "${STEP_TIMEOUT:-300}" "$@" > "$out/$name.log" 2>&1
  local r=$?
  tail -n 25 "$out/$name.log"
  echo "=== $name: exit $r"
  [[ $r -eq 0 ]] || rc=1
}

if [[ "$mode" == tests || "$mode" == all ]]; then
  run gpu_smoke gpu_bundle/test_gpu_smoke --gtest_output=xml:"$out/gpu_smoke.xml"
  run case_portable gpu_bundle/test_case --gtest_filter='Case.MaterializedBitsArePortable:Case.Json*'
  run kernels_gpu gpu_bundle/test_kernels_gpu --gtest_output=xml:"$out/kernels_gpu.xml"
fi
if [[ "$mode" == sanitize || "$mode" == all ]]; then
  # Production kernels only (the mutant test deliberately races). The whole
  # grid by default (about 2 minutes for the four tools on the H100);
  # SANITIZE_EVERY=n keeps every n-th case.
  filter='Families/KernelGrid.MatchesOracleUnderErrorModel/*'
  for tool in memcheck racecheck synccheck initcheck; do
    ATTNCHECK_GRID_EVERY="${SANITIZE_EVERY:-1}" run "sanitize_$tool" compute-sanitizer --tool "$tool" --error-exitcode 99 \
      gpu_bundle/test_kernels_gpu --gtest_filter="$filter"
  done
fi
cp "$out/environment.txt" "$final/"
grep -H -E "^(cuda/|=+ (ERROR|RACECHECK) SUMMARY|\[  (PASSED|FAILED) )" "$out"/*.log > "$final/summary.txt" 2>/dev/null
tar -czf "$final/gpu_lane_logs.tar.gz" -C "$out" .
exit $rc
