#!/usr/bin/env python3
"""Reference for `ossify quantize --format safetensors` (OpenAI's MXFP4 layout).

1. tiny-bf16-noisy-mxfp4/: `ossify quantize golden/tiny-bf16-noisy -o ... --format safetensors --shard-size 300000`
   (made by ossify; tests/quantize_safetensors.rs checks ossify still writes exactly these bytes, so the
   logits below keep describing its output).
2. tiny-bf16-noisy-mxfp4.seq{0,1}.logits.npy: transformers' float32 logits of that folder for
   golden/reference/tokens.json, loaded with plain `from_pretrained` (transformers dequantizes MXFP4 experts
   exactly on a CPU); ossify's forward pass on the folder must match them within the forward-pass tolerance.
3. tiny-bf16-noisy-mxfp4.json: versions, KLD of these logits against the BF16 source's, and load notes.

Run: cargo build && /opt/venv/bin/python golden/quantize/make_reference.py
Needs torch, transformers (5.x) and accelerate (transformers' MXFP4 loader imports it; pip install --target
/tmp/x accelerate and put it on PYTHONPATH).
"""
import json
import os
import shutil
import subprocess

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(HERE, "tiny-bf16-noisy-mxfp4")
REF = os.path.join(ROOT, "golden", "reference")


def main():
    ossify = os.environ.get("OSSIFY", os.path.join(ROOT, "target", "debug", "ossify"))
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    subprocess.check_call(
        [ossify, "quantize", os.path.join(ROOT, "golden", "tiny-bf16-noisy"), "-o", OUT, "--format", "safetensors",
         "--shard-size", "300000", "-q"]
    )
    import transformers
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(OUT, dtype=torch.float32)
    model.eval()
    seqs = json.load(open(os.path.join(REF, "tokens.json")))["sequences"]
    kls = []
    for i, toks in enumerate(seqs):
        with torch.no_grad():
            logits = model(torch.tensor([toks])).logits[0].float()
        np.save(os.path.join(HERE, f"tiny-bf16-noisy-mxfp4.seq{i}.logits.npy"), logits.numpy())
        src = torch.from_numpy(np.load(os.path.join(REF, f"tiny-bf16-noisy.seq{i}.logits.npy"))).double()
        lp, lq = torch.log_softmax(src, -1), torch.log_softmax(logits.double(), -1)
        kls.append(float((lp.exp() * (lp - lq)).sum(-1).mean()))
    info = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "loaded_with": "AutoModelForCausalLM.from_pretrained(folder, dtype=float32) (CPU: MXFP4 dequantized)",
        "experts_class": type(model.model.layers[0].mlp.experts).__name__,
        "mean_kld_vs_bf16_source_per_sequence": kls,
    }
    json.dump(info, open(os.path.join(HERE, "tiny-bf16-noisy-mxfp4.json"), "w"), indent=1)
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
