#!/usr/bin/env python3
"""Cross-check attncheck's decoder against Hugging Face transformers.

For each architecture (Qwen2, Llama), builds a small random-weight model with
transformers (configs below, fp32), saves it as safetensors, runs
`attncheck model-logits` on the same checkpoint and tokens, and compares:

  - our engine against our fp64 oracle (the engine's own stage-by-stage
    check, reported by attncheck: must pass);
  - transformers' own forward, stage by stage: forward hooks record every
    stage (norm outputs, projections, RoPE'd q/k via transformers' own
    apply_rotary_pos_emb on the cos/sin its rotary module produced, the
    attention output, the FFN, the residual stream, logits), and
    `attncheck model-check-trace` judges that trace against the fp64 oracle
    under the observed error bound with transformers' fp32 precision
    (RoPE angles in fp32; docs/model-error-model.md). This is the verdict;
  - for information (and as the verdict only if the hooks cannot be
    attached to this transformers version): transformers' logits and
    per-layer hidden states against the oracle with FlashAttention's
    criterion: its error at most K = 8 times our fp32 engine's error, plus
    a floor of 2^-20 times the row's magnitude (K is a judgement: correct
    fp32 implementations differ by small factors, a wrong RoPE pairing, a
    dropped bias or a lost residual by 1e3-1e7).

Prints a table; exits 1 if any check fails, 2 on a usage or environment error.
Runs offline (no downloads): the models are built from configs in code.

Usage: transformers_crosscheck.py --attncheck PATH [--backend cpu|cuda] [--tokens N] [--results FILE]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

K = 8.0
FLOOR = 2.0 ** -20


def die(msg, code=2):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


try:
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
except Exception as e:  # noqa: BLE001 - any import problem is an environment error
    die(f"cannot import torch/transformers: {e}")


def qwen2_model():
    cfg = Qwen2Config(
        vocab_size=257, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=512,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
        hidden_act="silu")
    return cfg, Qwen2ForCausalLM


def llama_model():
    cfg = LlamaConfig(
        vocab_size=300, hidden_size=256, intermediate_size=384, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=1, head_dim=64, max_position_embeddings=512,
        rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False,
        mlp_bias=False, hidden_act="silu")
    return cfg, LlamaForCausalLM


def with_rope_scaling(make, scaling):
    """The same model with transformers' rope_scaling set (llama3 for Llama
    3.1-style checkpoints, yarn for Qwen's long-context ones): a short
    original context so the tokens of the check reach the scaled regime."""
    def made():
        cfg, cls = make()
        params = getattr(cfg, "rope_parameters", None)
        theta = getattr(cfg, "rope_theta", None) or (params or {}).get("rope_theta")
        cfg.rope_scaling = dict(scaling)
        # transformers 5 keeps rope_theta inside rope_parameters, which
        # assigning rope_scaling replaces: put the model's theta back.
        params = getattr(cfg, "rope_parameters", None)
        if isinstance(params, dict) and params.get("rope_theta") is None:
            params["rope_theta"] = theta
        return cfg, cls
    return made


LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8}
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8}


def build(make, seed):
    cfg, cls = make()
    # The plain (eager) attention: the textbook computation, no fused kernel.
    try:
        cfg._attn_implementation = "eager"
    except Exception:  # noqa: BLE001 - older/newer config classes: keep their default
        pass
    torch.manual_seed(seed)
    model = cls(cfg).to(torch.float32)
    model.eval()
    with torch.no_grad():
        # transformers initializes norms to 1 and biases to 0; perturb them so
        # a wrong gain index or a dropped bias is visible.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.02 * torch.randn_like(p))
    return cfg, model


def save(model, d, shard=None):
    """save_pretrained into d: one model.safetensors, or (shard: a size such
    as "100KB") shards and model.safetensors.index.json, which attncheck must
    read as the same weights."""
    kw = {"max_shard_size": shard} if shard else {}
    try:
        model.save_pretrained(d, safe_serialization=True, **kw)
    except TypeError:  # transformers versions without the argument always write safetensors
        model.save_pretrained(d, **kw)
    names = os.listdir(d)
    want = "model.safetensors.index.json" if shard else "model.safetensors"
    if want not in names:
        die(f"save_pretrained wrote {names}, expected {want}")


def max_abs(a):
    return max((abs(x) for x in a), default=0.0)


def compare_rows(ref, ours, theirs):
    """Per row: (our error, their error, limit, ok)."""
    out = []
    for r, o, t in zip(ref, ours, theirs):
        if any(x is None for x in o) or any(x is None for x in r):
            out.append((math.inf, math.inf, 0.0, False))
            continue
        e_o = max(abs(a - b) for a, b in zip(o, r))
        e_t = max(abs(a - b) for a, b in zip(t, r))
        lim = K * e_o + FLOOR * max_abs(r)
        out.append((e_o, e_t, lim, e_t <= lim))
    return out


def record_trace(model, cfg, toks):
    """Forward with hooks; returns (logits, hidden_states, trace dict)."""
    rec = {}
    handles = []

    def out_hook(key):
        def h(mod, inp, out):
            rec[key] = out[0] if isinstance(out, tuple) and key != "rope" else out
        return h

    def in_hook(key):
        def h(mod, inp, out):
            rec[key] = inp[0]
        return h

    m = model.model
    L = cfg.num_hidden_layers
    handles.append(m.embed_tokens.register_forward_hook(out_hook("embed")))
    for i, layer in enumerate(m.layers):
        a, f = layer.self_attn, layer.mlp
        handles += [
            layer.input_layernorm.register_forward_hook(in_hook(f"{i}.resid_in")),
            layer.input_layernorm.register_forward_hook(out_hook(f"{i}.attn_norm")),
            a.q_proj.register_forward_hook(out_hook(f"{i}.q")),
            a.k_proj.register_forward_hook(out_hook(f"{i}.k")),
            a.v_proj.register_forward_hook(out_hook(f"{i}.v")),
            a.o_proj.register_forward_hook(in_hook(f"{i}.attn_out")),
            a.o_proj.register_forward_hook(out_hook(f"{i}.o_proj")),
            layer.post_attention_layernorm.register_forward_hook(in_hook(f"{i}.resid_attn")),
            layer.post_attention_layernorm.register_forward_hook(out_hook(f"{i}.ffn_norm")),
            f.gate_proj.register_forward_hook(out_hook(f"{i}.gate")),
            f.up_proj.register_forward_hook(out_hook(f"{i}.up")),
            f.down_proj.register_forward_hook(in_hook(f"{i}.act")),
            f.down_proj.register_forward_hook(out_hook(f"{i}.down")),
        ]
    handles.append(m.norm.register_forward_hook(in_hook("last_resid")))
    handles.append(m.norm.register_forward_hook(out_hook("final_norm")))
    handles.append(model.lm_head.register_forward_hook(out_hook("logits")))
    rope_owner = getattr(m, "rotary_emb", None)
    if rope_owner is not None:
        handles.append(rope_owner.register_forward_hook(out_hook("rope")))
    try:
        with torch.no_grad():
            out = model(torch.tensor([toks]), output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    logits = out.logits[0].to(torch.float64).tolist()
    hidden = [h[0].to(torch.float64).tolist() for h in out.hidden_states[1:]]
    # The trace: every stage [token][width] as exact fp32 values.
    def rows(t):
        t = t.detach()
        if t.dim() == 3:
            t = t[0]
        return t.to(torch.float32).tolist()
    if "rope" not in rec:
        raise RuntimeError("model has no model.rotary_emb module to record cos/sin from")
    cos, sin = rec["rope"]
    mod = sys.modules[type(model).__module__]
    n, nh, nkv, hd = len(toks), cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    layers = []
    for i in range(L):
        q = rec[f"{i}.q"].view(1, n, nh, hd).transpose(1, 2)
        k = rec[f"{i}.k"].view(1, n, nkv, hd).transpose(1, 2)
        qr, kr = mod.apply_rotary_pos_emb(q, k, cos, sin)
        resid_ffn = rec[f"{i + 1}.resid_in"] if i + 1 < L else rec["last_resid"]
        layers.append({
            "attn_norm": rows(rec[f"{i}.attn_norm"]), "q": rows(rec[f"{i}.q"]), "k": rows(rec[f"{i}.k"]),
            "v": rows(rec[f"{i}.v"]),
            "q_rope": rows(qr.transpose(1, 2).reshape(1, n, nh * hd)),
            "k_rope": rows(kr.transpose(1, 2).reshape(1, n, nkv * hd)),
            "attn_out": rows(rec[f"{i}.attn_out"]), "o_proj": rows(rec[f"{i}.o_proj"]),
            "resid_attn": rows(rec[f"{i}.resid_attn"]), "ffn_norm": rows(rec[f"{i}.ffn_norm"]),
            "gate": rows(rec[f"{i}.gate"]), "up": rows(rec[f"{i}.up"]), "act": rows(rec[f"{i}.act"]),
            "down": rows(rec[f"{i}.down"]), "resid_ffn": rows(resid_ffn),
        })
    trace = {"tokens": toks, "embed": rows(rec["embed"]), "layers": layers,
             "final_norm": rows(rec["final_norm"]), "logits": rows(rec["logits"])}
    return logits, hidden, trace


def run_one(arch, make, args, tmp, shard=None):
    cfg, model = build(make, seed=1234)
    d = os.path.join(tmp, arch)
    save(model, d, shard)
    g = torch.Generator().manual_seed(99)
    toks = torch.randint(0, cfg.vocab_size, (args.tokens,), generator=g).tolist()
    trace_err = None
    try:
        hf_logits, hf_hidden, trace = record_trace(model, cfg, toks)
    except Exception as e:  # noqa: BLE001 - hooks depend on the transformers version
        trace_err = f"{type(e).__name__}: {e}"
        with torch.no_grad():
            out = model(torch.tensor([toks]), output_hidden_states=True)
        hf_logits = out.logits[0].to(torch.float64).tolist()
        hf_hidden = [h[0].to(torch.float64).tolist() for h in out.hidden_states[1:]]
    js = os.path.join(tmp, f"{arch}.json")
    cmd = [args.attncheck, "model-logits", "--model", d, "--tokens", ",".join(map(str, toks)),
           "--backend", args.backend, "--out", js]
    p = subprocess.run(cmd, capture_output=True, text=True)
    print(p.stdout, end="")
    if p.returncode not in (0, 1) or not os.path.exists(js):
        print(p.stderr, file=sys.stderr)
        die(f"{' '.join(cmd)} exited {p.returncode}")
    ours = json.load(open(js))
    rows = []
    ok = ours["check_ok"]
    rows.append((arch, f"our engine ({args.backend}) vs oracle, stage by stage", "", "", "", "ok" if ok else "FAIL"))
    if trace_err is None:
        tjs = os.path.join(tmp, f"{arch}_trace.json")
        with open(tjs, "w") as f:
            json.dump(trace, f)
        p = subprocess.run([args.attncheck, "model-check-trace", "--model", d, "--trace", tjs],
                           capture_output=True, text=True)
        print(p.stdout if p.returncode == 0 else p.stdout + p.stderr, end="")
        if p.returncode not in (0, 1):
            die(f"model-check-trace exited {p.returncode}")
        t_ok = p.returncode == 0
        rows.append((arch, "transformers vs oracle, stage by stage (fp32 bound)", "", "", "", "ok" if t_ok else "FAIL"))
        ok = ok and t_ok
        verdict_k = False  # informational
    else:
        print(f"{arch}: could not record transformers' stages ({trace_err}); "
              f"judging logits and hidden states with the K criterion instead")
        verdict_k = True
    n_layers = len(ours["oracle_hidden"])
    if len(hf_hidden) != n_layers:
        die(f"{arch}: transformers returned {len(hf_hidden)} hidden states, attncheck {n_layers} layers")
    k_ok = True
    for l in range(n_layers):
        res = compare_rows(ours["oracle_hidden"][l], ours["engine_hidden"][l], hf_hidden[l])
        label = f"hidden after layer {l}"
        if l == n_layers - 1:
            # transformers versions differ in whether the last hidden state
            # is taken before or after the final norm: accept the one that
            # matches, and say which.
            pre = compare_rows(ours["oracle_last_resid"], ours["engine_last_resid"], hf_hidden[l])
            if all(r[3] for r in pre) and not all(r[3] for r in res):
                res, label = pre, label + " (before final norm)"
            else:
                label += " (after final norm)"
        good = all(r[3] for r in res)
        rows.append((arch, label + " [K]", f"{max(r[0] for r in res):.3g}", f"{max(r[1] for r in res):.3g}",
                     f"{min(r[2] for r in res):.3g}", ("ok" if good else "FAIL") if verdict_k else ("ok" if good else "high")))
        k_ok = k_ok and good
    res = compare_rows(ours["oracle_logits"], ours["engine_logits"], hf_logits)
    good = all(r[3] for r in res)
    rows.append((arch, "logits [K]", f"{max(r[0] for r in res):.3g}", f"{max(r[1] for r in res):.3g}",
                 f"{min(r[2] for r in res):.3g}", ("ok" if good else "FAIL") if verdict_k else ("ok" if good else "high")))
    k_ok = k_ok and good
    if verdict_k:
        ok = ok and k_ok
    # Greedy tokens: where the oracle's margin exceeds both errors, all agree.
    agree = decided = 0
    for r, o, t in zip(ours["oracle_logits"], ours["engine_logits"], hf_logits):
        top = max(range(len(r)), key=lambda i: r[i])
        second = max(x for i, x in enumerate(r) if i != top)
        eps = 2 * max(max(abs(a - b) for a, b in zip(o, r)), max(abs(a - b) for a, b in zip(t, r)))
        if r[top] - second > eps:
            decided += 1
            agree += int(max(range(len(o)), key=lambda i: o[i]) == top and max(range(len(t)), key=lambda i: t[i]) == top)
    rows.append((arch, f"argmax (decided rows {decided}/{len(hf_logits)})", "", "", "",
                 "ok" if agree == decided else "FAIL"))
    ok = ok and agree == decided
    return ok, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attncheck", required=True, help="path to the attncheck binary")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--tokens", type=int, default=12)
    ap.add_argument("--results", help="also write the table as JSON here")
    args = ap.parse_args()
    if not os.access(args.attncheck, os.X_OK):
        die(f"{args.attncheck}: not an executable")
    if args.tokens < 1 or args.tokens > 256:
        die("--tokens must be in [1, 256]")
    torch.set_grad_enabled(False)
    if hasattr(torch.backends, "cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False  # (the reference runs on the CPU anyway)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, attncheck backend {args.backend}, K = {K:g}")
    all_ok = True
    table = []
    with tempfile.TemporaryDirectory(prefix="attncheck_xcheck_") as tmp:
        # The sharded run: transformers' own shards and index, read by attncheck.
        for arch, make, shard in (("qwen2", qwen2_model, None), ("llama", llama_model, None),
                                  ("qwen2-sharded", qwen2_model, "100KB"),
                                  ("llama-rope-llama3", with_rope_scaling(llama_model, LLAMA3), None),
                                  ("qwen2-rope-yarn", with_rope_scaling(qwen2_model, YARN), None)):
            ok, rows = run_one(arch, make, args, tmp, shard)
            all_ok = all_ok and ok
            table += rows
    w = [max(len(str(r[i])) for r in table + [("arch", "check", "our err", "hf err", "limit", "")]) for i in range(6)]
    hdr = ("arch", "check", "our err", "hf err", "limit", "")
    print("  ".join(str(h).ljust(w[i]) for i, h in enumerate(hdr)))
    for r in table:
        print("  ".join(str(x).ljust(w[i]) for i, x in enumerate(r)))
    print("[K] rows: transformers' error vs K x ours (information unless the stage trace could not be recorded; "
          "'high' = above K x ours)")
    print("PASS" if all_ok else "FAIL")
    if args.results:
        with open(args.results, "w") as f:
            json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "backend": args.backend,
                       "K": K, "rows": table, "pass": all_ok}, f, indent=1)
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
