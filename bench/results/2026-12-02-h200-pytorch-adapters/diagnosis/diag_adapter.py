"""Diagnosis only (not committed): torch_sdpa's adapter, and for every run
the fp64 reference, the largest |O - ref|, and the softmax mass below fp16's
normal range (2^-14) and below half its smallest subnormal (2^-25)."""
import json, sys
import numpy as np
import torch
from attncheck_adapter import serve
from attncheck_adapter import torch_sdpa as ts

backend = sys.argv[sys.argv.index("--backend") + 1]
base = ts.make_run(backend)
n = [0]

def run(problem, q, k, v):
    o, lse = base(problem, q, k, v)
    o = o.detach().cpu().numpy()
    hq, hkv = problem["n_q_heads"], problem["n_kv_heads"]
    q0 = k0 = 0
    worst = (0, None)
    for si, (ql, kl) in enumerate(zip(problem["q_lens"], problem["kv_lens"])):
        if ql and kl:
            qs = torch.tensor(q[q0:q0+ql], dtype=torch.float64).transpose(0, 1)
            ks = torch.tensor(k[k0:k0+kl], dtype=torch.float64).transpose(0, 1).repeat_interleave(hq // hkv, 0)
            vs = torch.tensor(v[k0:k0+kl], dtype=torch.float64).transpose(0, 1).repeat_interleave(hq // hkv, 0)
            s = qs @ ks.transpose(-1, -2) * problem["scale"]
            vis = ts.visible_mask(ql, kl, problem["causal"], problem["window"], "cpu")
            s = s.masked_fill(~vis, float("-inf"))
            p = torch.softmax(s, -1).nan_to_num(0.0)
            ref = (p @ vs).transpose(0, 1).numpy()
            err = np.nanmax(np.abs(o[q0:q0+ql] - ref)) if ref.size else 0
            if err >= worst[0] or worst[1] is None:
                sub = (p * (p < 2**-14)).sum(-1).max().item()
                tiny = (p * (p < 2**-25)).sum(-1).max().item()
                i = np.unravel_index(np.nanargmax(np.abs(o[q0:q0+ql] - ref)), ref.shape) if ref.size else None
                worst = (err, dict(seq=si, err=float(err), at=[int(x) for x in i] if i else None,
                                   o=float(o[q0:q0+ql][i]) if i else None, ref=float(ref[i]) if i else None,
                                   mass_below_fp16_normal=sub, mass_below_half_subnormal=tiny,
                                   visible=int(vis.sum()), smax=float(s[~torch.isinf(s)].abs().max()) if vis.any() else 0))
        q0 += ql; k0 += kl
    n[0] += 1
    print(json.dumps({"run": n[0], "shape": {k_: problem[k_] for k_ in ("q_lens", "kv_lens", "head_dim", "dtype", "causal", "window")}, "worst": worst[1]}), file=sys.stderr)
    return o, lse

caps = {"name": f"torch_sdpa_{backend}", "dtypes": ts.BACKENDS[backend][1], "head_dims": "any",
        "causal": True, "window": True, "gqa": True, "batch_invariant": True, "max_batch": 1,
        "profile": {"u_acc": 2.0 ** -24, "exp_ulps": 4}, "profiles": ts.profiles(backend, ts.BACKENDS[backend][1])}
serve(run, caps)
