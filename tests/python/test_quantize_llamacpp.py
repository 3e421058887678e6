"""`ossify quantize` against llama.cpp itself (llama-cpp-python's `llama_model_quantize`, the function behind
llama-quantize) and against gguf-py's decoders.

- For every preset both quantize the same BF16 GGUF (llama.cpp's converter output for golden/tiny-bf16-noisy);
  every tensor must have the same type, shape and bytes.
- llama.cpp loads ossify's file and its logits equal those of its own file.
- `--format safetensors`: the OpenAI-layout experts, decoded here with numpy (FP4 table x 2^(scale - 127)),
  equal llama.cpp's MXFP4 experts decoded by gguf-py.
- `--format safetensors` from llama.cpp's BF16 GGUF: transformers loads the folder (config.json written from the
  GGUF metadata) and computes the logits golden/quantize/make_reference.py stored for the folder made from the
  HF source.

Needs OSSIFY_BIN (scripts/test-all sets it), numpy, gguf and llama-cpp-python.
"""
import ctypes
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "golden" / "llamacpp" / "quantize" / "tiny-bf16-noisy.bf16.gguf"
OSSIFY = os.environ.get("OSSIFY_BIN", str(ROOT / "target" / "release" / "ossify"))

# preset -> llama_ftype; q4/q5: output.weight forced to Q8_0 (GGML type 8) on both sides (llama.cpp's default
# there is Q6_K, which ossify does not write)
FTYPES = {"mxfp4_moe": 38, "q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9}


def ossify(*args):
    if not os.path.exists(OSSIFY):
        pytest.skip(f"no ossify binary at {OSSIFY} (set OSSIFY_BIN)")
    r = subprocess.run([OSSIFY, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def llama_quantize(dst, preset):
    llama_cpp = pytest.importorskip("llama_cpp")
    llama_cpp.llama_backend_init()
    p = llama_cpp.llama_model_quantize_default_params()
    p.nthread = 1
    p.ftype = FTYPES[preset]
    if preset.startswith(("q4", "q5")):
        p.output_tensor_type = 8
    assert llama_cpp.llama_model_quantize(str(BASE).encode(), str(dst).encode(), ctypes.byref(p)) == 0


@pytest.mark.parametrize("preset", list(FTYPES))
def test_tensors_equal_llama_quantize(tmp_path, preset):
    ours, theirs = tmp_path / "ossify.gguf", tmp_path / "llama.gguf"
    extra = ["--output-tensor-type", "q8_0"] if preset.startswith(("q4", "q5")) else []
    ossify("quantize", BASE, "-o", ours, "--type", preset, "-q", *extra)
    llama_quantize(theirs, preset)
    a, b = gguf.GGUFReader(ours), gguf.GGUFReader(theirs)
    ta = {t.name: t for t in a.tensors}
    assert sorted(ta) == sorted(t.name for t in b.tensors)
    for t in b.tensors:
        o = ta[t.name]
        assert o.tensor_type == t.tensor_type, t.name
        assert list(o.shape) == list(t.shape), t.name
        assert o.data.tobytes() == t.data.tobytes(), f"{preset}: {t.name}"


def test_llama_cpp_runs_our_file_like_its_own(tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp")
    ours, theirs = tmp_path / "ossify.gguf", tmp_path / "llama.gguf"
    ossify("quantize", BASE, "-o", ours, "--type", "mxfp4_moe", "-q")
    llama_quantize(theirs, "mxfp4_moe")
    tokens = json.loads((ROOT / "golden" / "reference" / "tokens.json").read_text())["sequences"][0]

    def logits(path):
        m = llama_cpp.Llama(str(path), n_ctx=64, logits_all=True, verbose=False, n_threads=1)
        m.eval(tokens)
        return np.array(m.scores[: len(tokens)])

    a, b = logits(ours), logits(theirs)
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


FP4 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float64)


def read_safetensors(folder):
    """name -> numpy array (U8 and BF16 only), parsed straight from the files."""
    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        raw = f.read_bytes()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        data = raw[8 + n :]
        for name, info in header.items():
            if name == "__metadata__":
                continue
            s, e = info["data_offsets"]
            buf = np.frombuffer(data[s:e], dtype=np.uint8 if info["dtype"] == "U8" else np.uint16)
            out[name] = (info["dtype"], buf.reshape(info["shape"]))
    return out


def decode_hf_mxfp4(blocks, scales):
    """OpenAI's layout: element 2j is the low nibble of byte j, 2j+1 the high one; value = FP4 * 2^(scale-127)."""
    lo, hi = blocks & 0x0F, blocks >> 4
    codes = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    vals = FP4[codes] * np.exp2(scales.astype(np.float64) - 127)[..., None]
    return vals.reshape(*blocks.shape[:-2], -1)


def test_safetensors_experts_equal_llama_cpp_mxfp4(tmp_path):
    out = tmp_path / "st"
    ossify("quantize", ROOT / "golden" / "tiny-bf16-noisy", "-o", out, "--format", "safetensors", "-q")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization_config"]["quant_method"] == "mxfp4"
    theirs = tmp_path / "llama.gguf"
    llama_quantize(theirs, "mxfp4_moe")
    g = {t.name: t for t in gguf.GGUFReader(theirs).tensors}
    st = read_safetensors(out)
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}.mlp.experts."
        for hf, parts in (("gate_up_proj", (("gate", 0, 2), ("up", 1, 2))), ("down_proj", (("down", 0, 1),))):
            dt, blocks = st[p + hf + "_blocks"]
            _, scales = st[p + hf + "_scales"]
            assert dt == "U8"
            vals = decode_hf_mxfp4(blocks, scales)  # (E, rows, cols)
            for kind, off, step in parts:
                t = g[f"blk.{layer}.ffn_{kind}_exps.weight"]
                assert t.tensor_type == gguf.GGMLQuantizationType.MXFP4
                ref = dequantize(t.data, t.tensor_type).astype(np.float64)
                np.testing.assert_array_equal(vals[:, off::step, :], ref, err_msg=f"layer {layer} {kind}")


def test_safetensors_from_gguf_loads_in_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # transformers' MXFP4 loader needs it
    out = tmp_path / "st"
    r = ossify("quantize", BASE, "-o", out, "--format", "safetensors", "-q")
    assert "tokenizer.json" in r.stderr  # the note: a GGUF holds no tokenizer files
    model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    seqs = json.loads((ROOT / "golden" / "reference" / "tokens.json").read_text())["sequences"]
    for i, toks in enumerate(seqs):
        with torch.no_grad():
            logits = model(torch.tensor([toks])).logits[0].float().numpy()
        want = np.load(ROOT / "golden" / "quantize" / f"tiny-bf16-noisy-mxfp4.seq{i}.logits.npy")
        np.testing.assert_allclose(logits, want, rtol=0, atol=1e-5, err_msg=f"seq{i}")
