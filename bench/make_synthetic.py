#!/usr/bin/env python3
"""Write a synthetic gpt-oss checkpoint with gpt-oss-20b's or gpt-oss-120b's real widths, in the Hugging Face MXFP4
layout, at any depth.

Both models: H = I = 2880, 64 query heads / 8 KV heads of 64, top-4 routing, vocabulary 201088, YaRN factor 32
over 4096, sliding window 128 on every other layer. gpt-oss-20b has 32 experts and 24 layers, gpt-oss-120b 128
experts and 36 layers (about 1.7 GB per layer in MXFP4); the config.json written is the published one
(huggingface.co/openai/gpt-oss-{20b,120b}/raw/main/config.json) with num_hidden_layers and layer_types cut to
--layers. Tensors are streamed to disk (memory stays at one 64 MB chunk), seeded, so the same arguments give the
same bytes. The values are random but sane (BF16 normals of small scale, MXFP4 codes with scale exponents near
2^-4), which is all the converter, quantizer and parity benchmarks need.

    python bench/make_synthetic.py OUT_DIR [--model 20b|120b] [--layers N] [--seed 0] [--tokenizer-from golden/tiny]

Shards are named as OpenAI's are (model-00000-of-00014.safetensors ...: zero-based, "of" the last index; 120b has
15 shards, 20b 3) and filled as transformers' save_pretrained fills them: tensors in the model's order
(embeddings, then each layer, then the final norm and the head), a new shard when the next tensor would take the
current one past --max-shard-bytes (5 GB, its default), so shards end mid-layer as the published ones do. At full
depth this gives what is published: 120b 15 shards, 65.2 GB; 20b 3 shards, 13.8 GB (the published index's exact
boundaries were not available here to compare).

Only numpy is needed. Tokenizer files are copied from --tokenizer-from (the real o200k tokenizer.json cannot be
downloaded here); config.vocab_size stays 201088, so converters pad the vocabulary as they do for the real model.
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

H, I, N_HEAD, N_KV, HEAD_DIM, TOP_K, VOCAB = 2880, 2880, 64, 8, 64, 4, 201088
# What differs between the two published configs: experts per layer and depth.
MODELS = {"20b": {"experts": 32, "layers": 24}, "120b": {"experts": 128, "layers": 36}}
N_EXPERT = MODELS["20b"]["experts"]  # set from --model in main()


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


def pack_shards(tensors, max_bytes):
    """Greedy, in order: a new shard when the next tensor would take the current one past max_bytes."""
    shards, cur, size = [], [], 0
    for t in tensors:
        n = int(np.prod(t[2])) * ELEM[t[1]]
        if cur and size + n > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += n
    if cur:
        shards.append(cur)
    return shards


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
    ap.add_argument("--model", choices=sorted(MODELS), default="20b", help="whose widths (default 20b)")
    ap.add_argument("--layers", type=int, default=4, help="depth (default 4; 'full' depth is 24 / 36)")
    ap.add_argument("--max-shard-bytes", type=int, default=5_000_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer-from", default=os.path.join(os.path.dirname(__file__), "..", "golden", "tiny"))
    a = ap.parse_args()
    global N_EXPERT
    N_EXPERT = MODELS[a.model]["experts"]
    if not 1 <= a.layers <= MODELS[a.model]["layers"]:
        ap.error(f"--layers must be 1 to {MODELS[a.model]['layers']} for gpt-oss-{a.model}")
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)

    tensors = [("model.embed_tokens.weight", "BF16", [VOCAB, H])]
    for i in range(a.layers):
        tensors += tensors_of_layer(i)
    tensors += [("model.norm.weight", "BF16", [H]), ("lm_head.weight", "BF16", [VOCAB, H])]
    groups = pack_shards(tensors, a.max_shard_bytes)
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
    print(f"wrote {a.out}: gpt-oss-{a.model} widths, {a.layers} layers, {len(groups)} shards, "
          f"{total / 1e9:.2f} GB of tensors")


if __name__ == "__main__":
    main()
