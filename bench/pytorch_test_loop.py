#!/usr/bin/env python3
"""The baseline attncheck's throughput is put beside: a plain randomized
PyTorch test loop, as people write one (anchors.md: 24 cases/s on an H200).

Each case: a random GQA shape (batch, q heads over kv heads, head_dim, query
and key lengths, causal or not), fp16 inputs, torch's scaled_dot_product_attention
(enable_gqa), an fp64 reference computed from the same fp16 inputs, and
torch.testing.assert_close with fp16 tolerances. Prints one JSON object:
{"cases_per_s": ..., "cases": ..., "seconds": ..., "device": ...}.

Usage: python3 bench/pytorch_test_loop.py [--seconds 30] [--seed 1]
"""
import argparse
import json
import math
import random
import time

import torch
import torch.nn.functional as F


def reference(q, k, v, causal):
    # fp64, GQA by repeating kv heads, bottom-right causal alignment.
    q, k, v = q.double(), k.double(), v.double()
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        lq, lk = q.shape[2], k.shape[2]
        i = torch.arange(lq, device=q.device)[:, None]
        j = torch.arange(lk, device=q.device)[None, :]
        s = s.masked_fill(j > i + (lk - lq), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def one_case(rng, device):
    kv_heads = rng.choice([1, 2, 4, 8])
    q_heads = kv_heads * rng.choice([1, 2, 4, 7])
    d = rng.choice([32, 64, 80, 96, 128])
    b = rng.randint(1, 4)
    lk = rng.randint(1, 512)
    lq = rng.randint(1, lk)
    causal = rng.random() < 0.5
    q = torch.randn(b, q_heads, lq, d, device=device, dtype=torch.float16)
    k = torch.randn(b, kv_heads, lk, d, device=device, dtype=torch.float16)
    v = torch.randn(b, kv_heads, lk, d, device=device, dtype=torch.float16)
    # SDPA's is_causal is top-left aligned; the lower-right bias is what
    # attncheck's convention (and decode) means.
    if causal and lq != lk:
        from torch.nn.attention.bias import causal_lower_right
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(lq, lk), enable_gqa=True)
    else:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    ref = reference(q, k, v, causal)
    torch.testing.assert_close(out.double(), ref, atol=2e-3, rtol=2e-3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rng = random.Random(a.seed)
    torch.manual_seed(a.seed)
    for _ in range(3):  # warm-up: kernels, handles
        one_case(rng, device)
    n, failures, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        try:
            one_case(rng, device)
        except AssertionError:
            failures += 1
        n += 1
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(json.dumps({"cases_per_s": n / dt, "cases": n, "failures": failures, "seconds": dt,
                      "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}))


if __name__ == "__main__":
    main()
