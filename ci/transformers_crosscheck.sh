#!/bin/sh
# The transformers cross-check on a GPU machine (PyTorch + transformers in
# python3, no network): both architectures, our engine on the CPU and, when a
# GPU is visible, on CUDA. Usage: ci/transformers_crosscheck.sh [ATTNCHECK_BINARY] [RESULTS_DIR]
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-}
if [ -z "$bin" ]; then
  for c in "$here/../build/default/attncheck" "$here/../attncheck" ./attncheck; do
    [ -x "$c" ] && bin=$c && break
  done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "error: attncheck binary not found (pass it as the first argument)" >&2; exit 2; }
out=${2:-}
rc=0
backends=cpu
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then backends="cpu cuda"; fi
for b in $backends; do
  res=""
  [ -n "$out" ] && mkdir -p "$out" && res="--results $out/transformers_crosscheck_$b.json"
  # shellcheck disable=SC2086
  python3 "$here/transformers_crosscheck.py" --attncheck "$bin" --backend "$b" $res || rc=1
done
exit $rc
