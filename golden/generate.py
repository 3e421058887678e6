#!/usr/bin/env python3
"""Build ossify's golden test data: tiny gpt-oss checkpoints in every layout and their reference outputs.

Run from anywhere with the pinned environment (golden/requirements.txt):

    /opt/venv/bin/python golden/generate.py            # rewrites everything below golden/ (not golden/quant/)
    /opt/venv/bin/python golden/generate.py --stage X  # one stage: tokenizer, weights, reference, original,
                                                       # llamacpp, llamacpp-logits

Everything is seeded and deterministic. See golden/README.md for what each file is and the facts found here.
The weights are built by this script (numbers chosen by a seeded generator); every *reference output* is computed
by an independent implementation that reads the files back: Hugging Face transformers (logits, hidden states),
OpenAI's gpt-oss reference (original/ layout), llama.cpp's converter and llama.cpp itself (GGUF files, logits).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

GOLDEN = Path(__file__).resolve().parent
TINY = GOLDEN / "tiny"
ORIGINAL = TINY / "original"
TINY_BF16 = GOLDEN / "tiny-bf16"
NOISY = GOLDEN / "tiny-bf16-noisy"
REFERENCE = GOLDEN / "reference"
LLAMACPP = GOLDEN / "llamacpp"
LLAMA_CPP_SRC = Path(
    os.environ.get("LLAMA_CPP_SRC", "/opt/llama/llama_cpp_python-0.3.36/vendor/llama.cpp")
)
# OpenAI's reference implementation (PyPI `gpt-oss` 0.0.9, unpacked with --no-deps; it declares Python >= 3.12
# but its torch code runs on 3.11).
GPT_OSS_SITE = os.environ.get("GPT_OSS_SITE", "/tmp/golden-site")

SEED = 20250805

# ---- model shape -------------------------------------------------------------------------------------------------
# Non-square on purpose (hidden != intermediate) so a transposition error cannot hide behind a shape check.
HIDDEN = 96
INTERMEDIATE = 64
HEAD_DIM = 16
N_HEADS = 4
N_KV_HEADS = 2
N_EXPERTS = 4
TOP_K = 2
N_LAYERS = 4  # > the sliding/full period of 2
SLIDING_WINDOW = 8  # test sequences are 32 and 20 tokens
ROPE_THETA = 150000.0
YARN_FACTOR = 32.0
# OpenAI's reference asserts 0 < low < high < head_dim/2 - 1 for the YaRN ramp; with head_dim 16 and theta 150000
# that needs an original context between ~202 and ~213000 tokens. 1024 gives ramp bounds 1.0927 / 3.4190, which
# llama.cpp rounds to 1 / 4 -- the same pattern as the real config (8.0928 / 17.398 -> 8 / 18): low rounds down a
# little, high rounds up by ~0.6. So HF (truncate: false) and llama.cpp's rounded bounds really differ.
ORIGINAL_CONTEXT = 1024
MAX_POSITIONS = int(ORIGINAL_CONTEXT * YARN_FACTOR)  # the real config keeps max/original == factor (131072/4096)
SWIGLU_LIMIT = 7.0
RMS_EPS = 1e-5

# ---- vocabulary ----------------------------------------------------------------------------------------------------
N_REGULAR = 490  # BPE tokens 0..489 (256 byte tokens + merges); real o200k: 0..199997
# Special tokens at the same offsets from the end of the regular vocabulary as in o200k_harmony (199998 + k).
SPECIAL_OFFSETS = {
    0: "<|startoftext|>",
    1: "<|endoftext|>",
    4: "<|return|>",
    5: "<|constrain|>",
    7: "<|channel|>",
    8: "<|start|>",
    9: "<|end|>",
    10: "<|message|>",
    14: "<|call|>",
    20: "<|endofprompt|>",
}
N_SPECIAL = 21  # real tokenizer.json: 199998..200018
TOKENIZER_SIZE = N_REGULAR + N_SPECIAL  # 511
VOCAB_SIZE = 544  # config vocab_size, larger than the tokenizer as in the real model (201088 vs 200019)

# tiktoken's o200k_base / o200k_harmony split regex (tiktoken_ext/openai_public.py), as in gpt-oss's tokenizer.json
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

CORPUS = """\
The quick brown fox jumps over the lazy dog. A tiny model is still a model: it has layers, heads and experts,
and every one of them must be wired the right way round. We convert checkpoints, we quantize them, and we check
that the converted model computes what the source computed, token by token and logit by logit.
Mixture-of-experts layers route each token to a few experts; the router picks the top two of four, and a softmax
over their scores weighs the outputs. Attention alternates between a sliding window and the full context.
Sinks give every head a place to put attention it does not want to spend. Rotary embeddings turn positions into
angles, and YaRN stretches those angles so a model trained on short texts can read long ones.
Numbers: 1, 12, 123, 1234, 3.14159, 2025-08-05, 0x7f, 1e-5, 98.6%, $42.00 and 7/8.
Code: fn main() { println!("hello, world"); } def f(x): return x * 2 + 1  # comment
Questions? Yes! No... Maybe; it's fine, isn't it? They're here, we've seen it, I'm sure, you'll see, he'd know.
Über naïve café résumé, Straße und Größe; déjà vu. Numbers in words: one two three four five six seven eight.
The cat sat on the mat. The dog sat on the log. The bird sat on the wire and sang to the morning sun.
Weights are stored as blocks of thirty-two values sharing one scale, four bits each, and the scale is a power of two.
A checkpoint is a folder: config, tokenizer, shards and an index that says which shard holds which tensor.
"""

TEXT_SEQ0 = (
    "<|start|>user<|message|>What does a sliding window of eight tokens let a query see?<|end|>"
    "<|start|>assistant<|channel|>final<|message|>The last eight keys, itself included, and nothing older.<|return|>"
)
TEXT_SEQ1 = "The quick brown fox jumps over the lazy dog, and the model routes it to two experts."
SEQ_LENGTHS = (32, 20)

FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]

# What the real openai/gpt-oss-20b config.json says (modules kept in BF16).
MODULES_TO_NOT_CONVERT = [
    "model.layers.*.self_attn",
    "model.layers.*.mlp.router",
    "model.embed_tokens",
    "lm_head",
]


def special_id(name: str) -> int:
    for off, n in SPECIAL_OFFSETS.items():
        if n == name:
            return N_REGULAR + off
    raise KeyError(name)


def special_tokens() -> list[tuple[int, str]]:
    out = []
    for off in range(N_SPECIAL):
        tid = N_REGULAR + off
        out.append((tid, SPECIAL_OFFSETS.get(off, f"<|reserved_{tid}|>")))
    return out


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


# =================================================================================================================
# Tokenizer
# =================================================================================================================
def build_tokenizer() -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(O200K_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=N_REGULAR,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    if tok.get_vocab_size() != N_REGULAR:
        raise SystemExit(f"BPE training gave {tok.get_vocab_size()} tokens, wanted {N_REGULAR}: enlarge CORPUS")
    for tid, name in special_tokens():
        tok.add_special_tokens([AddedToken(name, special=True, normalized=False)])
        if tok.token_to_id(name) != tid:
            raise SystemExit(f"special token {name} got id {tok.token_to_id(name)}, wanted {tid}")
    TINY.mkdir(parents=True, exist_ok=True)
    tok.save(str(TINY / "tokenizer.json"))

    bos, eos, pad = "<|startoftext|>", "<|return|>", "<|endoftext|>"
    write_json(
        TINY / "tokenizer_config.json",
        {
            "added_tokens_decoder": {
                str(tid): {
                    "content": name,
                    "lstrip": False,
                    "normalized": False,
                    "rstrip": False,
                    "single_word": False,
                    "special": True,
                }
                for tid, name in special_tokens()
            },
            "bos_token": bos,
            "clean_up_tokenization_spaces": False,
            "eos_token": eos,
            "extra_special_tokens": {},
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": 1000000000000000019884624838656,
            "pad_token": pad,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
    write_json(TINY / "special_tokens_map.json", {"bos_token": bos, "eos_token": eos, "pad_token": pad})
    (TINY / "chat_template.jinja").write_text(CHAT_TEMPLATE)


# A small harmony-format template (the real one also renders tools, reasoning effort and dates).
CHAT_TEMPLATE = """\
{%- for message in messages -%}
{%- if message['role'] == 'assistant' -%}
<|start|>assistant<|channel|>final<|message|>{{ message['content'] }}<|end|>
{%- else -%}
<|start|>{{ message['role'] }}<|message|>{{ message['content'] }}<|end|>
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}
"""


def make_tokens() -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TINY / "tokenizer.json"))
    seqs, texts = [], []
    for text, n in zip((TEXT_SEQ0, TEXT_SEQ1), SEQ_LENGTHS):
        ids = tok.encode(text, add_special_tokens=False).ids
        if len(ids) < n:
            raise SystemExit(f"text tokenizes to {len(ids)} tokens, need {n}: {text!r}")
        seqs.append(ids[:n])
        texts.append(text)
    out = {
        "sequences": seqs,
        "texts": texts,
        "note": "sequence k = the first len(sequence k) tokens of texts[k], encoded by tiny/tokenizer.json "
        "(tokenizers, add_special_tokens=False; <|...|> markers are special tokens)",
        "decoded": [tok.decode(s, skip_special_tokens=False) for s in seqs],
    }
    write_json(REFERENCE / "tokens.json", out)
    return out


# =================================================================================================================
# Weights
# =================================================================================================================
def hf_config(mxfp4: bool) -> dict:
    """config.json as openai/gpt-oss-20b publishes it, at tiny size."""
    cfg = {
        "architectures": ["GptOssForCausalLM"],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "eos_token_id": special_id("<|return|>"),
        "experts_per_token": TOP_K,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initial_context_length": ORIGINAL_CONTEXT,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(N_LAYERS)],
        "max_position_embeddings": MAX_POSITIONS,
        "model_type": "gpt_oss",
        "num_attention_heads": N_HEADS,
        "num_experts_per_tok": TOP_K,
        "num_hidden_layers": N_LAYERS,
        "num_key_value_heads": N_KV_HEADS,
        "num_local_experts": N_EXPERTS,
        "output_router_logits": False,
        "pad_token_id": special_id("<|endoftext|>"),
        "quantization_config": {"modules_to_not_convert": MODULES_TO_NOT_CONVERT, "quant_method": "mxfp4"},
        "rms_norm_eps": RMS_EPS,
        "rope_scaling": {
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "factor": YARN_FACTOR,
            "original_max_position_embeddings": ORIGINAL_CONTEXT,
            "rope_type": "yarn",
            "truncate": False,
        },
        "rope_theta": int(ROPE_THETA),
        "router_aux_loss_coef": 0.9,
        "sliding_window": SLIDING_WINDOW,
        "swiglu_limit": SWIGLU_LIMIT,
        "tie_word_embeddings": False,
        "transformers_version": "4.55.0.dev0",
        "use_cache": True,
        "vocab_size": VOCAB_SIZE,
    }
    if not mxfp4:
        del cfg["quantization_config"]
    return cfg


def generation_config() -> dict:
    return {
        "bos_token_id": special_id("<|startoftext|>"),
        "do_sample": True,
        "eos_token_id": [special_id("<|return|>"), special_id("<|endoftext|>"), special_id("<|call|>")],
        "pad_token_id": special_id("<|endoftext|>"),
        "transformers_version": "4.55.0.dev0",
    }


def original_config() -> dict:
    """original/config.json: exactly the fields of gpt_oss.torch.model.ModelConfig."""
    return {
        "num_hidden_layers": N_LAYERS,
        "num_experts": N_EXPERTS,
        "experts_per_token": TOP_K,
        "vocab_size": VOCAB_SIZE,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "swiglu_limit": SWIGLU_LIMIT,
        "head_dim": HEAD_DIM,
        "num_attention_heads": N_HEADS,
        "num_key_value_heads": N_KV_HEADS,
        "sliding_window": SLIDING_WINDOW,
        "initial_context_length": ORIGINAL_CONTEXT,
        "rope_theta": ROPE_THETA,
        "rope_scaling_factor": YARN_FACTOR,
        "rope_ntk_alpha": 1.0,
        "rope_ntk_beta": 32.0,
    }


def bf16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).contiguous()


class Weights:
    """One seeded function, described three ways: MXFP4 codes/scales for the experts, BF16 for everything else."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(SEED)

        def randn(*shape, std=1.0, mean=0.0):
            return bf16(torch.randn(*shape, generator=g) * std + mean)

        def mxfp4(rows, cols):
            codes = torch.randint(0, 16, (N_EXPERTS, rows, cols), generator=g, dtype=torch.int64)
            # shared exponents 2^-8 .. 2^-4 (scale bytes 119..123), varied per block
            scales = torch.randint(119, 124, (N_EXPERTS, rows, cols // 32), generator=g, dtype=torch.int64)
            return codes, scales

        q_dim, kv_dim = N_HEADS * HEAD_DIM, N_KV_HEADS * HEAD_DIM
        self.embed = randn(VOCAB_SIZE, HIDDEN, std=1.0)
        self.layers = []
        for _ in range(N_LAYERS):
            lw = {
                "input_norm": randn(HIDDEN, std=0.1, mean=1.0),
                "post_norm": randn(HIDDEN, std=0.1, mean=1.0),
                "q_w": randn(q_dim, HIDDEN, std=1.5 / math.sqrt(HIDDEN)),
                "q_b": randn(q_dim, std=0.1),
                "k_w": randn(kv_dim, HIDDEN, std=1.5 / math.sqrt(HIDDEN)),
                "k_b": randn(kv_dim, std=0.1),
                "v_w": randn(kv_dim, HIDDEN, std=1.0 / math.sqrt(HIDDEN)),
                "v_b": randn(kv_dim, std=0.1),
                "o_w": randn(HIDDEN, q_dim, std=1.0 / math.sqrt(q_dim)),
                "o_b": randn(HIDDEN, std=0.1),
                "sinks": randn(N_HEADS, std=1.0),
                "router_w": randn(N_EXPERTS, HIDDEN, std=1.0 / math.sqrt(HIDDEN)),
                "router_b": randn(N_EXPERTS, std=0.1),
                "gate_up_b": randn(N_EXPERTS, 2 * INTERMEDIATE, std=0.1),
                "down_b": randn(N_EXPERTS, HIDDEN, std=0.1),
            }
            # experts in the MXFP4 orientation: gate_up [E, 2I, H] (rows interleaved gate, up), down [E, H, I]
            lw["gate_up_codes"], lw["gate_up_scales"] = mxfp4(2 * INTERMEDIATE, HIDDEN)
            # One "hot" expert per layer gets 4x larger gate/up weights, so the swiglu clamps (gate <= 7,
            # |up| <= 7) are exercised on the tokens routed to it.
            lw["gate_up_scales"][len(self.layers) % N_EXPERTS] += 2
            lw["down_codes"], lw["down_scales"] = mxfp4(HIDDEN, INTERMEDIATE)
            self.layers.append(lw)
        self.norm = randn(HIDDEN, std=0.1, mean=1.0)
        self.lm_head = randn(VOCAB_SIZE, HIDDEN, std=2.0 / math.sqrt(HIDDEN))

        # Noisy twin's experts: same shapes and scale, plain gaussians rounded to bf16 (not MXFP4-representable).
        gn = torch.Generator().manual_seed(SEED + 1)
        self.noisy = []
        for _ in range(N_LAYERS):
            self.noisy.append(
                {
                    "gate_up": bf16(torch.randn(N_EXPERTS, 2 * INTERMEDIATE, HIDDEN, generator=gn) * 0.09),
                    "down": bf16(torch.randn(N_EXPERTS, HIDDEN, INTERMEDIATE, generator=gn) * 0.09),
                }
            )

    @staticmethod
    def pack_blocks(codes: torch.Tensor) -> torch.Tensor:
        """[E, rows, cols] codes -> [E, rows, cols/32, 16] bytes, element 2j low nibble, 2j+1 high nibble."""
        e, r, c = codes.shape
        c2 = codes.reshape(e, r, c // 32, 16, 2)
        return (c2[..., 0] | (c2[..., 1] << 4)).to(torch.uint8).contiguous()

    @staticmethod
    def dequant(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """[E, rows, cols] float32 values, computed from the codes (not from the packed bytes)."""
        lut = torch.tensor(FP4_VALUES, dtype=torch.float32)
        e, r, c = codes.shape
        vals = lut[codes].reshape(e, r, c // 32, 32)
        vals = torch.ldexp(vals, (scales - 127).to(torch.int32)[..., None])
        return vals.reshape(e, r, c)

    def hf_tensors(self, layout: str) -> dict[str, torch.Tensor]:
        """layout: 'mxfp4' (as published), 'bf16' (dequantized fine-tune), 'noisy' (bf16, not MXFP4-representable)."""
        t = {"model.embed_tokens.weight": self.embed}
        for i, lw in enumerate(self.layers):
            p = f"model.layers.{i}."
            t[p + "input_layernorm.weight"] = lw["input_norm"]
            t[p + "post_attention_layernorm.weight"] = lw["post_norm"]
            for n in "qkv":
                t[p + f"self_attn.{n}_proj.weight"] = lw[f"{n}_w"]
                t[p + f"self_attn.{n}_proj.bias"] = lw[f"{n}_b"]
            t[p + "self_attn.o_proj.weight"] = lw["o_w"]
            t[p + "self_attn.o_proj.bias"] = lw["o_b"]
            t[p + "self_attn.sinks"] = lw["sinks"]
            t[p + "mlp.router.weight"] = lw["router_w"]
            t[p + "mlp.router.bias"] = lw["router_b"]
            t[p + "mlp.experts.gate_up_proj_bias"] = lw["gate_up_b"]
            t[p + "mlp.experts.down_proj_bias"] = lw["down_b"]
            if layout == "mxfp4":
                t[p + "mlp.experts.gate_up_proj_blocks"] = self.pack_blocks(lw["gate_up_codes"])
                t[p + "mlp.experts.gate_up_proj_scales"] = lw["gate_up_scales"].to(torch.uint8).contiguous()
                t[p + "mlp.experts.down_proj_blocks"] = self.pack_blocks(lw["down_codes"])
                t[p + "mlp.experts.down_proj_scales"] = lw["down_scales"].to(torch.uint8).contiguous()
            else:
                if layout == "bf16":
                    gu = self.dequant(lw["gate_up_codes"], lw["gate_up_scales"])
                    dn = self.dequant(lw["down_codes"], lw["down_scales"])
                else:
                    gu, dn = self.noisy[i]["gate_up"].float(), self.noisy[i]["down"].float()
                # fine-tune layout is (E, in, out): the transpose of the MXFP4 rows-by-cols layout
                t[p + "mlp.experts.gate_up_proj"] = bf16(gu.transpose(1, 2))
                t[p + "mlp.experts.down_proj"] = bf16(dn.transpose(1, 2))
        t["model.norm.weight"] = self.norm
        t["lm_head.weight"] = self.lm_head
        return t

    def original_tensors(self) -> dict[str, torch.Tensor]:
        """OpenAI's original/ layout (read by gpt_oss.torch.weights.Checkpoint)."""
        t = {"embedding.weight": self.embed}
        for i, lw in enumerate(self.layers):
            p = f"block.{i}."
            t[p + "attn.norm.scale"] = lw["input_norm"]
            t[p + "attn.qkv.weight"] = torch.cat([lw["q_w"], lw["k_w"], lw["v_w"]], dim=0).contiguous()
            t[p + "attn.qkv.bias"] = torch.cat([lw["q_b"], lw["k_b"], lw["v_b"]], dim=0).contiguous()
            t[p + "attn.sinks"] = lw["sinks"]
            t[p + "attn.out.weight"] = lw["o_w"]
            t[p + "attn.out.bias"] = lw["o_b"]
            t[p + "mlp.norm.scale"] = lw["post_norm"]
            t[p + "mlp.gate.weight"] = lw["router_w"]
            t[p + "mlp.gate.bias"] = lw["router_b"]
            t[p + "mlp.mlp1_weight.blocks"] = self.pack_blocks(lw["gate_up_codes"])
            t[p + "mlp.mlp1_weight.scales"] = lw["gate_up_scales"].to(torch.uint8).contiguous()
            t[p + "mlp.mlp1_bias"] = lw["gate_up_b"]
            t[p + "mlp.mlp2_weight.blocks"] = self.pack_blocks(lw["down_codes"])
            t[p + "mlp.mlp2_weight.scales"] = lw["down_scales"].to(torch.uint8).contiguous()
            t[p + "mlp.mlp2_bias"] = lw["down_b"]
        t["norm.scale"] = self.norm
        t["unembedding.weight"] = self.lm_head
        return t


# Shard plan for tiny/ (OpenAI's zero-based, off-by-one names: model-00000-of-00002 .. model-00002-of-00002).
# Each layer's expert tensors stay together in one shard (llama.cpp's converter pairs *_blocks with the *_scales
# that follows). Layer 1's attention and MoE live in different shards, so index routing matters.
def shard_of(name: str) -> str:
    if name.startswith("model.embed_tokens") or name.startswith("model.layers.0."):
        k = 0
    elif name.startswith("model.layers.1."):
        k = 0 if ".self_attn." in name or "input_layernorm" in name else 1
    elif name.startswith("model.layers.2."):
        k = 1
    else:
        k = 2
    return f"model-{k:05d}-of-00002.safetensors"


def save_sharded(folder: Path, tensors: dict[str, torch.Tensor]) -> None:
    shards: dict[str, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        shards.setdefault(shard_of(name), {})[name] = t
    total = 0
    weight_map = {}
    for fname in sorted(shards):
        save_file(shards[fname], str(folder / fname), metadata={"format": "pt"})
        for name, t in shards[fname].items():
            weight_map[name] = fname
            total += t.numel() * t.element_size()
    write_json(
        folder / "model.safetensors.index.json",
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
    )


def clean_dir(folder: Path, keep: tuple[str, ...] = ()) -> None:
    if folder.exists():
        for p in folder.iterdir():
            if p.name in keep:
                continue
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def copy_tokenizer_files(dst: Path) -> None:
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        shutil.copyfile(TINY / f, dst / f)


def build_checkpoints() -> Weights:
    w = Weights()
    tok_files = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
    clean_dir(TINY, keep=tok_files)
    write_json(TINY / "config.json", hf_config(mxfp4=True))
    write_json(TINY / "generation_config.json", generation_config())
    save_sharded(TINY, w.hf_tensors("mxfp4"))

    ORIGINAL.mkdir(parents=True, exist_ok=True)
    write_json(ORIGINAL / "config.json", original_config())
    save_file(w.original_tensors(), str(ORIGINAL / "model.safetensors"), metadata={"format": "pt"})

    for folder, layout in ((TINY_BF16, "bf16"), (NOISY, "noisy")):
        clean_dir(folder)
        write_json(folder / "config.json", hf_config(mxfp4=False))
        write_json(folder / "generation_config.json", generation_config())
        copy_tokenizer_files(folder)
        save_file(w.hf_tensors(layout), str(folder / "model.safetensors"), metadata={"format": "pt"})
    return w


# =================================================================================================================
# Checks and reference outputs with transformers
# =================================================================================================================
def load_hf(folder: Path, yarn_truncate: bool = False):
    """Load a checkpoint with transformers, float32 weights, eager attention, eager experts.

    yarn_truncate=True overrides rope_parameters["truncate"] (floor/ceil of the YaRN ramp bounds, as llama.cpp does).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, Mxfp4Config

    kwargs = dict(dtype=torch.float32, attn_implementation="eager", experts_implementation="eager")
    if yarn_truncate:
        config = AutoConfig.from_pretrained(str(folder))
        config.rope_parameters["truncate"] = True
        kwargs["config"] = config
    cfg = json.loads((folder / "config.json").read_text())
    if "quantization_config" in cfg:
        # dequantize=True: MXFP4 -> exact float values (FP4 table * 2^(scale-127)) in the requested dtype
        kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    model.eval()
    return model


def check_mxfp4_vs_bf16(m_mx, m_bf) -> None:
    sd_mx, sd_bf = m_mx.state_dict(), m_bf.state_dict()
    if set(sd_mx) != set(sd_bf):
        raise SystemExit(f"state dict keys differ: {sorted(set(sd_mx) ^ set(sd_bf))}")
    worst = 0.0
    for k in sd_mx:
        a, b = sd_mx[k], sd_bf[k]
        if a.shape != b.shape:
            raise SystemExit(f"{k}: shape {tuple(a.shape)} (mxfp4) vs {tuple(b.shape)} (bf16)")
        worst = max(worst, (a.float() - b.float()).abs().max().item())
    print(f"  transformers' dequantized MXFP4 weights vs BF16 twin: max |diff| = {worst}")
    if worst != 0.0:
        raise SystemExit("MXFP4 checkpoint and its BF16 twin do not describe the same weights")


def check_saved_like_transformers(m_mx) -> dict:
    """How transformers 5 saves a dequantized MXFP4 model: the layout tiny-bf16/ must match."""
    from transformers import AutoModelForCausalLM, Mxfp4Config

    with tempfile.TemporaryDirectory() as d:
        m = AutoModelForCausalLM.from_pretrained(
            str(TINY), dtype=torch.bfloat16, quantization_config=Mxfp4Config(dequantize=True)
        )
        m.save_pretrained(d)
        files = sorted(os.listdir(d))
        cfg = json.loads((Path(d) / "config.json").read_text())
        saved = {}
        for f in files:
            if f.endswith(".safetensors"):
                with safe_open(str(Path(d) / f), framework="pt") as sf:
                    for k in sf.keys():
                        saved[k] = sf.get_tensor(k)
    ours = {}
    with safe_open(str(TINY_BF16 / "model.safetensors"), framework="pt") as sf:
        for k in sf.keys():
            ours[k] = sf.get_tensor(k)
    if set(saved) != set(ours):
        raise SystemExit(f"tiny-bf16 names differ from transformers' save: {sorted(set(saved) ^ set(ours))}")
    for k in ours:
        if saved[k].dtype != ours[k].dtype or saved[k].shape != ours[k].shape or not torch.equal(saved[k], ours[k]):
            raise SystemExit(f"tiny-bf16 {k}: {ours[k].dtype} {tuple(ours[k].shape)} vs transformers' save "
                             f"{saved[k].dtype} {tuple(saved[k].shape)} (or values differ)")
    info = {
        "files": files,
        "quantization_config_in_saved_config": cfg.get("quantization_config"),
        "rope_keys_in_saved_config": sorted(k for k in cfg if k.startswith("rope")),
    }
    print(f"  transformers' save_pretrained of the dequantized model: {info}")
    print("  -> same tensor names, dtypes, shapes and values as tiny-bf16/model.safetensors")
    return info


def run_hf(model, ids: list[int]):
    """Logits [T, V] and hidden states [L+1, T, H] (float32), plus router picks per layer."""
    picks = []
    hooks = [
        layer.mlp.router.register_forward_hook(lambda _m, _i, out: picks.append(out[2].detach().clone()))
        for layer in model.model.layers
    ]
    final_in, attn_resid = [], []
    hooks.append(model.model.norm.register_forward_hook(lambda _m, inp, _o: final_in.append(inp[0].detach())))
    # residual stream after each layer's attention block = input of its post_attention_layernorm
    for layer in model.model.layers:
        hooks.append(
            layer.post_attention_layernorm.register_forward_hook(
                lambda _m, inp, _o: attn_resid.append(inp[0][0].detach().clone())
            )
        )
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    for h in hooks:
        h.remove()
    logits = out.logits[0].float().numpy()
    hidden = torch.stack([h[0] for h in out.hidden_states]).float().numpy()
    # Which tensor is hidden_states[-1]: the last layer's output (input of the final norm) or the normed one?
    last_is_prenorm = bool(torch.equal(out.hidden_states[-1], final_in[0]))
    extra = {
        "attn_resid": torch.stack(attn_resid).float().numpy(),  # [L, T, H]
        "last_prenorm": final_in[0][0].float().numpy(),  # [T, H]
    }
    return logits, hidden, picks, last_is_prenorm, extra


def reference_outputs(tokens: dict) -> dict:
    facts: dict = {}
    print("loading tiny (MXFP4, dequantize=True), tiny-bf16, tiny-bf16-noisy with transformers, float32 ...")
    m_mx = load_hf(TINY)
    m_bf = load_hf(TINY_BF16)
    m_nz = load_hf(NOISY)
    facts["rope_parameters"] = dict(m_mx.config.rope_parameters)
    facts["experts_implementation"] = m_mx.config._experts_implementation
    facts["attn_implementation"] = m_mx.config._attn_implementation
    print(f"  config.rope_parameters as transformers reads rope_scaling: {facts['rope_parameters']}")
    check_mxfp4_vs_bf16(m_mx, m_bf)
    facts["saved_dequantized"] = check_saved_like_transformers(m_mx)

    # The noisy twin must not be MXFP4-representable: count 32-blocks (along the input dim) that are exactly
    # FP4 * 2^k for some k.
    lut = torch.tensor([abs(v) for v in FP4_VALUES[:8]])
    n_rep = n_blk = 0
    for name, p in m_nz.state_dict().items():
        if name.endswith("gate_up_proj") or name.endswith("down_proj"):
            blocks = p.transpose(1, 2).reshape(-1, 32)
            for b in blocks:
                amax = b.abs().max()
                n_blk += 1
                if amax == 0:
                    n_rep += 1
                    continue
                ok = False
                for k in range(-20, 4):
                    s = 2.0**k
                    if torch.all(torch.isin((b.abs() / s), lut)):
                        ok = True
                        break
                n_rep += ok
    print(f"  noisy experts: {n_rep} of {n_blk} 32-blocks are MXFP4-representable")
    facts["noisy_representable_blocks"] = [n_rep, n_blk]
    if n_rep != 0:
        raise SystemExit("noisy experts should not be MXFP4-representable")

    REFERENCE.mkdir(parents=True, exist_ok=True)
    hist_all = torch.zeros(N_LAYERS, N_EXPERTS, dtype=torch.int64)
    twin_logits = {}
    for name, model in (("tiny", m_mx), ("tiny-bf16", m_bf), ("tiny-bf16-noisy", m_nz)):
        for k, ids in enumerate(tokens["sequences"]):
            logits, hidden, picks, last_prenorm, extra = run_hf(model, ids)
            facts["hidden_last_is_prenorm"] = last_prenorm
            twin_logits[(name, k)] = logits
            if name == "tiny-bf16":
                # same function as tiny (checked below): only its logits are stored, for tests that look them up
                # by checkpoint name; its hidden states are tiny's
                np.save(REFERENCE / f"{name}.seq{k}.logits.npy", logits.astype(np.float32))
                continue
            np.save(REFERENCE / f"{name}.seq{k}.logits.npy", logits.astype(np.float32))
            np.save(REFERENCE / f"{name}.seq{k}.hidden.npy", hidden.astype(np.float32))
            np.save(REFERENCE / f"{name}.seq{k}.attn_resid.npy", extra["attn_resid"].astype(np.float32))
            np.save(REFERENCE / f"{name}.seq{k}.last_prenorm.npy", extra["last_prenorm"].astype(np.float32))
            stds = [float(h.std()) for h in hidden]
            print(f"  {name} seq{k}: T={len(ids)} logits std {logits.std():.3f} "
                  f"hidden std per layer {[round(s, 3) for s in stds]}")
            for li, p in enumerate(picks):
                hist = torch.bincount(p.flatten(), minlength=N_EXPERTS)
                if name == "tiny":
                    hist_all[li] += hist
            if not all(0.2 < s < 20 for s in stds):
                raise SystemExit(f"{name}: hidden-state std out of range: {stds}")
    print(f"  tiny router histogram (layer x expert, both sequences, top-{TOP_K} picks):\n{hist_all.numpy()}")
    facts["router_histogram"] = hist_all.tolist()
    if (hist_all == 0).any():
        raise SystemExit("some expert is never routed to")

    # MXFP4 and BF16 twins are the same function
    for k in range(len(tokens["sequences"])):
        d = float(np.abs(twin_logits[("tiny", k)] - twin_logits[("tiny-bf16", k)]).max())
        print(f"  tiny vs tiny-bf16 logits, seq{k}: max |diff| = {d}")
        facts[f"tiny_vs_tiny_bf16_seq{k}"] = d
        if d != 0.0:
            raise SystemExit("tiny and tiny-bf16 should give identical float32 logits")
    facts["mask"] = sliding_mask_fact(m_mx)

    # Same checkpoints with llama.cpp's rounded YaRN bounds (rope_parameters truncate=True): the oracle for ossify's
    # --yarn-truncate mode and the explanation of llama.cpp's difference from the default logits.
    for name, folder in (("tiny", TINY), ("tiny-bf16-noisy", NOISY)):
        m = load_hf(folder, yarn_truncate=True)
        facts[f"{name}.inv_freq.truncate_false"] = [float(x) for x in m_mx.model.rotary_emb.inv_freq]
        facts[f"{name}.inv_freq.truncate_true"] = [float(x) for x in m.model.rotary_emb.inv_freq]
        for k, ids in enumerate(tokens["sequences"]):
            with torch.no_grad():
                logits = m(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
            np.save(REFERENCE / f"{name}.seq{k}.logits-yarn-truncate.npy", logits.astype(np.float32))
            d = float(np.abs(logits - np.load(REFERENCE / f"{name}.seq{k}.logits.npy")).max())
            print(f"  {name} seq{k}: truncate=true vs false, max |dlogit| = {d:.4f}")
            facts[f"{name}.seq{k}.yarn_truncate_vs_default_max_abs_dlogit"] = d
    write_json(REFERENCE / "facts.json", facts)
    return facts


def sliding_mask_fact(model) -> dict:
    """Ask transformers' own mask builder how many keys a query sees in a sliding layer."""
    from transformers.masking_utils import create_sliding_window_causal_mask

    T = 16
    emb = torch.zeros(1, T, HIDDEN)
    mask = create_sliding_window_causal_mask(
        config=model.config, inputs_embeds=emb, attention_mask=None, cache=None, position_ids=torch.arange(T)[None]
    )
    m = mask[0, 0] if mask.dim() == 4 else mask
    visible = (m == 0).sum(-1) if m.dtype != torch.bool else m.sum(-1)
    seen = [int(x) for x in visible]
    print(f"  HF sliding mask (window {SLIDING_WINDOW}): keys visible per query 0..{T-1}: {seen}")
    return {"window": SLIDING_WINDOW, "keys_visible_per_query": seen}


# =================================================================================================================
# OpenAI's reference implementation on the original/ layout
# =================================================================================================================
def check_original(tokens: dict) -> dict:
    facts: dict = {}
    sys.path.insert(0, GPT_OSS_SITE)
    try:
        from gpt_oss.torch.model import Transformer  # noqa: E402
    except Exception as e:  # report why, do not fail the whole run
        msg = f"could not import gpt_oss.torch.model from {GPT_OSS_SITE}: {e!r}"
        print("  " + msg)
        return {"error": msg}
    for dtype_name in ("float32", "bfloat16"):
        model = Transformer.from_checkpoint(str(ORIGINAL), device="cpu")
        if dtype_name == "float32":
            # The reference keeps params in bf16 and computes in bf16; upcasting every parameter gives the same
            # function evaluated in float32, comparable with transformers' float32 logits.
            model = model.to(torch.float32)
        for k, ids in enumerate(tokens["sequences"]):
            with torch.no_grad():
                logits = model(torch.tensor(ids)).float().numpy()
            ref = np.load(REFERENCE / f"tiny.seq{k}.logits.npy")
            d = float(np.abs(logits - ref).max())
            top1 = float((logits.argmax(-1) == ref.argmax(-1)).mean())
            print(f"  OpenAI reference ({dtype_name}) on original/ vs transformers on tiny/, seq{k}: "
                  f"max |dlogit| = {d:.3e}, top-1 agreement {top1:.3f}")
            facts[f"{dtype_name}.seq{k}.max_abs_dlogit"] = d
            facts[f"{dtype_name}.seq{k}.top1"] = top1
    write_json(REFERENCE / "openai_reference.json", facts)
    return facts


# =================================================================================================================
# llama.cpp
# =================================================================================================================
LLAMACPP_RUNS = [
    # (input folder, outtype, output file "<checkpoint>.<outtype>.gguf")
    (TINY, "f32", "tiny.f32.gguf"),
    (TINY, "f16", "tiny.f16.gguf"),
    (TINY, "bf16", "tiny.bf16.gguf"),
    (TINY, "q8_0", "tiny.q8_0.gguf"),
    (TINY_BF16, "bf16", "tiny-bf16.bf16.gguf"),
    (TINY_BF16, "f32", "tiny-bf16.f32.gguf"),
]


def run_llamacpp_converter() -> list[str]:
    LLAMACPP.mkdir(parents=True, exist_ok=True)
    for p in LLAMACPP.glob("*.gguf"):
        p.unlink()
    cmds = []
    for src, outtype, out in LLAMACPP_RUNS:
        cmd = [
            sys.executable,
            str(GOLDEN / "convert_with_llamacpp.py"),
            str(src),
            "--outtype",
            outtype,
            "--outfile",
            str(LLAMACPP / out),
        ]
        shown = " ".join(
            ["python", "golden/convert_with_llamacpp.py", str(src.relative_to(GOLDEN.parent)), "--outtype",
             outtype, "--outfile", f"golden/llamacpp/{out}"]
        )
        print(f"  {shown}")
        cmds.append(shown)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout[-3000:], r.stderr[-3000:])
            raise SystemExit(f"llama.cpp converter failed on {src} --outtype {outtype}")
    return cmds


def llamacpp_logits(tokens: dict) -> dict:
    """Load each GGUF in llama.cpp (llama-cpp-python) and dump its logits for the golden tokens."""
    import llama_cpp

    results = {}
    llama_cpp.llama_backend_init()
    for _src, _outtype, out in LLAMACPP_RUNS:
        path = LLAMACPP / out
        base = out[: -len(".gguf")]
        for k, ids in enumerate(tokens["sequences"]):
            logits = llamacpp_eval(llama_cpp, path, ids)
            np.save(LLAMACPP / f"{base}.seq{k}.logits.npy", logits)
            # tiny-bf16 is the same function as tiny, so both compare with tiny's transformers logits
            ref = np.load(REFERENCE / f"tiny.seq{k}.logits.npy")
            ref_t = np.load(REFERENCE / f"tiny.seq{k}.logits-yarn-truncate.npy")
            d = float(np.abs(logits - ref).max())
            dt = float(np.abs(logits - ref_t).max())
            top1 = float((logits.argmax(-1) == ref_t.argmax(-1)).mean())
            print(f"  llama.cpp {out} seq{k}: max |dlogit| vs transformers = {d:.4e} (truncate=false), "
                  f"{dt:.4e} (truncate=true, top-1 agreement {top1:.3f})")
            results[f"{base}.seq{k}"] = {
                "max_abs_dlogit_vs_transformers": d,
                "max_abs_dlogit_vs_transformers_yarn_truncate": dt,
                "top1_vs_transformers_yarn_truncate": top1,
            }
    results["explained"] = explain_llamacpp_mxfp4(tokens)
    results["tokenization_equal"] = llamacpp_tokenize_check()
    write_json(LLAMACPP / "logits_vs_transformers.json", results)
    return results


TOKENIZER_PROBE = "Hello   world!!\n\n  123456 don't I'M ok\t\tß文字 🚀 <|start|>x<|end|>"


def llamacpp_tokenize_check() -> dict:
    """llama.cpp, told the pre-tokenizer is gpt-4o, must split text exactly as tokenizer.json does."""
    import llama_cpp
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TINY / "tokenizer.json"))
    mparams = llama_cpp.llama_model_default_params()
    mparams.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(LLAMACPP / "tiny.f32.gguf").encode(), mparams)
    vocab = llama_cpp.llama_model_get_vocab(model)
    out = {}
    for i, text in enumerate((TEXT_SEQ0, TEXT_SEQ1, CORPUS, TOKENIZER_PROBE)):
        raw = text.encode()
        buf = (llama_cpp.llama_token * 4096)()
        n = llama_cpp.llama_tokenize(vocab, raw, len(raw), buf, 4096, False, True)  # no BOS, parse specials
        ours = tok.encode(text, add_special_tokens=False).ids
        same = list(buf[:n]) == ours
        print(f"  llama.cpp tokenization of text {i} ({len(ours)} tokens) equals tokenizers': {same}")
        out[f"text{i}"] = same
        if not same:
            raise SystemExit("llama.cpp's gpt-4o pre-tokenizer splits the golden vocabulary differently")
    llama_cpp.llama_model_free(model)
    return out


def q8_0_roundtrip(x: torch.Tensor) -> torch.Tensor:
    """x -> ggml Q8_0 (blocks of 32, d = amax/127 stored as f16, q = round(x/d)) -> float, as ggml's CPU backend
    quantizes activations before a dot product with Q8_0 or MXFP4 weights."""
    shape = x.shape
    b = x.reshape(-1, 32).float()
    d = b.abs().max(-1, keepdim=True).values / 127
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    q = torch.round(b * inv)
    return (q * d.half().float()).reshape(shape)


def explain_llamacpp_mxfp4(tokens: dict) -> dict:
    """llama.cpp's CPU logits for an MXFP4 GGUF = transformers with (a) YaRN truncate=true and (b) the inputs of both
    expert matmuls rounded through Q8_0. Checked here by patching transformers' expert forward."""
    m = load_hf(TINY, yarn_truncate=True)

    def forward(self, hidden_states, router_indices=None, routing_weights=None):
        out = torch.zeros_like(hidden_states)
        for e in range(self.num_experts):
            tok, slot = torch.where(router_indices == e)
            if len(tok) == 0:
                continue
            gu = q8_0_roundtrip(hidden_states[tok]) @ self.gate_up_proj[e] + self.gate_up_proj_bias[e]
            y = q8_0_roundtrip(self._apply_gate(gu)) @ self.down_proj[e] + self.down_proj_bias[e]
            out.index_add_(0, tok, y * routing_weights[tok, slot, None])
        return out

    for layer in m.model.layers:
        layer.mlp.experts.forward = forward.__get__(layer.mlp.experts)
    facts = {}
    for k, ids in enumerate(tokens["sequences"]):
        with torch.no_grad():
            sim = m(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
        got = np.load(LLAMACPP / f"tiny.f32.seq{k}.logits.npy")
        d = float(np.abs(sim - got).max())
        print(f"  llama.cpp tiny.f32.gguf seq{k} vs transformers(truncate=true, Q8_0 expert inputs): "
              f"max |dlogit| = {d:.3e}")
        facts[f"tiny.f32.seq{k}.max_abs_dlogit_vs_simulated_q8_0_activations"] = d
    return facts


def gguf_manifest() -> None:
    """What llama.cpp's converter wrote, read back with gguf-py from PyPI: metadata and tensor table per file."""
    from gguf import GGUFReader, GGUFValueType

    manifest = {}
    for _src, _outtype, out in LLAMACPP_RUNS:
        r = GGUFReader(str(LLAMACPP / out))
        kv = {}
        for f in r.fields.values():
            if f.name.startswith("GGUF."):
                continue
            vt = GGUFValueType(f.types[0]).name
            if f.types[0] == GGUFValueType.ARRAY:
                sub = GGUFValueType(f.types[1]).name if len(f.types) > 1 else "?"
                val = f.contents()
                kv[f.name] = {"type": f"ARRAY[{sub}]", "len": len(f.data), "head": val[:3], "tail": val[-3:]}
            else:
                kv[f.name] = {"type": vt, "value": f.contents()}
        tensors = [
            {"name": t.name, "type": t.tensor_type.name, "ggml_shape": [int(x) for x in t.shape],
             "n_bytes": int(t.n_bytes), "offset": int(t.data_offset)}
            for t in r.tensors
        ]
        manifest[out] = {"metadata": kv, "tensors": tensors}
    write_json(LLAMACPP / "manifest.json", manifest)

    # The MXFP4 experts llama.cpp repacked from tiny/ decode (gguf-py's own dequantizer) to exactly the F32 experts
    # it wrote from tiny-bf16/: the repack is lossless and both sources describe the same weights.
    from gguf.quants import dequantize

    a = {t.name: t for t in GGUFReader(str(LLAMACPP / "tiny.f32.gguf")).tensors}
    b = {t.name: t for t in GGUFReader(str(LLAMACPP / "tiny-bf16.f32.gguf")).tensors}
    if set(a) != set(b):
        raise SystemExit(f"tensor sets differ: {sorted(set(a) ^ set(b))}")
    worst = 0.0
    for name, t in a.items():
        x = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
        y = dequantize(b[name].data, b[name].tensor_type).astype(np.float64).reshape(-1)
        worst = max(worst, float(np.abs(x - y).max()))
    print(f"  tiny.f32.gguf (MXFP4 experts) vs tiny-bf16.f32.gguf (F32 experts), all {len(a)} tensors decoded: "
          f"max |diff| = {worst}")
    if worst != 0.0:
        raise SystemExit("llama.cpp's GGUFs from tiny/ and tiny-bf16/ should hold the same values")
    first = manifest[LLAMACPP_RUNS[0][2]]["metadata"]
    print("  keys written by llama.cpp's converter (tiny.f32.gguf):")
    for k, v in first.items():
        print(f"    {k}: {v.get('type')} {repr(v.get('value', v.get('head')))[:70]}")


def llamacpp_eval(llama_cpp, path: Path, ids: list[int]) -> np.ndarray:
    """All-position logits through the low-level API, CPU, repacking (extra buffer types) off."""
    mparams = llama_cpp.llama_model_default_params()
    mparams.use_extra_bufts = False  # the AMX/repacked CPU kernels crash on Q8_0 on these machines
    mparams.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
    if not model:
        raise SystemExit(f"llama.cpp could not load {path}")
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = 64
    cparams.n_batch = 64
    cparams.n_ubatch = 64
    cparams.n_threads = 1
    cparams.n_threads_batch = 1
    # f32 KV cache and no flash attention, so the only differences left are llama.cpp's YaRN rounding and its CPU
    # habit of quantizing activations to Q8_0 before multiplying them with quantized (Q8_0, MXFP4) weights.
    cparams.flash_attn_type = 0  # LLAMA_FLASH_ATTN_TYPE_DISABLED
    cparams.type_k = 0  # GGML_TYPE_F32
    cparams.type_v = 0
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        raise SystemExit(f"llama.cpp could not create a context for {path}")
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    batch = llama_cpp.llama_batch_init(len(ids), 0, 1)
    batch.n_tokens = len(ids)
    for i, t in enumerate(ids):
        batch.token[i] = t
        batch.pos[i] = i
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = 1
    rc = llama_cpp.llama_decode(ctx, batch)
    if rc != 0:
        raise SystemExit(f"llama_decode failed ({rc}) on {path}")
    out = np.zeros((len(ids), n_vocab), dtype=np.float32)
    for i in range(len(ids)):
        p = llama_cpp.llama_get_logits_ith(ctx, i)
        out[i] = np.ctypeslib.as_array(p, shape=(n_vocab,))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return out


# =================================================================================================================
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = ["tokenizer", "weights", "reference", "original", "llamacpp", "llamacpp-logits"]
    ap.add_argument("--stage", choices=stages, action="append", help="run only these stages (default: all)")
    args = ap.parse_args()
    todo = args.stage or stages
    torch.manual_seed(SEED)
    torch.set_num_threads(1)

    if "tokenizer" in todo:
        print("[tokenizer] training byte-level BPE with o200k's split regex ...")
        build_tokenizer()
        t = make_tokens()
        print(f"  sequences: {[len(s) for s in t['sequences']]}  decoded: {t['decoded']}")
    tokens = json.loads((REFERENCE / "tokens.json").read_text())
    if "weights" in todo:
        print("[weights] writing tiny/, tiny/original/, tiny-bf16/, tiny-bf16-noisy/ ...")
        build_checkpoints()
    if "reference" in todo:
        print("[reference] transformers float32 logits and hidden states ...")
        reference_outputs(tokens)
    if "original" in todo:
        print("[original] OpenAI's reference implementation on tiny/original ...")
        check_original(tokens)
    if "llamacpp" in todo:
        print("[llamacpp] llama.cpp's converter ...")
        run_llamacpp_converter()
        gguf_manifest()
    if "llamacpp-logits" in todo:
        print("[llamacpp-logits] llama.cpp (llama-cpp-python) logits ...")
        llamacpp_logits(tokens)


if __name__ == "__main__":
    main()
