#!/usr/bin/env python3
"""How closely `--precision q8 --yarn-truncate` reproduces llama.cpp's own logits on a real-width GGUF.

llama.cpp (llama-cpp-python, `logits_all`, its defaults: F16 KV cache, batch = the whole prompt) evaluates N
pseudo-random tokens (the ids of bench/forward_llamacpp.py); its logits go to a .npy, and `ossify verify-parity
--reference-logits` compares ossify's in both precisions. Prints mean / max KLD, top-1 agreement and max |Δlogit|.

    python bench/q8_agreement.py MODEL.gguf [--tokens 300] [--threads 2] [--ossify target/release/ossify] [--workdir DIR]
"""
import argparse
import json
import os
import subprocess

import numpy as np
from llama_cpp import Llama

from forward_llamacpp import tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ossify", default="target/release/ossify")
    ap.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"))
    a = ap.parse_args()
    llm = Llama(a.model, n_ctx=a.tokens + 8, n_batch=a.tokens, n_ubatch=a.tokens, logits_all=True,
                n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
    ids = tokens(a.tokens, llm.n_vocab())
    llm.eval(ids)
    logits = np.array(llm.scores[: a.tokens], dtype=np.float32)
    base = os.path.join(a.workdir, os.path.basename(a.model))
    np.save(base + ".llamacpp-logits.npy", logits)
    with open(base + ".tokens.json", "w") as f:
        json.dump({"tokens": ids}, f)
    del llm
    for precision in ["q8", "exact"]:
        out = subprocess.run([a.ossify, "verify-parity", "--reference-logits", base + ".llamacpp-logits.npy",
                              "--tokens", base + ".tokens.json", "--yarn-truncate", "--precision", precision,
                              "--max-kld", "10", "--min-top1", "0", "--json", a.model],
                             capture_output=True, text=True)
        try:
            j = json.loads(out.stdout)["logits"]
        except (ValueError, KeyError):
            raise SystemExit(f"verify-parity failed: {out.stdout}\n{out.stderr}")
        print(f"{os.path.basename(a.model)} {precision} vs llama.cpp over {a.tokens} tokens: mean KLD "
              f"{j['kld_mean']:.3g}, max KLD {j['kld_max']:.3g}, top-1 {j['top1_agreement']:.1%}, "
              f"max |dlogit| {j['max_abs_dlogit']:.3g}")


if __name__ == "__main__":
    main()
