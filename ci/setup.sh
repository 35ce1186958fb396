#!/usr/bin/env bash
# Installs what attncheck needs from Debian packages, and nothing when all of
# it is already there. Usage: ci/setup.sh [--fuzz]   (--fuzz adds clang-14 and
# libFuzzer). Needs root (or sudo) only when something is missing.
set -euo pipefail

pkgs=(cmake ninja-build g++ librapidcheck-dev libgtest-dev libboost-dev nlohmann-json3-dev libcli11-dev libfmt-dev
      python3-numpy   # numpy: the external adapter test's numpy adapter (python/examples)
      chromium        # headless: the run report's page is rendered and checked (tests/render_report.py)
      slurm-wlm munge) # a one-node Slurm for the array campaign test (ci/slurm_test.sh)
if [[ "${1:-}" == "--fuzz" ]]; then
  pkgs+=(clang-14 libclang-rt-14-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"

if [[ ! -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then
  echo "setup: note: no CUDA toolkit found; the CPU half builds and tests, the GPU tests report as skipped"
fi
