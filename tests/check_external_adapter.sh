#!/bin/sh
# The external adapter protocol end to end (docs/adapter-protocol.md), with
# the numpy adapter of python/examples: the correct adapter holds every gate
# (exit 0), its scale-twice twin is caught (exit 1) and its counterexample
# replays through the adapter, and an adapter that is not one is refused
# (exit 2). Skipped (77) where no python3 with numpy is found.
# Usage: check_external_adapter.sh ATTNCHECK SOURCE_DIR
set -u
exe="$1"
src="$2"
py=""
for c in python3 /usr/bin/python3; do
  if "$c" -c "import numpy" 2>/dev/null; then py="$c"; break; fi
done
[ -n "$py" ] || { echo "skipped: no python3 with numpy (apt-get install python3-numpy)"; exit 77; }
export PYTHONPATH="$src/python${PYTHONPATH:+:$PYTHONPATH}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
adapter="$py $src/python/examples/numpy_adapter.py"
"$exe" run --backend cpu --external "$adapter" --cases 60 --workers 2 > "$work/good.log" 2>&1 \
  || { echo "the numpy adapter failed:"; cat "$work/good.log"; exit 1; }
grep -E "numpy_fp64 +ok" "$work/good.log"
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
