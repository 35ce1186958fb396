#!/usr/bin/env bash
# `attncheck campaign --fuzzer` on this machine (issue 13): libFuzzer rounds
# in fork mode over a campaign directory.
#  1. The production CPU engine, short rounds: no failure, executions and
#     coverage recorded per round, the corpus merged into DIR/corpus, gate
#     tallies from the jobs, and a second invocation resumes the directory.
#  2. A mutant build with --stop-at-first-failure: the campaign ends with the
#     round that found it, the crashed job's input is saved in DIR/crashes,
#     and the kept counterexample replays (`attncheck repro` exits 1 on its
#     gate).
# Exit 77 (ctest: skipped) when the fuzz build is missing: ci/test.sh builds
# it (cmake --preset fuzz) when clang-14 is installed.
# Usage: ci/fuzz_campaign_test.sh ATTNCHECK_BINARY FUZZ_ATTENTION_CASES_BINARY
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "$1")"
fuzzer="$2"
if [[ ! -x "$fuzzer" ]]; then
  echo "fuzz_campaign_test: skipped: no fuzzer at $fuzzer (cmake --preset fuzz && cmake --build build/fuzz --target fuzz_attention_cases)"
  exit 77
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
seeds="$here/corpus/fuzz_attention_cases"

"$bin" campaign --dir "$work/prod" --fuzzer "$fuzzer" --seed-corpus "$seeds" --backend cpu --workers 2 \
  --seconds 12 --round-seconds 6 > "$work/prod.log"
cat "$work/prod.log"
r1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rounds"])' "$work/prod/status.json")
"$bin" campaign --dir "$work/prod" --fuzzer "$fuzzer" --backend cpu --workers 2 --seconds 4 --round-seconds 4 > "$work/resume.log"
cat "$work/resume.log"
grep -q "attncheck campaign: .* ($r1 rounds" "$work/resume.log"

"$bin" campaign --dir "$work/mut" --fuzzer "$fuzzer" --seed-corpus "$seeds" --backend cpu --workers 2 \
  --mutant scale_twice --stop-at-first-failure --seconds 60 --round-seconds 30 > "$work/mut.log" && exit 1
cat "$work/mut.log"

python3 - "$work" "$bin" <<'PY'
import glob, json, os, subprocess, sys
work, bin = sys.argv[1], sys.argv[2]
prod = json.load(open(os.path.join(work, "prod", "status.json")))
rounds = prod["rounds"]
assert rounds >= 2, rounds
assert prod["failures"] == [] and prod["crashes"] == 0, prod["failures"]
assert prod["execs"] > 0 and prod["cases"] > 0, (prod["execs"], prod["cases"])
hist = prod["coverage_history"]
assert len(hist) >= rounds and all(h["coverage"] > 0 for h in hist), hist
assert all(a["seconds"] <= b["seconds"] and a["execs"] <= b["execs"] for a, b in zip(hist, hist[1:])), hist
assert hist[-1]["execs"] == prod["execs"] and hist[0]["seconds"] < hist[-1]["seconds"], hist
assert prod["corpus"] == len(os.listdir(os.path.join(work, "prod", "corpus"))) > 0
assert "parity" in prod["tallies"] and prod["tallies"]["parity"][0] > 0, prod["tallies"].get("parity")
mut = json.load(open(os.path.join(work, "mut", "status.json")))
# Jobs run side by side, so the round may end with more than one finding;
# every one must be the mutant's (the production rounds above found none).
assert len(mut["failures"]) >= 1, mut["failures"]
f = mut["failures"][0]
assert os.listdir(os.path.join(work, "mut", "crashes")), "the crashed job's input was not saved"
rc = subprocess.run([bin, "repro", f["file"], "--expect-gate"], capture_output=True).returncode
assert rc == 1, f"repro of {f['file']} exited {rc}, not 1 (the recorded gate fails)"
print(f"fuzz_campaign_test: ok: {prod['execs']} execs over {rounds} rounds, cov {hist[-1]['coverage']}, "
      f"corpus {prod['corpus']}; mutant found as {f['key']} after {mut['seconds']:.1f} s")
PY
