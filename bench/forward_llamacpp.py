#!/usr/bin/env python3
"""llama.cpp's side of bench/forward.sh: prefill and decode speed on a GGUF through llama-cpp-python, with the
same pseudo-random token ids as examples/forward_bench.rs (xorshift, modulo min(vocab, 200000)).

    python bench/forward_llamacpp.py MODEL.gguf --tokens N --decode N --threads N
"""
import argparse
import os
import resource
import time

from llama_cpp import Llama


def tokens(n, vocab):
    state, out, mask = 0x2545F4914F6CDD1D, [], (1 << 64) - 1
    for _ in range(n):
        state ^= (state << 13) & mask
        state ^= state >> 7
        state ^= (state << 17) & mask
        out.append(state % min(vocab, 200000))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--decode", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    t0 = time.time()
    llm = Llama(a.model, n_ctx=a.tokens + a.decode + 8, n_batch=max(a.tokens, 8), n_ubatch=max(a.tokens, 8),
                n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
    load = time.time() - t0
    toks = tokens(a.tokens + a.decode, llm.n_vocab())
    cpu = lambda: sum(os.times()[:2])  # user + system CPU seconds, all threads: steadier than wall time
    t1, c1 = time.time(), cpu()
    llm.eval(toks[: a.tokens])
    prefill, cpu_prefill = time.time() - t1, cpu() - c1
    t2, c2 = time.time(), cpu()
    for t in toks[a.tokens:]:
        llm.eval([t])
    decode, cpu_decode = time.time() - t2, cpu() - c2
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"llama.cpp {a.model}: load {load:.2f}s  prefill {a.tokens} tok {a.tokens / prefill:.1f} tok/s  "
          f"decode {a.decode} tok {a.decode / max(decode, 1e-9):.2f} tok/s  peak RSS {rss:.0f} MiB  threads {a.threads}  "
          f"cpu ms/tok prefill {1e3 * cpu_prefill / a.tokens:.1f} decode {1e3 * cpu_decode / max(a.decode, 1):.1f}")


if __name__ == "__main__":
    main()
