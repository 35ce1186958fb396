"""PyTorch's scaled_dot_product_attention as an attncheck target, with one
SDPA backend forced (flash, efficient, cudnn or math):

    PYTHONPATH=python attncheck run --backend cpu --workers 4 \\
        --external "python3 -m attncheck_adapter.torch_sdpa --backend flash"

Each sequence of a case is one SDPA call on the GPU: [1, H, L, d] tensors
in the case's dtype; a causal mask is PyTorch's lower-right bias
(torch.nn.attention.bias.causal_lower_right, attncheck's bottom-right
alignment); a causal window is a boolean mask; GQA is enable_gqa. A backend
that refuses a shape ("No available kernel") makes the case unsupported,
with PyTorch's reason.

O is the backend's. SDPA's public API returns no LSE, so the LSE sent back
is computed here, in fp32, from the same inputs and mask: gates that read
LSE check this computation, gates on O check the backend.

Conventions of the adapter, not of SDPA: an empty cache (kv_len 0) gets
O = 0 and LSE = -inf without a call. A query that sees no key gets whatever
the backend returns, so attncheck's fully_masked gate judges the backend.

The profiles declare where each backend rounds (docs/adapter-protocol.md):
fp16/bf16 run on tensor cores (fp32 accumulation that may truncate: u_acc
2^-23) with P rounded to the input dtype before P.V and O stored in it; the
math backend is declared to store S in the input dtype as well. fp32 is
declared as plain fp32 (no TF32).
"""
import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

from attncheck_adapter import DEFAULT_MAX_BATCH, Unsupported, serve

BACKENDS = {
    "flash": (SDPBackend.FLASH_ATTENTION, ["fp16", "bf16"]),
    "efficient": (SDPBackend.EFFICIENT_ATTENTION, ["fp32", "fp16", "bf16"]),
    "cudnn": (SDPBackend.CUDNN_ATTENTION, ["fp16", "bf16"]),
    "math": (SDPBackend.MATH, ["fp32", "fp16", "bf16"]),
}
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def profiles(backend, dtypes):
    out = {}
    for dt in dtypes:
        if dt == "fp32":
            out[dt] = {"u_acc": 2.0 ** -24, "exp_ulps": 4, "kv_tile": 64}
        else:
            out[dt] = {"u_acc": 2.0 ** -23, "probs_stored": True, "store": dt, "output": dt,
                       "exp_ulps": 4, "kv_tile": 64, "scores_stored": backend == "math"}
    return out


def to_device(x, dt):
    """A protocol tensor on the GPU in dtype dt: a numpy array from the pipe,
    or a CUDA tensor in attncheck's buffer (CUDA IPC)."""
    if isinstance(x, torch.Tensor):
        return x.to(device="cuda", dtype=dt)
    return torch.tensor(x, device="cuda").to(dt)


def visible_mask(q_len, kv_len, causal, window, device):
    """[q_len, kv_len] booleans: True where the query sees the key."""
    pos = torch.arange(q_len, device=device)[:, None] + (kv_len - q_len)
    j = torch.arange(kv_len, device=device)[None, :]
    m = torch.ones(q_len, kv_len, dtype=torch.bool, device=device)
    if causal:
        m &= j <= pos
        if window > 0:
            m &= j > pos - window
    return m


def make_run(backend):
    sdp_backend, _ = BACKENDS[backend]

    def run(problem, q, k, v):
        dt = TORCH_DTYPES[problem["dtype"]]
        hq, hkv, d = problem["n_q_heads"], problem["n_kv_heads"], problem["head_dim"]
        scale, causal, window = problem["scale"], problem["causal"], problem["window"]
        # Results stay on the device: serve copies them to the host once a
        # whole batch of runs is queued.
        o = torch.zeros(q.shape, dtype=torch.float32, device="cuda")
        lse = torch.full(q.shape[:2], float("-inf"), dtype=torch.float32, device="cuda")
        # Exact: the values are representable in the case's dtype (the protocol's promise).
        qt, kt, vt = (to_device(x, dt) for x in (q, k, v))
        q0 = k0 = 0
        for ql, kl in zip(problem["q_lens"], problem["kv_lens"]):
            if ql > 0 and kl > 0:
                qs = qt[q0:q0 + ql].transpose(0, 1).unsqueeze(0)  # [1, Hq, ql, d]
                ks = kt[k0:k0 + kl].transpose(0, 1).unsqueeze(0)  # [1, Hkv, kl, d]
                vs = vt[k0:k0 + kl].transpose(0, 1).unsqueeze(0)
                vis = visible_mask(ql, kl, causal, window, qt.device)
                if causal and window > 0:
                    mask = vis
                elif causal:
                    mask = causal_lower_right(ql, kl)
                else:
                    mask = None
                try:
                    with sdpa_kernel([sdp_backend]):
                        out = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale,
                                                             enable_gqa=hq != hkv)
                except RuntimeError as e:  # the forced backend refuses the shape, mask or dtype
                    raise Unsupported(f"torch sdpa {backend}: " + " ".join(str(e).split())[:300]) from None
                o[q0:q0 + ql] = out[0].transpose(0, 1).float()
                # LSE in fp32 from the same (rounded) inputs: the public API returns none.
                kf = ks.float().repeat_interleave(hq // hkv, dim=1)
                s = (qs.float() @ kf.transpose(-1, -2)) * scale
                s = s.masked_fill(~vis, float("-inf"))
                lse[q0:q0 + ql] = torch.logsumexp(s, dim=-1)[0].transpose(0, 1)
            q0 += ql
            k0 += kl
        return o, lse

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=sorted(BACKENDS), required=True)
    ap.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                    help="runs per run_batch message (1: one message a run)")
    ap.add_argument("--no-cuda-ipc", action="store_true",
                    help="tensors through the pipes even where attncheck could share its GPU buffer")
    a = ap.parse_args()
    _, dtypes = BACKENDS[a.backend]
    if not torch.cuda.is_available():
        raise SystemExit("torch_sdpa adapter: needs a CUDA device")
    serve(make_run(a.backend), {
        "name": f"torch_sdpa_{a.backend}",
        "dtypes": dtypes,
        "head_dims": "any",  # a backend's own refusal makes a case unsupported
        "causal": True, "window": True, "gqa": True,
        "batch_invariant": True,  # one SDPA call per sequence: no sequence sees its neighbours
        "max_batch": a.max_batch,
        "cuda_ipc": not a.no_cuda_ipc,
        "profile": {"u_acc": 2.0 ** -24, "exp_ulps": 4},
        "profiles": profiles(a.backend, dtypes),
    })


if __name__ == "__main__":
    main()
