#!/usr/bin/env python3
"""Greedy continuations for `ossify generate`, made by transformers' `generate` (never by ossify).

Writes generate_expected.json next to this script: for each golden checkpoint and each prompt (harmony text with
its special tokens, tokenized by the Python `tokenizers` library as the checkpoint's tokenizer.json says), the
prompt ids and the ids `model.generate(do_sample=False, max_new_tokens=N)` appends, stopping at the
checkpoint's generation_config eos ids (<|return|>, <|endoftext|>, <|call|>). The model is loaded as
golden/generate.py loads it for the reference logits: float32, eager attention and experts, MXFP4 dequantized
exactly. `min_margin` is the smallest gap between the best and second-best logit over the generated steps (a gap
far above the 3e-5 logit agreement means no near-tie can flip a token).

Run with a Python that has torch (CPU) and transformers 5.24:  python tests/data/chat/make_generate_fixtures.py
"""
import json
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
MAX_NEW = 24

PROMPTS = [
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: "
    "2024-06\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for "
    "every message.<|end|><|start|>user<|message|>What is 2+2?<|end|><|start|>assistant",
    "<|start|>user<|message|>Hello<|end|><|start|>assistant",
]
MODELS = ["tiny", "tiny-bf16"]


def load(folder: Path):
    from transformers import AutoModelForCausalLM, Mxfp4Config

    kwargs = dict(dtype=torch.float32, attn_implementation="eager", experts_implementation="eager")
    if "quantization_config" in json.loads((folder / "config.json").read_text()):
        kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
    m = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    m.eval()
    return m


def main() -> None:
    import transformers
    from tokenizers import Tokenizer

    torch.manual_seed(0)
    cases = []
    for name in MODELS:
        folder = ROOT / "golden" / name
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        gen_cfg = json.loads((folder / "generation_config.json").read_text())
        model = load(folder)
        for prompt in PROMPTS:
            ids = tok.encode(prompt, add_special_tokens=False).ids
            with torch.no_grad():
                out = model.generate(torch.tensor([ids]), max_new_tokens=MAX_NEW, do_sample=False,
                                     eos_token_id=gen_cfg["eos_token_id"], pad_token_id=gen_cfg["pad_token_id"],
                                     output_scores=True, return_dict_in_generate=True)
            new = out.sequences[0, len(ids):].tolist()
            margins = [float((s[0].topk(2).values[0] - s[0].topk(2).values[1]).item()) for s in out.scores]
            cases.append({"model": name, "prompt": prompt, "prompt_ids": ids, "generated": new,
                          "min_margin": min(margins)})
            print(name, len(ids), "->", new, f"min margin {min(margins):.3g}")
    (HERE / "generate_expected.json").write_text(json.dumps({
        "made_with": {"torch": torch.__version__, "transformers": transformers.__version__,
                      "settings": "float32, eager attention and experts, MXFP4 dequantized, greedy",
                      "max_new_tokens": MAX_NEW},
        "cases": cases}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
