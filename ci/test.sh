#!/usr/bin/env bash
# The whole test suite: set-up, build, then every test through ctest.
# GPU tests report as skipped (with the reason) where no GPU is visible.
# Extra arguments go to ctest (e.g. -L cpu, -R Case).
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh --fuzz
ci/build.sh werror
# The fuzz build's CPU attention fuzzer (clang-14, libFuzzer, ASan/UBSan): ctest
# fuzz_campaign_supervisor runs `attncheck campaign --fuzzer` rounds with it.
cmake --preset fuzz >/dev/null
cmake --build build/fuzz -j "$(nproc)" --target fuzz_attention_cases
cd build/werror
ctest -j "$(nproc)" --output-on-failure --timeout 1500 --output-junit ctest-junit.xml "$@"

# The suite's speed on this machine, printed for the log (not asserted: CI
# machines vary); its gates still count, so a failure here is a red CI.
./attncheck bench throughput --backend cpu --seconds 20 --out throughput-counterexamples
