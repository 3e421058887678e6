"""`ossify quantize --format safetensors` pinned to bytes made without ossify.

From the BF16 source (golden/tiny-bf16-noisy), with numpy and gguf-py only, this test derives what OpenAI's MXFP4
layout must hold: every dense expert stack (E, in, out) transposed to (E, out, in) (rows in the checkpoint's
order, gate/up still interleaved), each row quantized by gguf-py's MXFP4 quantizer (`gguf.quants.MXFP4`, ggml's
reference rule), its 32-code blocks repacked into the HF nibble order (element 2j in the low nibble of byte j,
2j + 1 in the high one) as `*_blocks`, the E8M0 exponents as `*_scales`; every other tensor the source's BF16 bytes;
config.json the source's plus `quantization_config` as openai/gpt-oss-20b's spells it.

Both ossify's output of today and the checked-in golden/quantize/tiny-bf16-noisy-mxfp4 (whose transformers logits
golden/quantize/make_reference.py stored, and which tests/quantize_safetensors.rs compares ossify's output with)
must equal that, tensor for tensor and byte for byte.

Needs OSSIFY_BIN (scripts/test-all sets it), numpy and gguf.
"""
import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf.quants import MXFP4  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "golden" / "tiny-bf16-noisy"
GOLDEN = ROOT / "golden" / "quantize" / "tiny-bf16-noisy-mxfp4"
OSSIFY = os.environ.get("OSSIFY_BIN", str(ROOT / "target" / "release" / "ossify"))

# openai/gpt-oss-20b config.json's quantization_config
QUANTIZATION_CONFIG = {
    "modules_to_not_convert": [
        "model.layers.*.self_attn",
        "model.layers.*.mlp.router",
        "model.embed_tokens",
        "lm_head",
    ],
    "quant_method": "mxfp4",
}


def read_safetensors_file(path):
    """{name: (dtype, shape, bytes)} of one .safetensors file, parsed by hand (the format is a JSON header)."""
    b = path.read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8 : 8 + n])
    data = b[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, z = t["data_offsets"]
        out[name] = (t["dtype"], tuple(t["shape"]), data[a:z])
    return out


def read_folder(folder):
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else [
        "model.safetensors"
    ]
    out = {}
    for f in files:
        out.update(read_safetensors_file(folder / f))
    return out


def bf16_to_f32(raw, shape):
    return (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)


def mxfp4_hf(x):
    """(..., n) float32 rows -> (blocks (..., n/32, 16) u8 in HF nibble order, scales (..., n/32) u8)."""
    lead, n = x.shape[:-1], x.shape[-1]
    q = MXFP4.quantize_blocks(np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32))
    e, qs = q[:, 0], q[:, 1:]
    # ggml: byte j holds code j (low nibble) and code j + 16 (high nibble)
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
    hf = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    return hf.reshape(*lead, n // 32, 16), e.astype(np.uint8).reshape(*lead, n // 32)


def expected():
    src = read_folder(SRC)
    want = {}
    for name, (dtype, shape, raw) in src.items():
        dense_expert = name.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj"))
        if dense_expert:
            assert dtype == "BF16" and len(shape) == 3, (name, dtype, shape)
            x = bf16_to_f32(raw, shape).transpose(0, 2, 1)  # (E, in, out) -> (E, out, in)
            blocks, scales = mxfp4_hf(x)
            want[name + "_blocks"] = ("U8", blocks.shape, blocks.tobytes())
            want[name + "_scales"] = ("U8", scales.shape, scales.tobytes())
        else:
            assert dtype == "BF16", (name, dtype)
            want[name] = (dtype, shape, raw)
    return want


def check_equal(got, want, what):
    assert sorted(got) == sorted(want), what
    for name, (dtype, shape, raw) in want.items():
        g = got[name]
        assert (g[0], g[1]) == (dtype, tuple(shape)), f"{what}: {name}"
        assert g[2] == raw, f"{what}: {name} differs from the numpy/gguf-py bytes"


def test_ossify_output_equals_gguf_py_mxfp4_of_the_bf16_source(tmp_path):
    if not os.path.exists(OSSIFY):
        pytest.skip(f"no ossify binary at {OSSIFY} (set OSSIFY_BIN)")
    out = tmp_path / "st"
    r = subprocess.run(
        [OSSIFY, "quantize", str(SRC), "-o", str(out), "--format", "safetensors", "--shard-size", "300000", "-q"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    want = expected()
    check_equal(read_folder(out), want, "ossify's output")
    cfg = json.loads((out / "config.json").read_text())
    src_cfg = json.loads((SRC / "config.json").read_text())
    assert cfg.pop("quantization_config") == QUANTIZATION_CONFIG
    assert cfg == src_cfg


def test_golden_folder_equals_gguf_py_mxfp4_of_the_bf16_source():
    check_equal(read_folder(GOLDEN), expected(), "golden/quantize/tiny-bf16-noisy-mxfp4")
