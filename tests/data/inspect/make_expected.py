#!/usr/bin/env python3
"""Expected `inspect-weights --stats` values for golden/tiny (HF, MXFP4 experts) and golden/llamacpp/tiny.bf16.gguf,
computed independently of ossify: safetensors + numpy for the HF files (MXFP4 decoded from the format's definition:
value = FP4(code) * 2^(scale - 127), element 2j in the low nibble of byte j), gguf-py's reader and dequantizer for
the GGUF. Run from the repository root:  /opt/venv/bin/python tests/data/inspect/make_expected.py
"""
import json
from pathlib import Path

import numpy as np
import torch  # safetensors' numpy loader cannot hold bf16
from safetensors.torch import load_file as load_torch
import gguf

ROOT = Path(__file__).resolve().parents[3]
FP4 = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float64)


def stats(x):
    x = np.asarray(x, dtype=np.float64).ravel()
    return {"count": int(x.size), "min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()),
            "std": float(x.std())}


def hf_mxfp4(blocks, scales):
    lo, hi = blocks & 0x0F, blocks >> 4
    codes = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    vals = FP4[codes] * np.ldexp(1.0, scales.astype(np.int64) - 127)[..., None]
    s = stats(vals)
    exps, counts = np.unique(scales.astype(np.int64) - 127, return_counts=True)
    s["scale_exponents"] = {str(int(e)): int(c) for e, c in zip(exps, counts)}
    s["share_at_6"] = float(((codes & 7) == 7).mean())
    return s


out = {"hf": {}, "gguf": {}}
tt = {}
for f in sorted((ROOT / "golden/tiny").glob("*.safetensors")):
    tt.update(load_torch(f))
tensors = {k: v.numpy() for k, v in tt.items() if v.dtype == torch.uint8}
out["hf"]["n_tensors"] = len(tt)
out["hf"]["total_bytes"] = int(sum(t.numel() * t.element_size() for t in tt.values()))
for name in ["model.embed_tokens.weight", "model.layers.2.self_attn.sinks"]:
    out["hf"][name] = stats(tt[name].float().numpy())
p = "model.layers.1.mlp.experts.down_proj"
out["hf"][p + "_blocks"] = hf_mxfp4(tensors[p + "_blocks"], tensors[p + "_scales"])

r = gguf.GGUFReader(ROOT / "golden/llamacpp/tiny.bf16.gguf")
out["gguf"]["n_tensors"] = len(r.tensors)
for t in r.tensors:
    if t.name in ("token_embd.weight", "blk.1.ffn_down_exps.weight", "blk.0.attn_sinks.weight"):
        x = gguf.quants.dequantize(t.data, t.tensor_type)
        s = stats(x)
        if t.tensor_type == gguf.GGMLQuantizationType.MXFP4:
            raw = np.asarray(t.data).reshape(-1, 17)
            exps, counts = np.unique(raw[:, 0].astype(np.int64) - 127, return_counts=True)
            s["scale_exponents"] = {str(int(e)): int(c) for e, c in zip(exps, counts)}
            q = raw[:, 1:]
            s["share_at_6"] = float(((((q & 0x0F) & 7) == 7).sum() + (((q >> 4) & 7) == 7).sum()) / (q.size * 2))
        out["gguf"][t.name] = s

(Path(__file__).parent / "expected.json").write_text(json.dumps(out, indent=1) + "\n")
print("wrote", Path(__file__).parent / "expected.json")
