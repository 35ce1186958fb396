#!/usr/bin/env python3
"""PyTorch's SDPA backends timed at attncheck's anchor shapes, the way
`attncheck bench kernels` times its own families: uniform inputs in [-1, 1)
on the device, warm-up calls, then the median of CUDA-event timings around
each call (so PyTorch's dispatch is inside the figure, as in anchors.md).

The shapes come from `attncheck bench kernels --print-shapes` (written once,
in app/bench_kernels.cpp). Prints one JSON object that `attncheck bench
kernels --anchors FILE` reads:
  {"device": ..., "torch": ..., "timings": [{"shape", "dtype", "backend", "us"}]}
backend is "cudnn", "flash" (FlashAttention-2) or "efficient"; a backend
that refuses a shape is listed with "error" and no "us".

Usage: python3 bench/sdpa_kernels.py --shapes shapes.json [--reps 50]
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def inputs(s):
    dt = DTYPES[s["dtype"]]
    q_len = s["len"] if s["prefill"] else 1

    def u(*shape):
        return (torch.rand(*shape, device="cuda", dtype=torch.float32) * 2 - 1).to(dt)

    q = u(s["batch"], s["hq"], q_len, s["d"])
    k = u(s["batch"], s["hkv"], s["len"], s["d"])
    v = u(s["batch"], s["hkv"], s["len"], s["d"])
    return q, k, v


def time_backend(s, backend, reps, warmup):
    q, k, v = inputs(s)
    gqa = s["hq"] != s["hkv"]

    def call():
        return F.scaled_dot_product_attention(q, k, v, is_causal=s["causal"], enable_gqa=gqa)

    with sdpa_kernel([BACKENDS[backend]]):
        for _ in range(warmup):
            call()
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) * 1000.0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", required=True, help="output of attncheck bench kernels --print-shapes")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    with open(a.shapes) as f:
        shapes = json.load(f)
    out = []
    for s in shapes:
        for backend in BACKENDS:
            row = {"shape": s["shape"], "dtype": s["dtype"], "backend": backend}
            try:
                row["us"] = time_backend(s, backend, a.reps, a.warmup)
            except RuntimeError as e:  # the backend refuses the shape
                row["error"] = str(e).splitlines()[0][:200]
            out.append(row)
            torch.cuda.empty_cache()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "timings": out}, indent=2))


if __name__ == "__main__":
    main()
