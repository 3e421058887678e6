"""What the interop tests share: where the repository, the golden data and the ossify binary are, and llama.cpp
(llama-cpp-python 0.3.36) run as golden/generate.py ran it for the stored logits (stage llamacpp-logits): CPU,
one thread, repacking off, f32 KV cache, no flash attention.

pytest puts this folder on sys.path, so a test imports these with `from conftest import ...`.
"""
import contextlib
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "golden"
OSSIFY = os.environ.get("OSSIFY_BIN", str(ROOT / "target" / "release" / "ossify"))


@contextlib.contextmanager
def llama_context(path: Path, n_ctx: int):
    """llama.cpp's (context, vocabulary size) for the GGUF at `path`, batches of up to `n_ctx` tokens; freed on
    exit."""
    import llama_cpp

    mp = llama_cpp.llama_model_default_params()
    mp.use_extra_bufts = False  # the repacked CPU kernels crash on Q8_0 on these machines (issue 2)
    mp.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
    assert model, f"llama.cpp could not load {path}"
    ctx = None
    try:
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = cp.n_batch = cp.n_ubatch = n_ctx
        cp.n_threads = cp.n_threads_batch = 1
        cp.flash_attn_type = 0
        cp.type_k = cp.type_v = 0
        ctx = llama_cpp.llama_init_from_model(model, cp)
        assert ctx, f"llama.cpp could not create a context for {path}"
        yield ctx, llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    finally:
        if ctx:
            llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)


def llama_logits(path: Path, ids: list[int]) -> np.ndarray:
    """All-position logits of `ids` through llama.cpp's C API, float32 `[len(ids), vocab]`."""
    import llama_cpp

    with llama_context(path, 64) as (ctx, n_vocab):
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
    return out
