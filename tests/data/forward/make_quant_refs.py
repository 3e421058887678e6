"""Quantized GGUF fixtures for tests/forward_golden.rs, with references made without ossify.

For each ggml block type, every weight matrix of golden/llamacpp/tiny-bf16.f32.gguf (written by llama.cpp's
converter) is quantized with gguf-py (`gguf.quants.quantize`) into tiny-bf16.<type>.gguf; norms, biases and sinks
stay F32. The reference logits come from gguf-py's own decoder (`gguf.quants.dequantize`) loaded into
transformers' GptOssForCausalLM in float32 and run on golden/reference/tokens.json. llama.cpp's q8_0 file
(golden/llamacpp/tiny.q8_0.gguf) gets a reference the same way.

Run: /opt/venv/bin/python tests/data/forward/make_quant_refs.py   (gguf-py, transformers, torch, numpy)
"""
import json
from pathlib import Path

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as Q
from transformers import GptOssConfig, GptOssForCausalLM

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "golden"
OUT = Path(__file__).resolve().parent
TYPES = [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.MXFP4]
MATRICES = ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "ffn_gate_inp.weight",
            "ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight", "token_embd.weight", "output.weight")


def copy_metadata(reader, writer):
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub)


def quantize_file(src, dst, qtype):
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, arch="gpt-oss")
    copy_metadata(r, w)
    for t in r.tensors:
        data = np.array(t.data)
        if any(t.name.endswith(m) for m in MATRICES):
            w.add_tensor(t.name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(t.name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def state_dict_from_gguf(path, cfg):
    r = gguf.GGUFReader(path)
    g = {t.name: torch.from_numpy(np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32))
         for t in r.tensors}
    sd = {"model.embed_tokens.weight": g["token_embd.weight"], "model.norm.weight": g["output_norm.weight"],
          "lm_head.weight": g["output.weight"]}
    for l in range(cfg.num_hidden_layers):
        b, p = f"blk.{l}.", f"model.layers.{l}."
        for gg, hf in [("attn_norm.weight", "input_layernorm.weight"),
                       ("post_attention_norm.weight", "post_attention_layernorm.weight"),
                       ("attn_sinks.weight", "self_attn.sinks"), ("ffn_gate_inp.weight", "mlp.router.weight"),
                       ("ffn_gate_inp.bias", "mlp.router.bias"), ("ffn_down_exps.bias", "mlp.experts.down_proj_bias")]:
            sd[p + hf] = g[b + gg]
        for x, y in [("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("output", "o_proj")]:
            sd[p + f"self_attn.{y}.weight"] = g[b + f"attn_{x}.weight"]
            sd[p + f"self_attn.{y}.bias"] = g[b + f"attn_{x}.bias"]
        gate, up = g[b + "ffn_gate_exps.weight"], g[b + "ffn_up_exps.weight"]  # [E, I, H]
        gu = torch.stack([gate, up], dim=2).reshape(gate.shape[0], -1, gate.shape[2])  # [E, 2I, H], even = gate
        sd[p + "mlp.experts.gate_up_proj"] = gu.transpose(1, 2).contiguous()  # [E, H, 2I]
        gb, ub = g[b + "ffn_gate_exps.bias"], g[b + "ffn_up_exps.bias"]
        sd[p + "mlp.experts.gate_up_proj_bias"] = torch.stack([gb, ub], dim=2).reshape(gb.shape[0], -1)
        sd[p + "mlp.experts.down_proj"] = g[b + "ffn_down_exps.weight"].transpose(1, 2).contiguous()  # [E, I, H]
    return sd


def reference_logits(gguf_path, cfg, name):
    model = GptOssForCausalLM(cfg).float().eval()
    model.load_state_dict(state_dict_from_gguf(gguf_path, cfg), strict=True)
    seqs = json.loads((GOLDEN / "reference/tokens.json").read_text())["sequences"]
    for k, toks in enumerate(seqs):
        with torch.no_grad():
            logits = model(torch.tensor([toks])).logits[0].float().numpy()
        np.save(OUT / f"{name}.seq{k}.logits.npy", logits.astype(np.float32))


LONG_T, LONG_TAIL = 8200, 24


def long_context():
    """A sequence past 8192 positions on golden/tiny-bf16 (the same function as golden/tiny): the logits of its
    last LONG_TAIL positions."""
    model = GptOssForCausalLM.from_pretrained(GOLDEN / "tiny-bf16", dtype=torch.float32, attn_implementation="eager")
    model = model.eval()
    g = torch.Generator().manual_seed(1234)
    toks = torch.randint(0, model.config.vocab_size, (LONG_T,), generator=g).tolist()
    with torch.no_grad():
        logits = model(torch.tensor([toks]), logits_to_keep=LONG_TAIL).logits[0].float().numpy()
    (OUT / "long.tokens.json").write_text(json.dumps(toks))
    np.save(OUT / "long.tail.logits.npy", logits.astype(np.float32))


def main():
    cfg = GptOssConfig.from_pretrained(GOLDEN / "tiny-bf16")
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    src = GOLDEN / "llamacpp/tiny-bf16.f32.gguf"
    for q in TYPES:
        name = f"tiny-bf16.{q.name.lower()}"
        quantize_file(src, OUT / f"{name}.gguf", q)
        reference_logits(OUT / f"{name}.gguf", cfg, name)
        print("wrote", name)
    reference_logits(GOLDEN / "llamacpp/tiny.q8_0.gguf", cfg, "tiny.q8_0")
    print("wrote tiny.q8_0 reference")


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["long"]:
        long_context()
    else:
        main()
        long_context()
