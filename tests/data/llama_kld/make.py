#!/usr/bin/env python3
"""Pins src/parity/metrics.rs to llama.cpp's own `llama-perplexity --kl-divergence`.

1. llama-perplexity (vendored llama.cpp 0c1e570, /opt/llama/build/bin) runs golden/llamacpp/tiny.f32.gguf as the
   base and tiny.q8_0.gguf as the candidate on text.txt with -c 16 -b 16 -t 1, and its printed statistics are
   parsed into expected.json.
2. llama-cpp-python 0.3.36 (the same llama.cpp) recomputes both models' logits chunk by chunk with the same
   settings (flash attention on, as llama-perplexity's default `auto` picks on CPU; without it this tiny random
   model's first-chunk PPL moves from 3839.35 to 3984.37); the rows llama-perplexity scores (n_ctx/2 .. n_ctx-2 of each chunk) are saved as float32 .npy with
   the token each row is scored against. The Rust test feeds those rows to KldAccumulator and compares.

Run from the repository root: /opt/venv/bin/python tests/data/llama_kld/make.py
"""
import json
import os
import pathlib
import re
import struct
import subprocess
import tempfile

import numpy as np
from llama_cpp import Llama

HERE = pathlib.Path(__file__).parent
GOLDEN = HERE.parents[2] / "golden" / "llamacpp"
BIN = pathlib.Path("/opt/llama/build/bin")
N_CTX = 16
env = dict(os.environ, LD_LIBRARY_PATH=str(BIN))

with tempfile.TemporaryDirectory() as tmp:
    base = pathlib.Path(tmp) / "base.kld"
    common = ["-f", str(HERE / "text.txt"), "-c", str(N_CTX), "-b", str(N_CTX), "-t", "1"]
    subprocess.run([BIN / "llama-perplexity", "-m", GOLDEN / "tiny.f32.gguf", *common,
                    "--kl-divergence-base", base], check=True, env=env, capture_output=True)
    out = subprocess.run([BIN / "llama-perplexity", "-m", GOLDEN / "tiny.q8_0.gguf", *common,
                          "--kl-divergence-base", base, "--kl-divergence"],
                         check=True, env=env, capture_output=True, text=True)
    log = out.stdout + out.stderr
    raw = base.read_bytes()
assert raw[:8] == b"_logits_"
n_ctx, n_vocab, n_chunk = struct.unpack("<Iii", raw[8:20])
tokens = np.frombuffer(raw[20:20 + 4 * n_ctx * n_chunk], dtype="<i4").reshape(n_chunk, n_ctx)


def num(pattern):
    m = re.search(pattern, log)
    assert m, pattern
    return [float(x) for x in m.groups()]


expected = {
    "ppl_candidate": num(r"Mean PPL\(Q\)\s+:\s+([\d.]+) ± ([\d.]+)"),
    "ppl_reference": num(r"Mean PPL\(base\)\s+:\s+([\d.]+) ± ([\d.]+)"),
    "ln_ppl_ratio": num(r"Mean ln\(PPL\(Q\)/PPL\(base\)\)\s+:\s+(-?[\d.]+) ±\s+([\d.]+)"),
    "kld_mean": num(r"Mean    KLD:\s+([\d.]+) ±\s+([\d.]+)"),
    "kld_max": num(r"Maximum KLD:\s+([\d.]+)"),
    "kld_p99": num(r"99.0%   KLD:\s+([\d.]+)"),
    "kld_median": num(r"Median  KLD:\s+([\d.]+)"),
    "rms_dp_percent": num(r"RMS Δp    :\s+([\d.]+) ±\s+([\d.]+) %"),
    "top1_percent": num(r"Same top p:\s+([\d.]+) ±\s+([\d.]+) %"),
}

first = n_ctx // 2
rows = {}
for name in ("f32", "q8_0"):
    llm = Llama(model_path=str(GOLDEN / f"tiny.{name}.gguf"), n_ctx=N_CTX, n_batch=N_CTX, n_threads=1,
                logits_all=True, verbose=False, flash_attn=True)
    out_rows = []
    for c in range(n_chunk):
        llm.reset()
        llm.eval(tokens[c].tolist())
        scores = np.array(llm.scores[:N_CTX], dtype=np.float32)
        out_rows.append(scores[first:N_CTX - 1])
    rows[name] = np.concatenate(out_rows)
next_tokens = np.concatenate([tokens[c, first + 1:] for c in range(n_chunk)])
np.save(HERE / "base.f32.rows.npy", rows["f32"])
np.save(HERE / "cand.q8_0.rows.npy", rows["q8_0"])
(HERE / "expected.json").write_text(json.dumps({
    "n_ctx": n_ctx, "n_chunk": n_chunk, "n_vocab": n_vocab,
    "next_tokens": next_tokens.tolist(), "llama_perplexity": expected}, indent=1) + "\n")
print(rows["f32"].shape, expected)
