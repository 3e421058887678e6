#!/usr/bin/env python3
"""llama.cpp's side of bench/forward.sh: prefill and decode speed on a GGUF through llama-cpp-python, with the
same pseudo-random token ids as examples/forward_bench.rs (xorshift, modulo min(vocab, 200000)).

    python bench/forward_llamacpp.py MODEL.gguf --prefill 128,512 --decode N --threads N

Each prefill size starts from an empty context; the decode steps follow the last (longest) prompt. The last line
is `RESULT key=value ...` for bench/forward.sh.
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
    ap.add_argument("--prefill", default="128")
    ap.add_argument("--decode", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    sizes = [int(v) for v in a.prefill.split(",")]
    longest = max(sizes)
    t0 = time.time()
    llm = Llama(a.model, n_ctx=longest + a.decode + 8, n_batch=max(longest, 8), n_ubatch=max(longest, 8),
                n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
    load = time.time() - t0
    toks = tokens(longest + a.decode, llm.n_vocab())
    cpu = lambda: sum(os.times()[:2])  # user + system CPU seconds, all threads
    result = f"RESULT tool=llama.cpp threads={a.threads} load_s={load:.2f}"
    for n in sizes:
        llm.reset()
        t1, c1 = time.time(), cpu()
        llm.eval(toks[:n])
        wall, c = time.time() - t1, cpu() - c1
        print(f"llama.cpp {a.model}: prefill {n} tok {n / wall:.1f} tok/s, cpu {1e3 * c / n:.1f} ms/tok")
        result += f" prefill{n}_tps={n / wall:.2f} prefill{n}_cpu_ms={1e3 * c / n:.2f}"
    if sizes[-1] != longest:
        llm.reset()
        llm.eval(toks[:longest])
    if a.decode > 0:
        t2, c2 = time.time(), cpu()
        for t in toks[longest:longest + a.decode]:
            llm.eval([t])
        wall, c = time.time() - t2, cpu() - c2
        print(f"llama.cpp {a.model}: decode {a.decode} tok after {longest} {a.decode / wall:.2f} tok/s, "
              f"cpu {1e3 * c / a.decode:.1f} ms/tok")
        result += f" decode_tps={a.decode / wall:.3f} decode_cpu_ms={1e3 * c / a.decode:.2f} decode_after={longest}"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{result} peak_rss_mib={rss:.0f}")


if __name__ == "__main__":
    main()
