#!/bin/sh
# The model adapter protocol end to end (docs/adapter-protocol.md, "Model
# adapters"), with the numpy decoder of python/examples: the correct decoder
# holds both gates (exit 0); its two bugs are each caught by the gate that
# names them (exit 1) and the counterexample replays through the adapter;
# an attention adapter given to --target model is refused (exit 2). Skipped
# (77) where no python3 with numpy is found.
# Usage: check_external_model.sh ATTNCHECK SOURCE_DIR
set -u
exe="$1"
src="$2"
. "$src/tests/adapter_test_env.sh"
adapter="$py $src/python/examples/numpy_model_adapter.py"
"$exe" run --target model --external "$adapter" --cases 25 --seed 3 > "$work/good.log" 2>&1 \
  || { echo "the numpy decoder failed:"; cat "$work/good.log"; exit 1; }
grep "every model gate held" "$work/good.log"
for bug in rope-restart:decode_prefill no-qkv-bias:logits; do
  name=${bug%%:*}
  gate=${bug#*:}
  "$exe" run --target model --external "$adapter --bug $name" --cases 60 --seed 3 --out "$work/cx-$name" \
    > "$work/$name.log" 2>&1
  rc=$?
  [ "$rc" -eq 1 ] || { echo "--bug $name: exit $rc, expected 1:"; cat "$work/$name.log"; exit 1; }
  grep -q "gate $gate FAILED" "$work/$name.log" \
    || { echo "--bug $name: not caught by gate $gate:"; cat "$work/$name.log"; exit 1; }
  grep "gate $gate FAILED" "$work/$name.log"
  # The file records the adapter command, so a plain repro replays through it.
  cx=$(ls "$work/cx-$name"/model-*.json | head -n 1)
  "$exe" repro "$cx" > "$work/repro-$name.log" 2>&1
  rc=$?
  [ "$rc" -eq 1 ] && grep -q "gate $gate FAILED" "$work/repro-$name.log" \
    || { echo "repro of --bug $name: exit $rc:"; cat "$work/repro-$name.log"; exit 1; }
done
"$exe" run --target model --external "$py $src/python/examples/numpy_adapter.py" --cases 1 > "$work/bad.log" 2>&1
rc=$?
[ "$rc" -eq 2 ] && grep -q "not \"model\"" "$work/bad.log" \
  || { echo "an attention adapter as a model: exit $rc, expected 2:"; cat "$work/bad.log"; exit 1; }
echo "external model: held, caught rope-restart and no-qkv-bias by their gates, refused an attention adapter"
