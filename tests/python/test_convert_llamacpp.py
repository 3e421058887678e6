"""`ossify convert` output loaded by llama.cpp itself (llama-cpp-python 0.3.36).

For each golden conversion llama.cpp's converter also made (golden/llamacpp/), ossify converts the same source,
llama.cpp loads ossify's file, and its logits on the golden tokens must equal the logits llama.cpp computed on its
own converter's file (stored by golden/generate.py, stage llamacpp-logits, with the same settings: CPU, one
thread, repacking off, f32 KV cache, no flash attention) — so they match transformers' exactly as closely.

Needs OSSIFY_BIN (scripts/test-all sets it), numpy and llama-cpp-python.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp")

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "golden"
OSSIFY = os.environ.get("OSSIFY_BIN", str(ROOT / "target" / "release" / "ossify"))

# (source checkpoint, --outtype, llama.cpp's file name in golden/llamacpp)
RUNS = [
    ("tiny", "f32", "tiny.f32"),
    ("tiny", "bf16", "tiny.bf16"),
    ("tiny", "f16", "tiny.f16"),
    ("tiny", "q8_0", "tiny.q8_0"),
    ("tiny/original", "bf16", "tiny.bf16"),
    ("tiny-bf16", "bf16", "tiny-bf16.bf16"),
]


def llama_logits(path: Path, ids: list[int]) -> np.ndarray:
    """All-position logits through llama.cpp's C API, with the settings golden/generate.py used."""
    mp = llama_cpp.llama_model_default_params()
    mp.use_extra_bufts = False  # the repacked CPU kernels crash on Q8_0 on these machines (issue 2)
    mp.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
    assert model, f"llama.cpp could not load {path}"
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = cp.n_batch = cp.n_ubatch = 64
    cp.n_threads = cp.n_threads_batch = 1
    cp.flash_attn_type = 0
    cp.type_k = cp.type_v = 0
    ctx = llama_cpp.llama_init_from_model(model, cp)
    assert ctx, f"llama.cpp could not create a context for {path}"
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    batch = llama_cpp.llama_batch_init(len(ids), 0, 1)
    batch.n_tokens = len(ids)
    for i, t in enumerate(ids):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, i, 1, 1
        batch.seq_id[i][0] = 0
    assert llama_cpp.llama_decode(ctx, batch) == 0
    out = np.stack(
        [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(n_vocab,)) for i in range(len(ids))]
    ).astype(np.float32)
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return out


@pytest.mark.parametrize("src,outtype,theirs", RUNS)
def test_llama_cpp_computes_our_file_as_its_own(tmp_path, src, outtype, theirs):
    if not os.path.exists(OSSIFY):
        pytest.skip(f"no ossify binary at {OSSIFY} (set OSSIFY_BIN)")
    ours = tmp_path / "ossify.gguf"
    r = subprocess.run([OSSIFY, "convert", GOLDEN / src, "-o", ours, "--outtype", outtype], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sequences = json.loads((GOLDEN / "reference" / "tokens.json").read_text())["sequences"]
    for k, ids in enumerate(sequences):
        got = llama_logits(ours, ids)
        want = np.load(GOLDEN / "llamacpp" / f"{theirs}.seq{k}.logits.npy")
        assert np.isfinite(got).all()
        np.testing.assert_array_equal(got, want, err_msg=f"{src} --outtype {outtype}, sequence {k}")
