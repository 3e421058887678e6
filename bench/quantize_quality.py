#!/usr/bin/env python3
"""MXFP4 scale rules compared on golden/tiny-bf16-noisy (BF16 experts that MXFP4 cannot represent exactly).

For --mxfp4-scale ref, mse and mse + importance matrix, ossify quantizes the BF16 GGUF that llama.cpp's converter
made from that checkpoint (golden/llamacpp/quantize/tiny-bf16-noisy.bf16.gguf) with experts MXFP4 and everything
else kept BF16 ("experts only"), and with the full mxfp4_moe preset (other matrices Q8_0). Each result is read
back with gguf-py, dequantized, loaded into transformers' GptOssForCausalLM (float32), and compared with
transformers' float32 logits of the BF16 source (golden/reference/tiny-bf16-noisy.seq*.logits.npy):
mean KL(source || quantized) per token, top-1 agreement, and expert weight RMSE against the BF16 values.

The importance matrix comes from calibration text that is not the evaluation text, two ways: `ossify quantize
--calibration` (ossify's forward pass), and, as a cross-check, transformers with a hook on every expert block
recording the mean x^2 of each expert's inputs (gate/up: the normed hidden state; down: the SwiGLU output),
written in llama.cpp's imatrix GGUF format and passed to `ossify quantize --imatrix`.

Run (needs torch + transformers; not a CI test):
    cargo build && /opt/venv/bin/python bench/quantize_quality.py [--ossify target/debug/ossify]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LLAMA = os.environ.get("LLAMA_CPP_DIR", "/opt/llama/llama_cpp_python-0.3.36/vendor/llama.cpp")
sys.path.insert(0, os.path.join(LLAMA, "gguf-py"))
import gguf  # noqa: E402
from gguf.quants import dequantize  # noqa: E402

SRC = os.path.join(ROOT, "golden", "tiny-bf16-noisy")
BASE = os.path.join(ROOT, "golden", "llamacpp", "quantize", "tiny-bf16-noisy.bf16.gguf")
REF = os.path.join(ROOT, "golden", "reference")

CALIBRATION_TEXT = (
    "The quick brown fox jumps over the lazy dog. Quantization maps each block of thirty-two weights to four-bit "
    "codes that share one power-of-two scale. A calibration pass measures which input channels carry the most "
    "energy, so the encoder can spend its precision where the activations are large. "
    "Once upon a time, in a small village by the sea, there lived an old fisherman who mended his nets every "
    "morning and told stories to anyone who would listen. 0123456789 + - * / = ( ) [ ] { } < > ! ? , . ; :"
)


# One thread: torch's threaded reductions change the last bits run to run, and on this tiny random model a last-bit
# change can flip a router's top-k choice, which moves the KLD by several percent.
torch.set_num_threads(1)


def load_model():
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(SRC, dtype=torch.float32)
    m.eval()
    return m


def collect_imatrix(model, tokens, path):
    cfg = model.config
    n_exp, layers = cfg.num_local_experts, cfg.num_hidden_layers
    sums = {}
    counts = {}

    def hook_for(i):
        def hook(mod, args):
            hs, idx = args[0], args[1]
            for e in range(n_exp):
                tok = (idx == e).any(dim=-1).nonzero().flatten()
                if tok.numel() == 0:
                    continue
                x = hs[tok]
                gu = x @ mod.gate_up_proj[e] + mod.gate_up_proj_bias[e]
                act = mod._apply_gate(gu)
                for kind, inp in (("gate", x), ("up", x), ("down", act)):
                    name = f"blk.{i}.ffn_{kind}_exps.weight"
                    s = sums.setdefault(name, np.zeros((n_exp, inp.shape[-1]), np.float64))
                    c = counts.setdefault(name, np.zeros((n_exp, 1), np.float64))
                    s[e] += (inp.double() ** 2).sum(0).numpy()
                    c[e] += inp.shape[0]

        return hook

    hs = [model.model.layers[i].mlp.experts.register_forward_pre_hook(hook_for(i)) for i in range(layers)]
    with torch.no_grad():
        model(torch.tensor([tokens]))
    for h in hs:
        h.remove()
    w = gguf.GGUFWriter(path, arch="imatrix", use_temp_file=False)
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", ["bench/quantize_quality.py CALIBRATION_TEXT"])
    w.add_uint32("imatrix.chunk_count", 1)
    w.add_uint32("imatrix.chunk_size", len(tokens))
    for name in sorted(sums):
        w.add_tensor(name + ".in_sum2", sums[name].astype(np.float32))
        w.add_tensor(name + ".counts", counts[name].astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {k: int(v.sum()) for k, v in counts.items() if k.endswith("down_exps.weight")}


GGUF_TO_HF = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output.weight": "lm_head.weight",
}
PER_LAYER = {
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
}


def load_quantized(model, src_state, path):
    """Puts the dequantized weights of `path` into `model`; returns expert weight RMSE vs the BF16 source."""
    r = gguf.GGUFReader(path)
    t = {x.name: x for x in r.tensors}

    def deq(name):
        x = t[name]
        return torch.from_numpy(np.ascontiguousarray(dequantize(x.data, x.tensor_type), dtype=np.float32))

    sd = {k: v.clone() for k, v in src_state.items()}
    err2, n = 0.0, 0
    for i in range(model.config.num_hidden_layers):
        p = f"model.layers.{i}."
        g, u, d = (deq(f"blk.{i}.ffn_{k}_exps.weight") for k in ("gate", "up", "down"))
        gu = torch.empty_like(sd[p + "mlp.experts.gate_up_proj"])
        gu[:, :, ::2] = g.transpose(1, 2)
        gu[:, :, 1::2] = u.transpose(1, 2)
        dn = d.transpose(1, 2).contiguous()
        for k, v in (("gate_up_proj", gu), ("down_proj", dn)):
            diff = v - src_state[p + "mlp.experts." + k]
            err2 += float((diff.double() ** 2).sum())
            n += diff.numel()
            sd[p + "mlp.experts." + k] = v
        for gk, hk in PER_LAYER.items():
            sd[p + hk] = deq(f"blk.{i}.{gk}").reshape(sd[p + hk].shape)
    for gk, hk in GGUF_TO_HF.items():
        sd[hk] = deq(gk).reshape(sd[hk].shape)
    model.load_state_dict(sd)
    return (err2 / n) ** 0.5


EVAL_TEXT = (
    "In the morning the market opened early, and the traders argued about the price of copper, tin and salt. "
    "Numbers such as 42, 1999 and 3.14159 appeared on every board. She wrote a letter to her brother, asking "
    "whether the river had frozen yet and whether the bridge would hold another winter. The answer came weeks "
    "later: yes, it froze; no, the bridge did not hold. def f(x): return x * x + 1 # a small function. "
    "Rain, wind, thunder; the sky turned green before the storm broke over the hills and the valley below."
)


def evaluate(model, sequences, refs):
    """Mean KL(reference || model) per token and top-1 agreement over `sequences` with reference logits `refs`."""
    kl, top1, ntok = 0.0, 0, 0
    for toks, ref in zip(sequences, refs):
        with torch.no_grad():
            got = model(torch.tensor([toks])).logits[0].double()
        lp, lq = torch.log_softmax(ref, -1), torch.log_softmax(got, -1)
        kl += float((lp.exp() * (lp - lq)).sum())
        top1 += int((ref.argmax(-1) == got.argmax(-1)).sum())
        ntok += len(toks)
    return kl / ntok, top1 / ntok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ossify", default=os.path.join(ROOT, "target", "debug", "ossify"))
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(SRC)
    calib = tok(CALIBRATION_TEXT)["input_ids"]
    sequences = json.load(open(os.path.join(REF, "tokens.json")))["sequences"]
    refs = [
        torch.from_numpy(np.load(os.path.join(REF, f"tiny-bf16-noisy.seq{s}.logits.npy"))).double()
        for s in range(len(sequences))
    ]
    model = load_model()
    src_state = {k: v.clone() for k, v in model.state_dict().items()}
    base_kl, _ = evaluate(model, sequences, refs)
    # More evaluation text, its reference logits from the same transformers model on the BF16 source (which the
    # line above shows reproduces golden/reference to ~1e-13 KLD).
    extra = tok(EVAL_TEXT)["input_ids"]
    extra = [extra[i : i + 64] for i in range(0, len(extra), 64)]
    with torch.no_grad():
        extra_refs = [model(torch.tensor([t])).logits[0].double() for t in extra]
    sequences, refs = sequences + extra, refs + extra_refs
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        imatrix = os.path.join(tmp, "imatrix.gguf")
        routed = collect_imatrix(model, calib, imatrix)
        calib_file = os.path.join(tmp, "calibration.txt")
        with open(calib_file, "w") as f:
            f.write(CALIBRATION_TEXT)
        experts_only = ["--tensor-type", "attn=bf16", "--output-tensor-type", "bf16", "--token-embedding-type", "bf16"]
        variants = [
            ("experts MXFP4, rest BF16", "ref", experts_only, []),
            ("experts MXFP4, rest BF16", "mse", experts_only, []),
            ("experts MXFP4, rest BF16", "mse + imatrix (transformers)", experts_only, ["--imatrix", imatrix]),
            ("experts MXFP4, rest BF16", "mse + --calibration", experts_only, ["--calibration", calib_file]),
            ("mxfp4_moe (rest Q8_0)", "ref", [], []),
            ("mxfp4_moe (rest Q8_0)", "mse", [], []),
            ("mxfp4_moe (rest Q8_0)", "mse + --calibration", [], ["--calibration", calib_file]),
        ]
        for i, (what, rule, extra, im) in enumerate(variants):
            out = os.path.join(tmp, f"v{i}.gguf")
            scale = "ref" if rule == "ref" else "mse"
            cmd = [a.ossify, "quantize", BASE, "-o", out, "--type", "mxfp4_moe", "--mxfp4-scale", scale, "-q"]
            subprocess.check_call(cmd + extra + im)
            rmse = load_quantized(model, src_state, out)
            kld, top1 = evaluate(model, sequences, refs)
            rows.append({"model": what, "rule": rule, "expert_rmse": rmse, "mean_kld": kld, "top1": top1})
    print(f"calibration: {len(calib)} tokens (expert routings per layer: {routed}); "
          f"evaluation: {sum(map(len, sequences))} tokens; unquantized model vs reference KLD {base_kl:.2e}")
    print("| model | MXFP4 scale | expert weight RMSE | mean KLD vs BF16 | top-1 agreement |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['rule']} | {r['expert_rmse']:.5f} | {r['mean_kld']:.3e} | {100 * r['top1']:.1f}% |")
    if a.json:
        json.dump({"rows": rows, "baseline_kld": base_kl, "calibration_tokens": len(calib)}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
