#!/usr/bin/env python3
"""Write a synthetic gpt-oss checkpoint with gpt-oss-20b's real widths, in the Hugging Face MXFP4 layout.

H = I = 2880, 64 query heads / 8 KV heads of 64, 32 experts (top-4), vocabulary 201088; only the layer count is
configurable. Tensors are streamed to disk shard by shard (memory stays at one tensor), seeded, so the same
arguments give the same bytes. The values are random but sane (BF16 normals of small scale, MXFP4 codes with
scale exponents near 2^-4), which is all the converter and quantizer benchmarks need.

    python bench/make_synthetic.py OUT_DIR --layers 4 [--seed 0] [--tokenizer-from golden/tiny]

Only numpy is needed. Tokenizer files are copied from --tokenizer-from (the real o200k tokenizer.json cannot be
downloaded here); config.vocab_size stays 201088, so converters pad the vocabulary as they do for the real model.
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

H, I, N_HEAD, N_KV, HEAD_DIM, N_EXPERT, TOP_K, VOCAB = 2880, 2880, 64, 8, 64, 32, 4, 201088


def config(n_layers):
    return {
        "architectures": ["GptOssForCausalLM"],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "eos_token_id": 200002,
        "experts_per_token": TOP_K,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": H,
        "initial_context_length": 4096,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layers)],
        "max_position_embeddings": 131072,
        "model_type": "gpt_oss",
        "num_attention_heads": N_HEAD,
        "num_experts_per_tok": TOP_K,
        "num_hidden_layers": n_layers,
        "num_key_value_heads": N_KV,
        "num_local_experts": N_EXPERT,
        "output_router_logits": False,
        "pad_token_id": 199999,
        "quantization_config": {
            "modules_to_not_convert": [
                "model.layers.*.self_attn",
                "model.layers.*.mlp.router",
                "model.embed_tokens",
                "lm_head",
            ],
            "quant_method": "mxfp4",
        },
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "factor": 32.0,
            "original_max_position_embeddings": 4096,
            "rope_type": "yarn",
            "truncate": False,
        },
        "rope_theta": 150000,
        "router_aux_loss_coef": 0.9,
        "sliding_window": 128,
        "swiglu_limit": 7.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def tensors_of_layer(i):
    p = f"model.layers.{i}."
    return [
        (p + "input_layernorm.weight", "BF16", [H]),
        (p + "post_attention_layernorm.weight", "BF16", [H]),
        (p + "self_attn.q_proj.weight", "BF16", [N_HEAD * HEAD_DIM, H]),
        (p + "self_attn.q_proj.bias", "BF16", [N_HEAD * HEAD_DIM]),
        (p + "self_attn.k_proj.weight", "BF16", [N_KV * HEAD_DIM, H]),
        (p + "self_attn.k_proj.bias", "BF16", [N_KV * HEAD_DIM]),
        (p + "self_attn.v_proj.weight", "BF16", [N_KV * HEAD_DIM, H]),
        (p + "self_attn.v_proj.bias", "BF16", [N_KV * HEAD_DIM]),
        (p + "self_attn.o_proj.weight", "BF16", [H, N_HEAD * HEAD_DIM]),
        (p + "self_attn.o_proj.bias", "BF16", [H]),
        (p + "self_attn.sinks", "BF16", [N_HEAD]),
        (p + "mlp.router.weight", "BF16", [N_EXPERT, H]),
        (p + "mlp.router.bias", "BF16", [N_EXPERT]),
        (p + "mlp.experts.gate_up_proj_blocks", "U8", [N_EXPERT, 2 * I, H // 32, 16]),
        (p + "mlp.experts.gate_up_proj_scales", "U8", [N_EXPERT, 2 * I, H // 32]),
        (p + "mlp.experts.gate_up_proj_bias", "BF16", [N_EXPERT, 2 * I]),
        (p + "mlp.experts.down_proj_blocks", "U8", [N_EXPERT, H, I // 32, 16]),
        (p + "mlp.experts.down_proj_scales", "U8", [N_EXPERT, H, I // 32]),
        (p + "mlp.experts.down_proj_bias", "BF16", [N_EXPERT, H]),
    ]


ELEM = {"BF16": 2, "U8": 1}
CHUNK = 1 << 24  # elements generated per step: bounds memory to ~64 MB whatever the tensor


def bf16_normal(rng, n, scale, mean=0.0):
    """n BF16 values ~ N(mean, scale^2), as uint16, rounded to nearest even."""
    x = (rng.standard_normal(n, dtype=np.float32) * np.float32(scale) + np.float32(mean)).view(np.uint32)
    return ((x + 0x7FFF + ((x >> 16) & 1)) >> 16).astype(np.uint16)


def write_tensor(f, rng, name, dtype, shape):
    n = int(np.prod(shape))
    done = 0
    while done < n:
        k = min(CHUNK, n - done)
        if name.endswith("_scales"):
            data = rng.integers(118, 124, size=k, dtype=np.uint8)  # 2^-9 .. 2^-4
        elif name.endswith("_blocks"):
            data = rng.integers(0, 256, size=k, dtype=np.uint8)
        elif "norm" in name:
            data = bf16_normal(rng, k, 0.1, mean=1.0)
        else:
            data = bf16_normal(rng, k, 0.02)
        f.write(data.tobytes())
        done += k


def write_shard(path, rng, tensors):
    header = {}
    off = 0
    for name, dtype, shape in tensors:
        size = int(np.prod(shape)) * ELEM[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + size]}
        off += size
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".partial", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, dtype, shape in tensors:
            write_tensor(f, rng, name, dtype, shape)
    os.replace(path + ".partial", path)
    return off


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer-from", default=os.path.join(os.path.dirname(__file__), "..", "golden", "tiny"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)

    # One shard for the embeddings, one per layer, one for the head, named as OpenAI names them (zero-based,
    # "of" the last index).
    groups = [[("model.embed_tokens.weight", "BF16", [VOCAB, H])]]
    groups += [tensors_of_layer(i) for i in range(a.layers)]
    groups.append([("model.norm.weight", "BF16", [H]), ("lm_head.weight", "BF16", [VOCAB, H])])
    last = len(groups) - 1
    weight_map, total = {}, 0
    for k, group in enumerate(groups):
        fname = f"model-{k:05d}-of-{last:05d}.safetensors"
        total += write_shard(os.path.join(a.out, fname), rng, group)
        for name, _, _ in group:
            weight_map[name] = fname
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config(a.layers), f, indent=2)
    for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json",
                 "special_tokens_map.json"]:
        src = os.path.join(a.tokenizer_from, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(a.out, name))
    print(f"wrote {a.out}: {a.layers} layers, {total / 1e9:.2f} GB of tensors")


if __name__ == "__main__":
    main()
