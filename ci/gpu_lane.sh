#!/usr/bin/env bash
# The GPU lane, run on a machine with a CUDA device from the repository root,
# with gpu_bundle/ made by ci/gpu_bundle.sh. Writes a summary and a tarball
# of every log to $OUT (or ./gpu_results).
# Usage: ci/gpu_lane.sh [tests|properties|model|modelbench|crosscheck|sanitize|throughput|kernels|adapters|all]... | long | fuzz | fuzzmutants
#   long: one `attncheck run --backend cuda` of LONG_SECONDS (default 540) with
#   seed LONG_SEED (default 7), every target and gate, one worker per core;
#   fuzz: one `attncheck campaign --fuzzer` of FUZZ_SECONDS (default 540) on
#   the CUDA targets (the fuzz-cuda build in the bundle), FUZZ_WORKERS jobs;
#   fuzzmutants: the same campaign against each attention mutant (CUDA) and
#   each model mutant (CPU model step), stopping at the first failure, at
#   most HUNT_SECONDS (default 25) each: how long each took to be found;
#   multigpu: on a host with several GPUs, `run --devices all` beside the
#   same run on one GPU (MULTI_SECONDS each, default 45), then a fuzzer
#   campaign with one fork parent per GPU, GPU use sampled by nvidia-smi;
#   none of these is part of `all` (each takes a device call of its own).
set -uo pipefail
cd "$(dirname "$0")/.."
# Logs go to a work folder; $OUT (the device tool brings back at most 8
# files) gets the summary and one tarball of every log.
final="${OUT:-gpu_results}"
out="$(mktemp -d)"
mkdir -p "$final"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export ATTNCHECK_SOURCE_DIR="$PWD"
modes=" ${*:-all} "
want() { [[ "$modes" == *" $1 "* || "$modes" == *" all "* ]]; }
bin="$(mktemp -d)"
tar -C "$bin" -xJf gpu_bundle/bin.tar.xz
rc=0
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(cat gpu_bundle/COMMIT | tr '\n' ' ')"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} | tee "$out/environment.txt"

run() {  # name, command...
  local name="$1"; shift
  echo "=== $name: $*"
  # A hung kernel must not eat the whole lease: each step has a time limit.
  timeout "${STEP_TIMEOUT:-300}" "$@" > "$out/$name.log" 2>&1
  local r=$?
  tail -n 25 "$out/$name.log"
  echo "=== $name: exit $r"
  [[ $r -eq 0 ]] || rc=1
}

if want tests; then
  run gpu_smoke "$bin"/test_gpu_smoke --gtest_output=xml:"$out/gpu_smoke.xml"
  run case_portable "$bin"/test_case --gtest_filter='Case.MaterializedBitsArePortable:Case.Json*'
  run kernels_gpu "$bin"/test_kernels_gpu --gtest_output=xml:"$out/kernels_gpu.xml"
  run decode_split_gpu "$bin"/test_decode_split_gpu --gtest_output=xml:"$out/decode_split_gpu.xml"
  run oracle_gpu "$bin"/test_oracle_gpu --gtest_output=xml:"$out/oracle_gpu.xml"
  run materialize_device "$bin"/test_materialize_device --gtest_output=xml:"$out/materialize_device.xml"
  run selfcheck "$bin"/attncheck selfcheck --cases "${SELFCHECK_CASES:-2000}"
  # Every kept counterexample on CUDA: the production build holds every gate.
  for f in corpus/regressions/*.json; do
    run "regression_$(basename "$f" .json)" "$bin"/attncheck repro "$f" --backend cuda --mutant none
  done
fi
if want properties; then
  run properties_gpu "$bin"/test_properties_gpu --gtest_output=xml:"$out/properties_gpu.xml"
  run mutation_score_gpu "$bin"/test_mutation_score_gpu --gtest_output=xml:"$out/mutation_score_gpu.xml"
  run parallel_run_gpu "$bin"/test_parallel_run_gpu --gtest_output=xml:"$out/parallel_run_gpu.xml"
  run attncheck_run_cuda "$bin"/attncheck run --backend cuda --cases 200 --seed 1 --out "$out/counterexamples"
  # JSON on stdout only (RapidCheck prints its configuration line on stderr).
  echo "=== attncheck_mutants_cuda"
  "$bin"/attncheck mutants --backend cuda --json --save "$out/mutant_counterexamples" \
    > "$final/mutants_cuda.json" 2> "$out/attncheck_mutants_cuda.log" || rc=1
fi
if want model && [[ -x "$bin"/test_model_gpu ]]; then
  run model_gpu "$bin"/test_model_gpu --gtest_output=xml:"$out/model_gpu.xml" \
    --gtest_filter='Tiny/ModelProps.*:All/ModelMutants.*:ModelBound.*:ModelRope.*:ModelEngineErrors.*'
  run model_session_gpu "$bin"/test_model_session_gpu --gtest_output=xml:"$out/model_session_gpu.xml"
  run graph_decoder_gpu "$bin"/test_graph_decoder --gtest_output=xml:"$out/graph_decoder_gpu.xml"
  run model_qwen05b_shape "$bin"/test_model_gpu --gtest_filter='ModelQwen05bShape.*' --gtest_output=xml:"$out/model_qwen05b.xml"
  run model_check_qwen05b "$bin"/attncheck model-check --preset qwen2.5-0.5b-shape --dtype bf16 --prompt 8 --decode 4 --backend cuda
  # A model mutant must be caught and named (exit 1, layer 0, stage kv_cache).
  echo "=== model_mutant_kv_cache"
  # The model campaign on the CUDA engine: random configurations and
  # schedules (docs/model-case.md), then every model mutant killed and placed.
  run model_campaign_cuda "$bin"/attncheck run --target model --backend cuda --seconds "${MODEL_SECONDS:-60}" \
    --seed 3 --out "$out/model_counterexamples"
  run model_mutants_cuda "$bin"/attncheck mutants --target model --backend cuda --cases 300
  "$bin"/attncheck model-check --preset tiny-qwen2 --dtype bf16 --decode 2 --backend cuda --mutant kv_cache_wrong_position \
    > "$out/model_mutant_kv_cache.log" 2>&1
  mrc=$?; tail -n 15 "$out/model_mutant_kv_cache.log"; echo "=== model_mutant_kv_cache: exit $mrc (expected 1)"
  [[ $mrc -eq 1 ]] || rc=1
fi
if want modelbench; then
  # The device-resident decoder's ms/token (`attncheck bench model`) beside
  # transformers' generate measured in the same run (bench/model_generate.py),
  # at batch 1 and 16, Qwen2.5-0.5B shape, bf16.
  echo "=== modelbench"
  python3 bench/model_generate.py --batch 1 16 --new "${MODEL_BENCH_NEW:-256}" > "$final/model_generate.json" \
    2> "$out/model_generate.log" || rc=1
  cat "$final/model_generate.json"
  for b in 1 16; do
    "$bin"/attncheck bench model --preset qwen2.5-0.5b-shape --dtype bf16 --batch "$b" --new "${MODEL_BENCH_NEW:-256}" \
      --anchor "$final/model_generate.json" --json > "$final/bench_model_b$b.json" 2> "$out/bench_model_b$b.log" || rc=1
    cat "$final/bench_model_b$b.json" "$out/bench_model_b$b.log"
  done
fi
if want crosscheck; then
  run transformers_crosscheck ci/transformers_crosscheck.sh "$bin"/attncheck "$out"
fi
if want sanitize; then
  # Production kernels only (the mutant test deliberately races). The whole
  # grid by default (about 2 minutes for the four tools on the H100);
  # SANITIZE_EVERY=n keeps every n-th case.
  filter='Families/KernelGrid.MatchesOracleUnderErrorModel/*'
  for tool in memcheck racecheck synccheck initcheck; do
    ATTNCHECK_GRID_EVERY="${SANITIZE_EVERY:-1}" run "sanitize_$tool" compute-sanitizer --tool "$tool" --error-exitcode 99 \
      "$bin"/test_kernels_gpu --gtest_filter="$filter"
    run "sanitize_${tool}_decode_split" compute-sanitizer --tool "$tool" --error-exitcode 99 \
      "$bin"/test_decode_split_gpu --gtest_filter='DecodeSplitGrouped.MatchesOracleUnderErrorModel'
  done
fi
if want throughput; then
  # Verified cases/s of the default campaign, and the PyTorch test loop
  # (bench/pytorch_test_loop.py) on the same GPU in the same run.
  echo "=== throughput"
  "$bin"/attncheck bench throughput --backend cuda --seconds "${THROUGHPUT_SECONDS:-60}" --json \
    --out "$out/throughput_counterexamples" > "$final/throughput_cuda.json" 2> "$out/throughput_cuda.log" || rc=1
  cat "$final/throughput_cuda.json"
  python3 bench/pytorch_test_loop.py --seconds "${THROUGHPUT_SECONDS:-30}" > "$final/pytorch_test_loop.json" \
    2> "$out/pytorch_test_loop.log" || rc=1
  cat "$final/pytorch_test_loop.json"
fi
if want kernels; then
  # Each family at the anchor shapes beside PyTorch's SDPA backends timed the
  # same way in the same run (bench/sdpa_kernels.py), as ratios.
  echo "=== kernels"
  "$bin"/attncheck bench kernels --print-shapes > "$out/shapes.json" || rc=1
  python3 bench/sdpa_kernels.py --shapes "$out/shapes.json" > "$final/sdpa_kernels.json" \
    2> "$out/sdpa_kernels.log" || rc=1
  "$bin"/attncheck bench kernels --anchors "$final/sdpa_kernels.json" > "$out/bench_kernels.txt" \
    2> "$out/bench_kernels.log" || rc=1
  cp "$out/bench_kernels.txt" "$final/"
  cat "$out/bench_kernels.txt"
fi
if want adapters; then
  # PyTorch's attention through the external adapter protocol: SDPA with each
  # backend forced (python/attncheck_adapter/torch_sdpa.py) and compiled
  # FlexAttention (torch_flex.py), and transformers' decoders as a model
  # (transformers_model.py), ADAPTER_SECONDS each. The six campaigns run side
  # by side, ADAPTER_WORKERS adapter processes each for attention (16 cores:
  # 3 x 5 + 1), since each spends its time in Python and the host oracle.
  # Failures are shrunk to $out/adapter_counterexamples/<adapter>, a report
  # per adapter; ADAPTER_LEDGER=corpus/known/pytorch_h200.json counts
  # what is explained.
  export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
  # What run_batch and CUDA IPC buy: the flash adapter, one worker, the same
  # seeded cases, a message per run, 16 runs a message through the pipes, and
  # 16 through attncheck's GPU buffer (ADAPTER_BATCH_SECONDS each; 0 skips
  # it). It runs first: if the IPC run does not hold, the campaigns below
  # fall back to the pipes (--no-cuda-ipc) and the lane fails.
  adapter_transport=""
  for variant in "1 --max-batch 1 --no-cuda-ipc" "16 --max-batch 16 --no-cuda-ipc" "16_ipc --max-batch 16"; do
    [[ "${ADAPTER_BATCH_SECONDS:-30}" == 0 ]] && break
    name="${variant%% *}"
    STEP_TIMEOUT=$(( ${ADAPTER_BATCH_SECONDS:-30} + 120 )) run "adapter_batch_$name" "$bin"/attncheck run --backend cpu \
      --workers 1 --seconds "${ADAPTER_BATCH_SECONDS:-30}" --seed 11 \
      --external "python3 -m attncheck_adapter.torch_sdpa --backend flash ${variant#* }" \
      ${ADAPTER_LEDGER:+--known-failures "$ADAPTER_LEDGER"} > "$out/batching_$name.summary" 2>&1
    echo "max_batch $name: $(grep -E 'cases/s' "$out/batching_$name.summary" | tail -n 1)" | tee -a "$final/adapter_batching.txt"
    if [[ "$name" == 16_ipc ]] && grep -q ": exit [^0]" "$out/batching_$name.summary"; then
      adapter_transport="--no-cuda-ipc"; rc=1; echo "CUDA IPC run failed: campaigns use the pipes" | tee -a "$final/adapter_batching.txt"
    fi
  done
  adapter_cmds=(
    "flash|python3 -m attncheck_adapter.torch_sdpa --backend flash"
    "efficient|python3 -m attncheck_adapter.torch_sdpa --backend efficient"
    "cudnn|python3 -m attncheck_adapter.torch_sdpa --backend cudnn"
    "math|python3 -m attncheck_adapter.torch_sdpa --backend math"
    "flex|python3 -m attncheck_adapter.torch_flex"
  )
  for entry in "${adapter_cmds[@]}"; do
    name="${entry%%|*}"
    STEP_TIMEOUT=$(( ${ADAPTER_SECONDS:-60} + 240 )) run "adapter_$name" "$bin"/attncheck run --backend cpu \
      --workers "${ADAPTER_WORKERS:-3}" --seconds "${ADAPTER_SECONDS:-60}" --seed "${ADAPTER_SEED:-3}" \
      --external "${entry#*|} $adapter_transport" --out "$out/adapter_counterexamples/$name" --report "$out/report_$name" \
      ${ADAPTER_LEDGER:+--known-failures "$ADAPTER_LEDGER"} > "$out/adapter_$name.summary" 2>&1 &
  done
  # transformers' decoders as an external model (random model cases, logits gates).
  STEP_TIMEOUT=$(( ${ADAPTER_SECONDS:-60} + 240 )) run adapter_transformers_model "$bin"/attncheck run --target model \
    --seconds "${ADAPTER_SECONDS:-60}" --seed "${ADAPTER_SEED:-3}" \
    --external "python3 -m attncheck_adapter.transformers_model" \
    --out "$out/adapter_counterexamples/transformers_model" > "$out/adapter_transformers_model.summary" 2>&1 &
  wait
  cat "$out"/adapter_*.summary
  grep -q ": exit [^0]" "$out"/adapter_*.summary && rc=1
fi
if [[ "$modes" == *" fuzz "* ]]; then
  # MPS lets the fork jobs' CUDA contexts share the GPU instead of time-slicing it.
  nvidia-cuda-mps-control -d 2>/dev/null && echo "MPS daemon started"
  STEP_TIMEOUT=$(( ${FUZZ_SECONDS:-540} + 60 )) run fuzz_campaign_cuda "$bin"/attncheck campaign --dir "$out/fuzz_campaign" \
    --fuzzer "$bin"/fuzz_attention_cases --backend cuda --seed-corpus corpus/fuzz_attention_cases \
    --seconds "${FUZZ_SECONDS:-540}" --round-seconds "${FUZZ_ROUND_SECONDS:-60}" --workers "${FUZZ_WORKERS:-8}"
  cp "$out/fuzz_campaign_cuda.log" "$out/fuzz_campaign/status.json" "$final/"
  echo quit | nvidia-cuda-mps-control 2>/dev/null
fi
if [[ "$modes" == *" fuzzmutants "* ]]; then
  nvidia-cuda-mps-control -d 2>/dev/null && echo "MPS daemon started"
  hunt() {  # name fuzzer backend mutant-flag mutant seeds
    local d="$out/hunt/$1"
    local t0; t0=$(date +%s.%N)
    STEP_TIMEOUT=$(( ${HUNT_SECONDS:-25} + 90 )) run "hunt_$1" "$bin"/attncheck campaign --dir "$d" --fuzzer "$bin/$2" \
      --backend "$3" "$4" "$5" --seed-corpus "$6" --stop-at-first-failure --seconds "${HUNT_SECONDS:-25}" \
      --round-seconds "${HUNT_SECONDS:-25}" --workers "${HUNT_WORKERS:-4}"
    python3 - "$1" "$d/status.json" "$t0" "$(date +%s.%N)" >> "$final/mutant_hunts.jsonl" <<'PY'
import json, sys
name, status, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
try:
    s = json.load(open(status))
except OSError:
    s = {"failures": [], "execs": 0}
f = s["failures"][0] if s["failures"] else None
print(json.dumps({"mutant": name, "found": f is not None, "class": f and f["key"], "wall_s": round(t1 - t0, 2),
                  "execs": s.get("execs", 0), "crash_inputs": s.get("crash_inputs", 0)}))
PY
  }
  for m in $("$bin"/attncheck list | sed -n '/^Mutants/,/^$/p' | awk '/^  [a-z_0-9]+ / && $1 != "none" {print $1}'); do
    hunt "$m" fuzz_attention_cases cuda --mutant "$m" corpus/fuzz_attention_cases
  done
  for m in $("$bin"/attncheck list | sed -n '/^Model mutants/,/^$/p' | awk '/^  [a-z_0-9]+ / && $1 != "none" {print $1}'); do
    hunt "model_$m" fuzz_model_step cpu --model-mutant "$m" corpus/fuzz_model_step
  done
  cat "$final/mutant_hunts.jsonl"
  echo quit | nvidia-cuda-mps-control 2>/dev/null
fi
if [[ "$modes" == *" multigpu "* ]]; then
  nvidia-smi -L | tee "$out/gpus.txt"
  nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv -l 2 > "$out/gpu_use.csv" &
  smi=$!
  run multi_run_all "$bin"/attncheck run --backend cuda --devices all --seconds "${MULTI_SECONDS:-45}" --seed 21 \
    --out "$out/multi_counterexamples"
  run multi_run_one "$bin"/attncheck run --backend cuda --seconds "${MULTI_SECONDS:-45}" --seed 21 \
    --out "$out/one_counterexamples"
  nvidia-cuda-mps-control -d 2>/dev/null && echo "MPS daemon started"
  run multi_fuzz "$bin"/attncheck campaign --dir "$out/multi_fuzz" --fuzzer "$bin"/fuzz_attention_cases --backend cuda \
    --devices all --seed-corpus corpus/fuzz_attention_cases --seconds 70 --round-seconds 70 --workers 6
  echo quit | nvidia-cuda-mps-control 2>/dev/null
  kill "$smi"
  cp "$out/gpu_use.csv" "$out/multi_run_all.log" "$out/multi_run_one.log" "$out/multi_fuzz.log" "$out/multi_fuzz/status.json" "$final/"
fi
if [[ "$modes" == *" long "* ]]; then
  STEP_TIMEOUT=$(( ${LONG_SECONDS:-540} + 50 )) run long_run_cuda "$bin"/attncheck run --backend cuda \
    --seconds "${LONG_SECONDS:-540}" --seed "${LONG_SEED:-7}" --out "$final/long_run_counterexamples"
  cp "$out/long_run_cuda.log" "$final/"
fi
cp "$out/environment.txt" "$final/"
grep -H -E "^(cuda/|=+ (ERROR|RACECHECK) SUMMARY|\[  (PASSED|FAILED) )" "$out"/*.log > "$final/summary.txt" 2>/dev/null
tar -czf "$final/gpu_lane_logs.tar.gz" -C "$out" .
exit $rc
