#!/usr/bin/env bash
# Build here (no GPU needed) and gather what the GPU lane runs into
# gpu_bundle/ (git-ignored, stripped, well under the 64 MiB the device tool
# carries). Then, on the GPU machine: ci/gpu_lane.sh [sanitize].
set -euo pipefail
cd "$(dirname "$0")/.."
ci/build.sh default
rm -rf gpu_bundle && mkdir -p gpu_bundle
for b in tests/test_gpu_smoke tests/test_kernels_gpu tests/test_case tests/test_dtype attncheck; do
  cp "build/default/$b" gpu_bundle/
done
strip gpu_bundle/* 2>/dev/null || true
git rev-parse HEAD > gpu_bundle/COMMIT
git diff --quiet HEAD -- . ':!gpu_bundle' || echo "dirty" >> gpu_bundle/COMMIT
du -sh gpu_bundle
