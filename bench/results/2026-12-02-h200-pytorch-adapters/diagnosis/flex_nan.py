"""Diagnosis only: does FlexAttention let NaN in another document's K/V reach
a row under a document mask?"""
import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention
attend = torch.compile(flex_attention)
for qa, ka in [(4, 4), (1, 0), (100, 100)]:
    qb, kb = 1, 64
    tq, tk = 128, 128
    d = 16
    q = torch.randn(1, 1, tq, d, device="cuda"); k = torch.randn(1, 1, tk, d, device="cuda"); v = torch.randn(1, 1, tk, d, device="cuda")
    q[0, 0, qa:qa+qb] = float("nan"); k[0, 0, ka:ka+kb] = float("nan"); v[0, 0, ka:ka+kb] = float("nan")
    qd = torch.full((tq,), -1, device="cuda"); qd[:qa] = 0; qd[qa:qa+qb] = 1
    kd = torch.full((tk,), -1, device="cuda"); kd[:ka] = 0; kd[ka:ka+kb] = 1
    def mm(b, h, i, j): return (qd[i] == kd[j]) & (qd[i] >= 0)
    bm = create_block_mask(mm, None, None, tq, tk, device="cuda")
    o, lse = attend(q, k, v, block_mask=bm, return_lse=True)
    print(f"doc A q={qa} kv={ka}: NaN rows in A: {int(o[0,0,:qa].isnan().any(-1).sum())}/{qa}; A row0 O[:3]={o[0,0,0,:3].tolist()} lse={lse[0,0,0].item()}")
