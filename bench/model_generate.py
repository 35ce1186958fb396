#!/usr/bin/env python3
"""The baseline `attncheck bench model` is put beside: transformers' greedy
`generate` on a Qwen2 model of the Qwen2.5-0.5B shape with random weights
(anchors.md: 54.1 ms/token eager, batch 1, bf16, on an H200).

The model is built from a Qwen2Config with the shape `attncheck bench model
--preset qwen2.5-0.5b-shape` uses (24 layers, hidden 896, 14/2 heads of 64,
FFN 4864, vocab 151936, tied embeddings, theta 1e6), randomly initialized
in bf16 on the GPU. For each batch size: random prompts, a warm-up, then
`generate` with N and with 1 new tokens (greedy, EOS ignored); ms/token is
(t_N - t_1) / (N - 1), so prefill is left out, as in attncheck's figure.
Prints a JSON array, one object per batch: {"batch", "ms_per_token",
"ms_per_step", "new_tokens", "prompt", "cache", "device", "torch",
"transformers"}; `attncheck bench model --anchor FILE` reads it.

Usage: python3 bench/model_generate.py [--batch 1 16] [--new 256] [--prompt 16]
       [--cache dynamic|static]
"""
import argparse
import json
import time

import torch
import transformers
from transformers import Qwen2Config, Qwen2ForCausalLM


def qwen05b_shape():
    return Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                       num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                       rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False)


def timed_generate(model, prompts, new, cache):
    kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
    if cache == "static":
        kw["cache_implementation"] = "static"
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(prompts, attention_mask=torch.ones_like(prompts), **kw)
    torch.cuda.synchronize()
    assert out.shape[1] == prompts.shape[1] + new
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--cache", choices=["dynamic", "static"], default="dynamic")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    model = Qwen2ForCausalLM(qwen05b_shape()).to(device="cuda", dtype=torch.bfloat16).eval()
    rows = []
    with torch.inference_mode():
        for b in a.batch:
            prompts = torch.randint(1, 151936, (b, a.prompt), device="cuda")
            timed_generate(model, prompts, 8, a.cache)  # warm-up
            t_n = timed_generate(model, prompts, a.new, a.cache)
            t_1 = timed_generate(model, prompts, 1, a.cache)
            step = (t_n - t_1) / (a.new - 1) * 1e3
            rows.append({"batch": b, "ms_per_step": step, "ms_per_token": step / b, "new_tokens": a.new,
                         "prompt": a.prompt, "cache": a.cache, "device": torch.cuda.get_device_name(),
                         "torch": torch.__version__, "transformers": transformers.__version__})
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
