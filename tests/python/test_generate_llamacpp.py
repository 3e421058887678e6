"""`ossify generate --precision q8 --yarn-truncate` makes the same greedy tokens as llama.cpp itself
(llama-cpp-python 0.3.36) on the same GGUF: llama.cpp decodes the prompt, then one token at a time, taking the
highest logit each step (CPU, one thread, repacking off, f32 KV cache, no flash attention, as
test_convert_llamacpp.py runs it).

Needs OSSIFY_BIN (scripts/test-all sets it), numpy and llama-cpp-python.
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from conftest import GOLDEN, OSSIFY, ROOT, llama_context  # noqa: E402

N = 24
PROMPTS = json.loads((ROOT / "tests/data/chat/generate_expected.json").read_text())["cases"]


def llama_greedy(path: Path, ids: list[int], n: int) -> list[int]:
    out = []
    with llama_context(path, 256) as (ctx, n_vocab):
        batch = llama_cpp.llama_batch_init(max(len(ids), 1), 0, 1)
        pos = 0
        todo = list(ids)
        for _ in range(n):
            batch.n_tokens = len(todo)
            for i, t in enumerate(todo):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, pos + i, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 1 if i == len(todo) - 1 else 0
            assert llama_cpp.llama_decode(ctx, batch) == 0
            pos += len(todo)
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
            nxt = int(np.argmax(logits))
            out.append(nxt)
            todo = [nxt]
        llama_cpp.llama_batch_free(batch)
    return out


# On prompt 0 with BF16 matrices (outtype auto) llama.cpp's second token wins a near-tie (logits 5.1278 vs 5.1254)
# that ossify's q8 mode decides the other way (5.1216 vs 5.1328, the same in one batch): its BF16 activation
# rounding is ~1e-2 off llama.cpp's there, a forward-pass matter; exact mode with --yarn-truncate makes
# llama.cpp's tokens on that prompt.
@pytest.mark.parametrize("outtype,k", [
    ("q8_0", 0), ("q8_0", 1), ("auto", 1),
    pytest.param("auto", 0, marks=pytest.mark.xfail(reason="q8 BF16 path differs from llama.cpp by ~1e-2 "
                                                            "in a logit near-tie", strict=True)),
])
def test_q8_greedy_equals_llama_cpp(tmp_path, outtype, k):
    case = [c for c in PROMPTS if c["model"] == "tiny"][k]
    gguf = tmp_path / "tiny.gguf"
    subprocess.run([OSSIFY, "convert", str(GOLDEN / "tiny"), "-o", str(gguf), "--outtype", outtype],
                   check=True, capture_output=True)
    r = subprocess.run([OSSIFY, "generate", str(gguf), "--raw", "-p", case["prompt"], "-n", str(N),
                        "--precision", "q8", "--yarn-truncate", "--json"],
                       check=True, capture_output=True, text=True)
    ours = json.loads(r.stdout)
    assert ours["mode"] == "q8-activations-yarn-truncate"
    theirs = llama_greedy(gguf, ours["prompt_ids"], N)
    # ossify stops at <|return|> / <|call|> / <|endoftext|> (the stop token included); llama.cpp is asked for N
    assert ours["tokens"] == theirs[: len(ours["tokens"])]
