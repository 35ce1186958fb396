#!/usr/bin/env python3
"""A whole model adapter: a Llama/Qwen2 decoder with a KV cache per slot, in
numpy float64, logits rounded to fp32 once at the end.

    attncheck run --target model --external "python3 python/examples/numpy_model_adapter.py"

It reads the checkpoint attncheck writes (config.json, model.safetensors),
and takes rotate_half RoPE without scaling or with linear scaling.

With --bug NAME it carries a bug attncheck must catch (tests/CMakeLists.txt
checks each):
  rope-restart  RoPE positions restart at 0 in every call, as if the cache
                were empty: a cache-position bug that a one-shot prefill never
                shows (gate decode_prefill);
  no-qkv-bias   the Q/K/V biases of a Qwen2 checkpoint are ignored (gate logits).
"""
import sys

import numpy as np

from attncheck_adapter import Unsupported, read_checkpoint, serve_model

BUG = sys.argv[sys.argv.index("--bug") + 1] if "--bug" in sys.argv else None


def rms_norm(x, g, eps):
    return g * x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)


class Decoder:
    def __init__(self, cfg, folder, slots):
        _, w = read_checkpoint(folder)
        self.w = {k: v.astype(np.float64) for k, v in w.items()}
        self.layers = cfg["num_hidden_layers"]
        self.hq, self.hkv, self.d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.eps = cfg["rms_norm_eps"]
        self.inv_freq = 1.0 / cfg["rope_theta"] ** (np.arange(0, self.d, 2) / self.d)
        rs = cfg.get("rope_scaling")
        if rs:
            kind = rs.get("rope_type", rs.get("type"))
            if kind != "linear":
                raise Unsupported(f"rope scaling {kind}")
            self.inv_freq = self.inv_freq / rs["factor"]
        self.lm_head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])
        self.cache = [None] * slots  # per slot: per layer [K, V], each [len, hkv, d]

    def reset(self, seq):
        self.cache[seq] = None

    def rope(self, x, pos):  # rotate_half: channel c pairs with c + d/2
        ang = pos[:, None] * self.inv_freq[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        h = self.d // 2
        x1, x2 = x[..., :h], x[..., h:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        bias = self.w.get(name + ".bias")
        return y if bias is None or BUG == "no-qkv-bias" else y + bias

    def forward(self, batch):
        out = []
        for chunk in batch:
            s, toks = chunk["seq"], np.array(chunk["tokens"])
            if self.cache[s] is None:
                self.cache[s] = [[np.zeros((0, self.hkv, self.d))] * 2 for _ in range(self.layers)]
            n, past = len(toks), self.cache[s][0][0].shape[0]
            pos = np.arange(n) + (0 if BUG == "rope-restart" else past)
            x = self.w["model.embed_tokens.weight"][toks]
            for li in range(self.layers):
                p = f"model.layers.{li}."
                h = rms_norm(x, self.w[p + "input_layernorm.weight"], self.eps)
                q = self.rope(self.linear(h, p + "self_attn.q_proj").reshape(n, self.hq, self.d), pos)
                k = self.rope(self.linear(h, p + "self_attn.k_proj").reshape(n, self.hkv, self.d), pos)
                v = self.linear(h, p + "self_attn.v_proj").reshape(n, self.hkv, self.d)
                K = np.concatenate([self.cache[s][li][0], k])
                V = np.concatenate([self.cache[s][li][1], v])
                self.cache[s][li] = [K, V]
                att = np.zeros((n, self.hq, self.d))
                visible = np.arange(past + n)[None, :] <= (past + np.arange(n))[:, None]
                for hd in range(self.hq):
                    g = hd // (self.hq // self.hkv)
                    sc = np.where(visible, q[:, hd] @ K[:, g].T / np.sqrt(self.d), -np.inf)
                    e = np.exp(sc - sc.max(-1, keepdims=True))
                    att[:, hd] = (e / e.sum(-1, keepdims=True)) @ V[:, g]
                x = x + self.linear(att.reshape(n, -1), p + "self_attn.o_proj")
                h = rms_norm(x, self.w[p + "post_attention_layernorm.weight"], self.eps)
                gate, up = self.linear(h, p + "mlp.gate_proj"), self.linear(h, p + "mlp.up_proj")
                x = x + self.linear(gate / (1 + np.exp(-gate)) * up, p + "mlp.down_proj")
            out.append(rms_norm(x, self.w["model.norm.weight"], self.eps) @ self.lm_head.T)
        return np.concatenate(out).astype(np.float32)


serve_model(Decoder, {
    "name": f"numpy_model_{BUG.replace('-', '_')}" if BUG else "numpy_model_fp64",
    "archs": ["llama", "qwen2"],
    "dtypes": ["fp32"],
    "rope_scalings": ["none", "linear"],
    # float64 throughout, then one rounding: transformers' fp32 precision is an upper bound.
    "precision": "fp32",
})
