"""PyTorch FlexAttention as an attncheck target, compiled as people run it:

    PYTHONPATH=python attncheck run --backend cpu --workers 4 \\
        --external "python3 -m attncheck_adapter.torch_flex"

A case is one flex_attention call. Its sequences are packed into one
[1, H, T, d] tensor, as varlen users of FlexAttention do, and a document
mask keeps each query inside its own sequence: the mask_mod reads per-token
sequence ids and positions from tensors, so one compiled kernel serves every
mask of a shape. Causal masks align bottom-right (a query at row t of a
sequence with q_len queries and kv_len keys sits at position
t + kv_len - q_len); a window hides keys j <= pos - window. GQA is
enable_gqa. LSE is FlexAttention's own (natural log), so every gate reads
the implementation under test.

T is padded to a power of two (at least 128, FlexAttention's block), so the
block masks line up with whole blocks and torch.compile meets few lengths
(after its first recompile it makes them dynamic, as it does for users):
padding queries belong to no sequence, see no key, and are dropped. A shape the kernel refuses (a head dim Triton cannot
tile, say) makes the case unsupported with the error, and the refusal is
remembered for that shape so it is not compiled again.

--mode eager runs flex_attention uncompiled: PyTorch's reference path, a
materialized score matrix, slow; compiled (the default) is the Triton kernel.

Profiles, as for torch_sdpa: fp16/bf16 on tensor cores (fp32 accumulation,
P rounded to the input dtype before P.V, O stored in it); fp32 as plain fp32
(PyTorch's default float32 matmul precision keeps Triton's dots in IEEE fp32).
"""
import argparse

import numpy as np
import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from attncheck_adapter import DEFAULT_MAX_BATCH, Unsupported, serve
from attncheck_adapter.torch_sdpa import TORCH_DTYPES, profiles, to_device

DTYPES = ["fp32", "fp16", "bf16"]


def padded(n):
    """The power of two >= max(n, 128): FlexAttention's block is 128 tokens."""
    p = 128
    while p < n:
        p *= 2
    return p


def token_tables(lens_q, lens_kv, tq, tk, device):
    """Per token: sequence id (-1 for padding) and position in its sequence's
    key coordinates (bottom-right aligned for queries)."""
    q_doc = np.full(tq, -1, np.int32)
    q_pos = np.zeros(tq, np.int32)
    kv_doc = np.full(tk, -1, np.int32)
    kv_pos = np.zeros(tk, np.int32)
    q0 = k0 = 0
    for s, (ql, kl) in enumerate(zip(lens_q, lens_kv)):
        q_doc[q0:q0 + ql] = s
        q_pos[q0:q0 + ql] = np.arange(ql) + (kl - ql)
        kv_doc[k0:k0 + kl] = s
        kv_pos[k0:k0 + kl] = np.arange(kl)
        q0 += ql
        k0 += kl
    return [torch.from_numpy(a).to(device) for a in (q_doc, q_pos, kv_doc, kv_pos)]


def make_run(mode):
    attend = flex_attention if mode == "eager" else torch.compile(flex_attention)
    refused = {}  # shape key -> reason: a kernel that did not compile once will not compile again

    def run(problem, q, k, v):
        dt = TORCH_DTYPES[problem["dtype"]]
        hq, hkv, d = problem["n_q_heads"], problem["n_kv_heads"], problem["head_dim"]
        causal, window = bool(problem["causal"]), int(problem["window"])
        tq, tk = padded(q.shape[0]), padded(k.shape[0])
        key = (problem["dtype"], hq, hkv, d, tq, tk, causal, window > 0)
        if key in refused:
            raise Unsupported(refused[key])
        if q.shape[0] == 0 or k.shape[0] == 0:
            # nothing to attend: O = 0, LSE = -inf by the protocol
            return np.zeros(q.shape, np.float32), np.full(q.shape[:2], -np.inf, np.float32)
        dev = "cuda"

        def packed(x, t):  # [total, H, d] -> [1, H, t, d], zero padding
            out = torch.zeros(1, x.shape[1], t, d, dtype=dt, device=dev)
            out[0, :, :x.shape[0]] = to_device(x, dt).transpose(0, 1)
            return out

        qt, kt, vt = packed(q, tq), packed(k, tk), packed(v, tk)
        q_doc, q_pos, kv_doc, kv_pos = token_tables(problem["q_lens"], problem["kv_lens"], tq, tk, dev)
        win = torch.tensor(window, dtype=torch.int32, device=dev)

        def mask_mod(b, h, qi, ki):
            m = (q_doc[qi] == kv_doc[ki]) & (q_doc[qi] >= 0)
            if causal:
                m = m & (kv_pos[ki] <= q_pos[qi])
                if window > 0:
                    m = m & (kv_pos[ki] > q_pos[qi] - win)
            return m

        try:
            block_mask = create_block_mask(mask_mod, None, None, tq, tk, device=dev)
            out, l2 = attend(qt, kt, vt, block_mask=block_mask, scale=problem["scale"],
                             enable_gqa=hq != hkv, return_lse=True)
        except Exception as e:  # noqa: BLE001 - a refused shape: compile or launch errors alike
            reason = f"torch flex_attention ({mode}): " + " ".join(f"{type(e).__name__}: {e}".split())[:300]
            refused[key] = reason
            raise Unsupported(reason) from None
        n_q = q.shape[0]
        # Device tensors: serve copies them to the host after the whole batch is queued.
        return out[0, :, :n_q].transpose(0, 1), l2[0, :, :n_q].transpose(0, 1)

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["compiled", "eager"], default="compiled")
    ap.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                    help="runs per run_batch message (1: one message a run)")
    ap.add_argument("--no-cuda-ipc", action="store_true",
                    help="tensors through the pipes even where attncheck could share its GPU buffer")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("torch_flex adapter: needs a CUDA device")
    # Many shapes meet one compiled function: let it keep them all.
    for name in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                 "accumulated_recompile_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 4096)
    serve(make_run(a.mode), {
        "name": f"torch_flex_{a.mode}",
        "dtypes": DTYPES,
        "head_dims": "any",  # the kernel's own refusal makes a case unsupported
        "causal": True, "window": True, "gqa": True,
        # Sequences share one call, and Triton's tiles do not depend on the neighbours'
        # values, but attncheck need not take that on trust: no promise made.
        "batch_invariant": False,
        "max_batch": a.max_batch,
        "cuda_ipc": not a.no_cuda_ipc,
        "profile": {"u_acc": 2.0 ** -24, "exp_ulps": 4},
        "profiles": profiles("flex", DTYPES),
    })


if __name__ == "__main__":
    main()
