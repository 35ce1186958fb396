"""transformers' Llama and Qwen2 decoders as an attncheck model target:

    PYTHONPATH=python attncheck run --target model \\
        --external "python3 -m attncheck_adapter.transformers_model"

For every random model case attncheck writes a checkpoint (config.json,
model.safetensors) and this adapter loads it with
AutoModelForCausalLM.from_pretrained, as people load real ones. Each KV slot
is a DynamicCache; a call's chunks run one after another, each a forward
with its slot's cache and explicit positions (cache length + i). Logits come
back in fp32.

fp32 only, as attncheck judges it (transformers' fp32 precision,
docs/model-error-model.md): weights and activations in fp32, TF32 off.
--attn picks transformers' attention implementation (eager, the default,
or sdpa); --device cuda (the default when there is a GPU) or cpu.
"""
import argparse

import numpy as np
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from attncheck_adapter import serve_model


class HFDecoder:
    def __init__(self, folder, slots, device, attn):
        try:
            m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation=attn)
        except TypeError:  # transformers 4: torch_dtype
            m = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation=attn)
        self.model = m.to(device).eval()
        self.device = device
        self.caches = [None] * slots
        self.lens = [0] * slots

    def reset(self, seq):
        self.caches[seq] = None
        self.lens[seq] = 0

    @torch.no_grad()
    def forward(self, batch):
        out = []
        for chunk in batch:
            s, toks = chunk["seq"], chunk["tokens"]
            if self.caches[s] is None:
                try:
                    self.caches[s] = DynamicCache(config=self.model.config)
                except TypeError:
                    self.caches[s] = DynamicCache()
            pos = torch.arange(self.lens[s], self.lens[s] + len(toks), device=self.device)
            r = self.model(input_ids=torch.tensor([toks], device=self.device), position_ids=pos[None, :],
                           cache_position=pos, past_key_values=self.caches[s], use_cache=True)
            self.caches[s] = r.past_key_values
            self.lens[s] += len(toks)
            out.append(r.logits[0].float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    # fp32 means fp32: no TF32 in matmuls or convolutions.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    serve_model(lambda cfg, folder, slots: HFDecoder(folder, slots, a.device, a.attn), {
        "name": f"transformers_{a.attn}_{a.device}",
        "archs": ["llama", "qwen2"],
        "dtypes": ["fp32"],
        "rope_scalings": ["none", "linear", "llama3", "yarn"],
        "precision": "fp32",
        "hidden_divisible_by_heads": True,  # transformers' config validation insists
    })


if __name__ == "__main__":
    main()
