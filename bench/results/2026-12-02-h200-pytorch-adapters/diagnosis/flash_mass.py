"""Diagnosis only: SDPA (each backend), one query, 259 keys of which 21 tie
at the row max and the rest lie far below, V constant -4: O should be -4.
Swept over the score magnitude |s|, fp16, d = 1 and 8."""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
for d in (1, 8, 64):
    for mag in (1e2, 1e3, 1e4, 3e4, 1e5, 3.3e5, 1e6):
        a = (mag ** 0.5)
        q = torch.zeros(1, 1, 1, d, dtype=torch.float16, device="cuda"); q[..., 0] = a
        k = torch.zeros(1, 1, 259, d, dtype=torch.float16, device="cuda"); k[..., 0] = -a
        idx = torch.arange(0, 259, 12)[:21]
        k[0, 0, idx, 0] = a
        v = torch.full((1, 1, 259, d), -4.0, dtype=torch.float16, device="cuda")
        row = []
        for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                         ("cudnn", SDPBackend.CUDNN_ATTENTION), ("math", SDPBackend.MATH)):
            try:
                with sdpa_kernel([be]):
                    o = F.scaled_dot_product_attention(q, k, v, scale=1.0)
                row.append(f"{name} {o[0,0,0,0].item():+.6f}")
            except RuntimeError as e:
                row.append(f"{name} refused")
        s = float(q[...,0].float() * k[0,0,idx[0],0].float())
        print(f"d={d:3d} |s|={s:9.4g}: " + "  ".join(row))
