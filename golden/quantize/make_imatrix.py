#!/usr/bin/env python3
"""Importance matrix of golden/tiny-bf16-noisy over golden/reference/tokens.json, computed with transformers.

A forward pre-hook on every GptOssExperts block sees (hidden_states, router_indices); for each expert it
records sum(x^2) per input channel of the tokens routed to it: the normed hidden state for gate and up, and the
SwiGLU output (the module's own `_apply_gate`) for down. Written as llama.cpp's imatrix GGUF
(`<weight>.in_sum2` [experts, in] and `<weight>.counts` [experts, 1], F32) with gguf-py, to
tiny-bf16-noisy.imatrix.gguf; tests/quantize_calibration.rs checks ossify's --calibration statistics against it.

Run: /opt/venv/bin/python golden/quantize/make_imatrix.py
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
LLAMA = os.environ.get("LLAMA_CPP_DIR", "/opt/llama/llama_cpp_python-0.3.36/vendor/llama.cpp")
sys.path.insert(0, os.path.join(LLAMA, "gguf-py"))
import gguf  # noqa: E402


def main():
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "golden", "tiny-bf16-noisy"), dtype=torch.float32)
    model.eval()
    n_exp = model.config.num_local_experts
    sums, counts = {}, {}

    def hook_for(i):
        def hook(mod, args):
            hs, idx = args[0], args[1]
            for e in range(n_exp):
                tok = (idx == e).any(dim=-1).nonzero().flatten()
                if tok.numel() == 0:
                    continue
                x = hs[tok]
                act = mod._apply_gate(x @ mod.gate_up_proj[e] + mod.gate_up_proj_bias[e])
                for kind, inp in (("gate", x), ("up", x), ("down", act)):
                    name = f"blk.{i}.ffn_{kind}_exps.weight"
                    s = sums.setdefault(name, np.zeros((n_exp, inp.shape[-1]), np.float64))
                    c = counts.setdefault(name, np.zeros((n_exp, 1), np.float64))
                    s[e] += (inp.double() ** 2).sum(0).numpy()
                    c[e] += inp.shape[0]

        return hook

    for i, layer in enumerate(model.model.layers):
        layer.mlp.experts.register_forward_pre_hook(hook_for(i))
    seqs = json.load(open(os.path.join(ROOT, "golden", "reference", "tokens.json")))["sequences"]
    with torch.no_grad():
        for s in seqs:
            model(torch.tensor([s]))
    out = os.path.join(HERE, "tiny-bf16-noisy.imatrix.gguf")
    w = gguf.GGUFWriter(out, arch="imatrix", use_temp_file=False)
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", ["golden/reference/tokens.json"])
    w.add_uint32("imatrix.chunk_count", len(seqs))
    w.add_uint32("imatrix.chunk_size", max(map(len, seqs)))
    for name in sorted(sums):
        w.add_tensor(name + ".in_sum2", sums[name].astype(np.float32))
        w.add_tensor(name + ".counts", counts[name].astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", out)


if __name__ == "__main__":
    main()
