#!/usr/bin/env python3
"""Summarises bench/forward.sh's log: per GGUF, per ossify mode, the best wall tok/s over the rounds against
llama.cpp's best in the same rounds, the lowest CPU ms per token of each, peak RSS, and decode as a fraction of the
memory-bandwidth roofline.

The roofline: the bytes one decode step must read at least (counted from the GGUF with gguf-py) divided by the
read bandwidth `forward_bench --bandwidth` measured. A step reads every attention matrix and bias, the router, the
k active experts' rows of the expert tensors (k / n_expert of them), the unembedding, one embedding row, and the
KV cache of every layer (ossify keeps it in f32: full layers every position, sliding layers the window).

    python bench/forward_report.py LOG --gguf A.gguf [--gguf B.gguf]
"""
import argparse
import re
from collections import defaultdict


def parse(log):
    rows, bw, loads = [], None, []
    for line in open(log):
        if line.startswith("machine"):
            loads.append(line.strip())
        if not line.startswith("RESULT"):
            continue
        kv = dict(re.findall(r"(\S+?)=(\S+)", line))
        if "read_gbps" in kv:
            bw = float(kv["read_gbps"])
        else:
            rows.append(kv)
    return rows, bw, loads


def decode_bytes(path, after):
    """Bytes one decode step reads after `after` positions (weights the step touches + f32 KV cache)."""
    from gguf import GGUFReader

    r = GGUFReader(path)
    field = lambda k: int(r.fields[k].parts[-1][0])
    n_exp, k_used = field("gpt-oss.expert_count"), field("gpt-oss.expert_used_count")
    window = field("gpt-oss.attention.sliding_window")
    n_kv, n_layer = field("gpt-oss.attention.head_count_kv"), field("gpt-oss.block_count")
    head_dim = field("gpt-oss.attention.key_length")
    total = 0
    for t in r.tensors:
        n = int(t.n_bytes)
        if t.name == "token_embd.weight":
            total += n // int(t.shape[-1])  # one row
        elif "_exps." in t.name:
            total += n * k_used // n_exp
        else:
            total += n
    for layer in range(n_layer):
        positions = min(after + 1, window) if layer % 2 == 0 else after + 1
        total += 2 * positions * n_kv * head_dim * 4
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--gguf", action="append", default=[])
    a = ap.parse_args()
    rows, bw, loads = parse(a.log)
    best = defaultdict(dict)
    for kv in rows:
        key = (kv["file"], kv.get("mode", "llama.cpp"))
        for k, v in kv.items():
            try:
                v = float(v)
            except ValueError:
                continue
            if k.endswith("_tps"):
                best[key][k] = max(best[key].get(k, 0.0), v)
            elif k.endswith("_ms") or k == "peak_rss_mib":
                best[key][k] = min(best[key].get(k, float("inf")), v)
            else:
                best[key][k] = v
    print()
    print("\n".join(loads))
    print(f"read bandwidth {bw} GB/s" if bw else "read bandwidth not measured")
    paths = {p.rsplit("/", 1)[-1]: p for p in a.gguf}
    for file in sorted({f for f, _ in best}):
        peer = best.get((file, "llama.cpp"), {})
        print(f"\n{file}")
        metrics = sorted(k for k in peer if k.endswith("_tps"))
        print(f"  {'mode':32s} " + " ".join(f"{m[:-4]:>26s}" for m in metrics) + "   peak RSS")
        for (f, mode), m in sorted(best.items()):
            if f != file:
                continue
            cells = []
            for k in metrics:
                tps, cpu = m.get(k, float("nan")), m.get(k[:-4] + "_cpu_ms", float("nan"))
                ratio = "" if mode == "llama.cpp" else f" {tps / peer[k]:.2f}x"
                cells.append(f"{tps:7.2f} tok/s {cpu:6.1f} ms{ratio:>6s}")
            print(f"  {mode:32s} " + " ".join(f"{c:>26s}" for c in cells) + f"   {m.get('peak_rss_mib', 0):.0f} MiB")
        if bw and file in paths and "decode_tps" in peer:
            after = int(peer.get("decode_after", 0))
            nbytes = decode_bytes(paths[file], after)
            roof = bw * 1e9 / nbytes
            print(f"  decode roofline: {nbytes / 1e6:.0f} MB per step at {bw} GB/s = {roof:.2f} tok/s; "
                  + ", ".join(f"{mode} {m['decode_tps'] / roof:.0%}" for (f, mode), m in sorted(best.items())
                              if f == file and "decode_tps" in m))
            # How busy the threads were in decode: CPU time per token over wall time per token and threads
            # (llama.cpp's threads spin while they wait, so its figure counts waiting as busy).
            print("  decode thread use (CPU ms per token / (wall ms per token x threads)): "
                  + ", ".join(f"{mode} {m['decode_cpu_ms'] * m['decode_tps'] / 1e3 / m.get('threads', 1):.0%}"
                              for (f, mode), m in sorted(best.items())
                              if f == file and "decode_tps" in m and "decode_cpu_ms" in m))
    print("\n(tok/s: best wall time over the rounds; ms: lowest CPU time per token, user + sys of all threads;"
          " ratios: ossify / llama.cpp wall tok/s in the same rounds)")


if __name__ == "__main__":
    main()
