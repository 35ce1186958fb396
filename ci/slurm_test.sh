#!/usr/bin/env bash
# The Slurm path of issue 13 on this machine: starts a one-node Slurm
# (contrib/slurm/one_node_slurm.sh), runs a two-task array campaign through
# it against a CPU mutant (contrib/slurm/attncheck_array.sbatch), then the
# merge job, and checks the merged result: its rounds and cases are the
# tasks' sums and each failure class is kept once. Exit 77 (ctest: skipped)
# without root or without slurm-wlm and munge.
# Usage: ci/slurm_test.sh ATTNCHECK_BINARY
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "$1")"
if [[ $(id -u) -ne 0 ]] || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm_test: skipped: needs root, slurm-wlm and munge (ci/setup.sh installs them)"
  exit 77
fi
work="$(mktemp -d)"
chmod 755 "$work" # munged runs as the munge user and keeps its key and socket files under it
trap '"$here"/contrib/slurm/one_node_slurm.sh stop "$work/slurm"; rm -rf "$work"' EXIT
export SLURM_CONF="$work/slurm/slurm.conf"
"$here"/contrib/slurm/one_node_slurm.sh start "$work/slurm"
shared="$work/shared"
mkdir -p "$shared"
cd "$work"
export ATTNCHECK="$bin"
job=$(sbatch --parsable --array=0-1 --wait "$here"/contrib/slurm/attncheck_array.sbatch "$shared" \
        --backend cpu --target decode_split --mutant scale_twice --seconds 3 --round-seconds 1 --workers 1) || true
sbatch --parsable --wait --dependency=afterany:"${job%%;*}" "$here"/contrib/slurm/attncheck_merge.sbatch "$shared" > /dev/null || true
python3 - "$shared" <<'PY'
import json, os, sys
shared = sys.argv[1]
tasks = [json.load(open(os.path.join(shared, f"task_{k}", "status.json"))) for k in (0, 1)]
merged = json.load(open(os.path.join(shared, "merged", "status.json")))
assert all(t["rounds"] > 0 for t in tasks), "a task ran no round"
assert merged["rounds"] == sum(t["rounds"] for t in tasks), "merged rounds are not the tasks' sum"
assert merged["cases"] == sum(t["cases"] for t in tasks), "merged cases are not the tasks' sum"
keys = {f["key"] for t in tasks for f in t["failures"]}
assert keys, "the mutant was not found by either task"
assert {f["key"] for f in merged["failures"]} == keys, "merged failure classes differ from the tasks'"
assert sum(f["seen"] for f in merged["failures"]) == sum(f["seen"] for t in tasks for f in t["failures"])
for f in merged["failures"]:
    assert os.path.exists(f["file"]), f["file"]
print(f"slurm_test: 2 array tasks, {merged['rounds']} rounds, {merged['cases']} cases, "
      f"{len(keys)} failure class(es) merged")
PY
