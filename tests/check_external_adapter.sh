#!/bin/sh
# The external adapter protocol end to end (docs/adapter-protocol.md), with
# the numpy adapter of python/examples: the correct adapter holds every gate
# (exit 0), with runs in batches and one at a time, its scale-twice twin is caught (exit 1) and its counterexample
# replays through the adapter, and an adapter that is not one is refused
# (exit 2). Skipped (77) where no python3 with numpy is found.
# Usage: check_external_adapter.sh ATTNCHECK SOURCE_DIR
set -u
exe="$1"
src="$2"
. "$src/tests/adapter_test_env.sh"
adapter="$py $src/python/examples/numpy_adapter.py"
"$exe" run --backend cpu --external "$adapter" --cases 60 --workers 2 > "$work/good.log" 2>&1 \
  || { echo "the numpy adapter failed:"; cat "$work/good.log"; exit 1; }
grep -E "numpy_fp64 +ok" "$work/good.log"
# The same, a run message per run (max_batch 1) rather than run_batch messages.
"$exe" run --backend cpu --external "$adapter --one-at-a-time" --cases 30 --workers 1 > "$work/single.log" 2>&1 \
  || { echo "the numpy adapter, one run at a time, failed:"; cat "$work/single.log"; exit 1; }
grep -E "numpy_fp64 +ok" "$work/single.log"
"$exe" run --backend cpu --external "$adapter --scale-twice" --cases 60 --workers 1 --out "$work/cx" \
  > "$work/twin.log" 2>&1
rc=$?
[ "$rc" -eq 1 ] || { echo "scale-twice adapter: exit $rc, expected 1:"; cat "$work/twin.log"; exit 1; }
grep -E "FAILED" "$work/twin.log" | head -n 1
# The counterexample replays through the adapter, failing its recorded gate first (exit 1).
cx=$(ls "$work"/cx/numpy_scale_twice-*.json | head -n 1)
"$exe" repro "$cx" --external "$adapter --scale-twice" --expect-gate > "$work/repro.log" 2>&1
rc=$?
[ "$rc" -eq 1 ] || { echo "repro through the adapter: exit $rc, expected 1:"; cat "$work/repro.log"; exit 1; }
"$exe" run --backend cpu --external "$py -c 'import sys; sys.stdout.write(\"nonsense\")'" --cases 1 \
  > "$work/bad.log" 2>&1
rc=$?
[ "$rc" -eq 2 ] || { echo "a broken adapter: exit $rc, expected 2:"; cat "$work/bad.log"; exit 1; }
echo "external adapter: held, caught the twin, refused a broken adapter"
