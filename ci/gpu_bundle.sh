#!/usr/bin/env bash
# Build here (no GPU needed) and pack what the GPU lane runs into
# gpu_bundle/ (git-ignored): stripped binaries in one xz tarball (each binary
# carries ~17 MB of sm_90a code that compresses ~7x), well under the 64 MiB
# the device tool carries. Then, on the GPU machine: ci/gpu_lane.sh [mode].
set -euo pipefail
cd "$(dirname "$0")/.."
ci/build.sh werror
rm -rf gpu_bundle && mkdir -p gpu_bundle/stage
bins=(tests/test_gpu_smoke tests/test_kernels_gpu tests/test_decode_split_gpu tests/test_properties_gpu tests/test_mutation_score_gpu
      tests/test_case tests/test_dtype tests/test_oracle_gpu tests/test_materialize_device tests/test_parallel_run_gpu attncheck)
for m in tests/test_model_gpu tests/test_model_session_gpu tests/test_graph_decoder; do [[ -x build/werror/$m ]] && bins+=("$m"); done
for b in "${bins[@]}"; do cp "build/werror/$b" gpu_bundle/stage/; done
strip gpu_bundle/stage/*
# The CUDA fuzzers (ci/gpu_lane.sh fuzz, fuzzmutants): the fuzz-cuda preset
# (clang-14 + libFuzzer + host-side ASan/UBSan). Debug info goes, symbols
# stay, so a sanitizer report names functions. GPU_BUNDLE_FUZZ=0 skips them.
if [[ "${GPU_BUNDLE_FUZZ:-1}" == 1 ]] && command -v clang++-14 >/dev/null; then
  cmake --preset fuzz-cuda >/dev/null
  cmake --build build/fuzz-cuda -j "$(nproc)" --target fuzz_attention_cases fuzz_model_step
  for f in fuzz_attention_cases fuzz_model_step; do
    cp build/fuzz-cuda/fuzz/$f gpu_bundle/stage/ && strip -g gpu_bundle/stage/$f
  done
fi
tar -C gpu_bundle/stage -cJf gpu_bundle/bin.tar.xz .
rm -rf gpu_bundle/stage
git rev-parse HEAD > gpu_bundle/COMMIT
git diff --quiet HEAD -- . ':!gpu_bundle' || echo "dirty" >> gpu_bundle/COMMIT
du -sh gpu_bundle
