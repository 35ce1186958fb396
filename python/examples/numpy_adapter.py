#!/usr/bin/env python3
"""A whole attncheck adapter: attention in numpy float64, rounded to fp32.

    attncheck run --backend cpu --external "python3 python/examples/numpy_adapter.py"

With --scale-twice it applies the softmax scale twice, a bug attncheck
must catch (tests/CMakeLists.txt checks both ways). With --one-at-a-time it
declares max_batch 1, so attncheck sends a run message per run instead of
run_batch messages.
"""
import sys

import numpy as np

from attncheck_adapter import serve

SCALE_TWICE = "--scale-twice" in sys.argv
MAX_BATCH = 1 if "--one-at-a-time" in sys.argv else 16


def run(problem, q, k, v):
    hq, hkv, d = problem["n_q_heads"], problem["n_kv_heads"], problem["head_dim"]
    scale = problem["scale"] * (problem["scale"] if SCALE_TWICE else 1.0)
    o = np.zeros(q.shape, dtype=np.float64)
    lse = np.full(q.shape[:2], -np.inf)
    q0 = k0 = 0
    for ql, kl in zip(problem["q_lens"], problem["kv_lens"]):
        for t in range(ql):
            pos = kl - ql + t  # bottom-right causal alignment
            j = np.arange(kl)
            visible = np.ones(kl, bool)
            if problem["causal"]:
                visible = j <= pos
                if problem["window"] > 0:
                    visible &= j > pos - problem["window"]
            if not visible.any():
                continue  # O = 0, LSE = -inf
            for h in range(hq):
                g = h // (hq // hkv)
                s = scale * (k[k0:k0 + kl, g].astype(np.float64) @ q[q0 + t, h].astype(np.float64))
                s = s[visible]
                m = s.max()
                e = np.exp(s - m)
                o[q0 + t, h] = (e / e.sum()) @ v[k0:k0 + kl, g][visible].astype(np.float64)
                lse[q0 + t, h] = m + np.log(e.sum())
        q0 += ql
        k0 += kl
    return o.astype(np.float32), lse.astype(np.float32)


serve(run, {
    "name": "numpy_scale_twice" if SCALE_TWICE else "numpy_fp64",
    "dtypes": ["fp32", "fp16", "bf16"],
    "head_dims": "any",
    "causal": True, "window": True, "gqa": True,
    "batch_invariant": True,  # every row computed on its own
    "max_batch": MAX_BATCH,
    # float64 throughout, then one rounding to fp32: plain fp32 is an upper bound.
    "profile": {"u_acc": 2.0 ** -24, "exp_ulps": 2},
})
