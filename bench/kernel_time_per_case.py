#!/usr/bin/env python3
"""GPU time per checked case, by kernel, from Nsight Compute.

Runs `attncheck run --backend cuda --cases N --workers 1 --target T` under
`ncu --metrics gpu__time_duration.sum` for each target and prints, per
target, the summed kernel time per case split into the target's own kernels,
the GPU oracle and the guard-band checks. Against the wall time per case of
a one-worker run this says whether the GPU or the host bounds a worker.

Usage: bench/kernel_time_per_case.py ATTNCHECK [--cases N]
"""
import argparse
import collections
import csv
import io
import subprocess
import sys

p = argparse.ArgumentParser()
p.add_argument("attncheck")
p.add_argument("--cases", type=int, default=10)
a = p.parse_args()
for t in ["decode", "decode_gqa", "decode_split", "flash_prefill", "standard_path"]:
    cmd = ["ncu", "--clock-control", "none", "--metrics", "gpu__time_duration.sum", "--csv", "--print-units", "base",
           a.attncheck, "run", "--backend", "cuda", "--cases", str(a.cases), "--workers", "1", "--target", t]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rows = [l for l in out.splitlines() if l.startswith('"')]
    by = collections.Counter()
    n = 0
    for r in csv.DictReader(io.StringIO("\n".join(rows))):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = r["Kernel Name"]
        kind = "oracle" if "oracle_kernel" in name else "guard check" if "guard_check" in name else "target"
        by[kind] += float(r["Metric Value"].replace(",", "")) * 1e-6  # ns (thousands separated) -> ms
        n += 1
    total = sum(by.values())
    print(f"{t:14} {n:6} kernels, GPU ms per case: total {total / a.cases:8.3f}  " +
          "  ".join(f"{k} {v / a.cases:.3f}" for k, v in sorted(by.items())))
    sys.stdout.flush()
