#!/usr/bin/env bash
# What moves the CUDA checking rate: runs `attncheck bench throughput` once
# per configuration line and prints one summary line each, so one device
# call compares worker counts, processes, environment settings (such as
# CUDA_DEVICE_MAX_CONNECTIONS, or an MPS daemon) and case sizes side by side.
# Usage: bench/throughput_probe.sh ATTNCHECK_BIN SECONDS CONFIG_FILE
#   CONFIG_FILE: lines "label;ENV=V ENV2=V2;extra attncheck args" ('#' comments).
# Writes $OUT/throughput_probe.tar.gz (each configuration's JSON and log) and
# the table to stdout.
set -uo pipefail
bin="$1" seconds="$2" configs="$3"
out="${OUT:-.}"
work="$(mktemp -d)" # the device tool brings back few files: one tarball of them all
trap 'tar -C "$work" -czf "$out/throughput_probe.tar.gz" .' EXIT
printf '%-28s %9s %8s %8s %s\n' label cases/s cases workers phases
while IFS=';' read -r label envs args; do
  [[ -z "$label" || "$label" == \#* ]] && continue
  f="$work/probe_$label.json"
  # shellcheck disable=SC2086
  env $envs "$bin" bench throughput --backend cuda --seconds "$seconds" --json $args > "$f" 2> "$work/probe_$label.log"
  python3 - "$f" "$label" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"{sys.argv[2]:28} failed: {e}")
    sys.exit(0)
n = max(j["cases"], 1)
ph = " ".join(f"{k}={1e3 * v / n:.2f}ms"
              for k, v in j["phase_seconds"].items() if v > 0.01 * j["seconds"])
runs = j.get("phase_entries", {}).get("target", 0) / n
calls = j.get("cuda_calls_per_case", 0)
print(f"{sys.argv[2]:28} {j['cases_per_s']:9.1f} {j['cases']:8d} {j['workers']:8d} runs/case={runs:.1f} calls/case={calls:.0f} {ph} fail={j['failures']}")
PY
done < "$configs"
