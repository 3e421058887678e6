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

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from conftest import GOLDEN, OSSIFY, llama_logits  # noqa: E402

# (source checkpoint, --outtype, llama.cpp's file name in golden/llamacpp)
RUNS = [
    ("tiny", "f32", "tiny.f32"),
    ("tiny", "bf16", "tiny.bf16"),
    ("tiny", "f16", "tiny.f16"),
    ("tiny", "q8_0", "tiny.q8_0"),
    ("tiny/original", "bf16", "tiny.bf16"),
    ("tiny-bf16", "bf16", "tiny-bf16.bf16"),
]


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
        # llama.cpp on its own converter's file, in this run on this CPU: equal to the last bit.
        want = llama_logits(GOLDEN / "llamacpp" / f"{theirs}.gguf", ids)
        assert np.isfinite(got).all()
        np.testing.assert_array_equal(got, want, err_msg=f"{src} --outtype {outtype}, sequence {k}")
        # Not compared with the stored .npy logits: they came from golden/generate.py on another CPU, and llama.cpp
        # picks its kernels (and, for F16 weights, the activation type) per instruction set, so they differ from
        # this CPU's in the last bits (up to 0.05 for F16 on AVX2 without AVX-512).
