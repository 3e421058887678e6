"""The CUDA kernels (kernels/cuda/*.cu) checked without a GPU: a small SIMT emulator (cuda_emu/emu.cpp: one host
thread per CUDA thread, warp shuffles and __syncthreads as barriers) runs the very kernel sources on the CPU, and
every result is compared with numpy, weights decoded by gguf-py's dequantizers (independent of ossify's Rust
decoders) and activations quantized to Q8_1 by ggml-cuda's rules (quantize.cu) written out here in numpy.

What this cannot check: anything of the real device (memory model, launch limits, the driver, timing). The
kernels' CUDA-only parts (the two f16 conversions written in PTX) are replaced by host equivalents. Needs a C++20
compiler (g++; CI has one, llama-cpp-python is built with it).
"""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "kernels" / "cuda"
KIND = {"F32": 0, "F16": 1, "BF16": 2, "Q8_0": 3, "Q4_0": 4, "Q4_1": 5, "Q5_0": 6, "Q5_1": 7, "MXFP4": 8, "PAIR": 9}
FP4 = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], np.float32)
KV = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12])
rng = np.random.default_rng(1)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        pytest.skip("no C++ compiler for the CUDA kernel emulator")
    d = tmp_path_factory.mktemp("cuda_emu")
    common = (KERNELS / "common.cuh").read_text()
    # The PTX f16 conversions become host code (round to nearest even, as cvt.rn does).
    common = re.sub(r"__device__ __forceinline__ float f16_to_f32\(u16 h\) \{.*?\n\}",
                    "__device__ __forceinline__ float f16_to_f32(u16 h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }",
                    common, flags=re.S)
    common = re.sub(r"__device__ __forceinline__ u16 f32_to_f16\(float f\) \{.*?\n\}",
                    "__device__ __forceinline__ u16 f32_to_f16(float f) { _Float16 x = (_Float16)f; u16 u; memcpy(&u, &x, 2); return u; }",
                    common, flags=re.S)
    assert "asm(" not in common
    (d / "kernels_host.inc").write_text(common + "\n" + (KERNELS / "matmul.cu").read_text() + "\n" +
                                        (KERNELS / "ops.cu").read_text())
    shutil.copy(Path(__file__).parent / "cuda_emu" / "emu.cpp", d / "emu.cpp")
    subprocess.run([cxx, "-std=c++20", "-O1", "-pthread", "-w", "-I", str(d), str(d / "emu.cpp"), "-o", str(d / "emu")],
                   check=True)
    return d / "emu"


def run(emu, cmd, files, meta):
    d = tempfile.mkdtemp(dir=emu.parent)
    for k, v in files.items():
        Path(d, k).write_bytes(v if isinstance(v, bytes) else np.ascontiguousarray(v).tobytes())
    np.array(meta, np.int64).tofile(os.path.join(d, "meta.bin"))
    subprocess.run([str(emu), cmd, d], check=True)
    return d


def rdf(d, n, dt=np.float32):
    return np.fromfile(os.path.join(d, n), dt)


def check(name, got, want, tol):
    err = np.max(np.abs(got - want) / (np.abs(want).max() + 1e-30)) if want.size else 0
    assert np.all(np.isfinite(got)), f"{name}: non-finite output"
    assert err <= tol, f"{name}: relative max error {err:.2e}"


def bf16_bytes(w):
    u = w.astype(np.float32).view(np.uint32)
    r = ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r, (r.astype(np.uint32) << 16).view(np.float32)

def stored(kind, rows, cols):
    """(bytes [rows, row_bytes], scales or b'', decoded float [rows, cols], row_bytes)"""
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    if kind == "F32":
        return w.view(np.uint8).reshape(rows, -1), b"", w, cols * 4
    if kind == "F16":
        h = w.astype(np.float16)
        return h.view(np.uint8).reshape(rows, -1), b"", h.astype(np.float32), cols * 2
    if kind == "BF16":
        r, f = bf16_bytes(w)
        return r.view(np.uint8).reshape(rows, -1), b"", f, cols * 2
    if kind == "PAIR":
        codes = rng.integers(0, 16, (rows, cols), dtype=np.uint8)
        e = rng.integers(118, 136, (rows, cols // 32), dtype=np.uint8)
        blocks = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
        f = FP4[codes] * np.repeat(2.0 ** (e.astype(np.float64) - 127), 32, axis=1)
        return blocks, e, f.astype(np.float32), cols // 2
    t = Q[kind]
    b = quantize(w, t)
    return b, b"", dequantize(b, t).reshape(rows, cols).astype(np.float32), b.shape[1]

def q8_ref(x, mmq):
    """Activations as ggml-cuda's quantize_q8_1 (mmq=0) / quantize_mmq_q8_1 D4 (mmq=1): codes, scales."""
    xb = x.reshape(x.shape[0], -1, 32).astype(np.float32)
    amax = np.abs(xb).max(axis=2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        if mmq:
            dinv = np.float32(127) / amax
            v = xb * dinv
            d = np.where(amax == 0, 0, np.float32(1) / dinv)
        else:
            d = amax / np.float32(127)
            v = xb / d
            d = d.astype(np.float16).astype(np.float32)
    q = np.where(amax == 0, 0, np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)
    return q, d[..., 0]

def int_weights(kind, b, s, rows, cols):
    """(integer codes [rows, cols], per-block scale [rows, cols/32]) as the q8 dots use them."""
    nb = cols // 32
    if kind == "Q8_0":
        blk = b.reshape(rows, nb, 34)
        d = blk[:, :, :2].copy().view(np.float16)[..., 0].astype(np.float32)
        return blk[:, :, 2:].view(np.int8).reshape(rows, cols).astype(np.int64), d
    if kind == "MXFP4":
        blk = b.reshape(rows, nb, 17)
        qs = blk[:, :, 1:]
        codes = np.concatenate([qs & 15, qs >> 4], axis=2).reshape(rows, cols)
        return KV[codes], (2.0 ** (blk[:, :, 0].astype(np.float64) - 128)).astype(np.float32)
    codes = np.empty((rows, cols), np.uint8)
    codes[:, 0::2] = b & 15
    codes[:, 1::2] = b >> 4
    return KV[codes], (2.0 ** (s.astype(np.float64) - 128)).astype(np.float32)


def attn_ref(q, K_all, V_all, sinks, p0, window, nh, nkv, hd, scale):
    n = q.shape[0]; out = np.zeros((n, nh * hd))
    for t in range(n):
        pos = p0 + t; lo = max(0, pos + 1 - window) if window else 0
        for h in range(nh):
            kv = h // (nh // nkv)
            qv = q[t, h * hd:(h + 1) * hd].astype(np.float64)
            sc = np.array([K_all[j, kv * hd:(kv + 1) * hd] @ qv * scale for j in range(lo, pos + 1)])
            mx = max(sinks[h], sc.max()); e = np.exp(sc - mx); den = e.sum() + np.exp(sinks[h] - mx)
            out[t, h * hd:(h + 1) * hd] = (e / den) @ V_all[lo:pos + 1, kv * hd:(kv + 1) * hd]
    return out


@pytest.mark.parametrize("kind", list(KIND))
def test_dense_matmul(emu, kind):
    """Every stored type, a row selection (first 1, step 2), 13 tokens (two tiles), bias and accumulate; exact
    mode, and for MXFP4 / Q8_0 the Q8_1 mode in both of ggml-cuda's roundings."""
    for cols in ([96, 80] if kind in ("F32", "F16", "BF16") else [96]):
        R, rows, first, step, n = 20, 9, 1, 2, 13
        b, s, f, rb = stored(kind, R, cols)
        x = rng.standard_normal((n, cols)).astype(np.float32)
        bias = rng.standard_normal(rows).astype(np.float32)
        y0 = rng.standard_normal((n, rows)).astype(np.float32)
        W = f[first::step][:rows].astype(np.float64)
        for mode in ([0, 1] if kind in ("Q8_0", "MXFP4", "PAIR") else [0]):
            for mmq in ([0, 1] if mode else [0]):
                files = {"w.bin": b, "s.bin": s, "x.bin": x, "bias.bin": bias, "y0.bin": y0,
                         "tiles.bin": b"", "sorted.bin": b""}
                meta = [KIND[kind], rows, cols, rb, first, step, 0, n, mode, mmq, 0, 0, 0, n, 1, 1, n, 0]
                d = run(emu, "matmul", files, meta)
                got = rdf(d, "y.bin").reshape(n, rows)
                if mode == 0:
                    check(f"mul_mat_f32 {kind} cols {cols}", got, y0 + x.astype(np.float64) @ W.T + bias, 2e-6)
                else:
                    wq, wd = int_weights(kind, b, s, R, cols)
                    wq, wd = wq[first::step][:rows], wd[first::step][:rows]
                    xq, xd = q8_ref(x, mmq)
                    isum = np.einsum("rbi,tbi->trb", wq.reshape(rows, -1, 32), xq)
                    want = y0 + (isum * (wd[None] * xd[:, None])).sum(axis=2) + bias
                    check(f"mul_mat_q8 {kind} mmq={mmq}", got, want, 2e-6)


def test_transposed_bf16(emu):
    """BF16 stored (in, out) as fine-tunes store experts, output rows interleaved (first 1, step 2)."""
    cols, outs, n = 48, 10, 5
    b, _, f, rb = stored("BF16", cols, outs)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    files = {"w.bin": b, "s.bin": b"", "x.bin": x, "bias.bin": b"", "y0.bin": b"", "tiles.bin": b"", "sorted.bin": b""}
    d = run(emu, "matmul", files, [KIND["BF16"], 5, cols, rb, 1, 2, 1, n, 0, 0, 0, 0, 0, n, 1, 0, n, 0])
    check("mul_mat_f32 BF16 transposed", rdf(d, "y.bin").reshape(n, 5), x.astype(np.float64) @ f[:, 1::2][:, :5], 2e-6)


def test_experts(emu):
    """Router top-k (ties to the lower index), moe_plan's grouping and tiles, the expert matmuls over those tiles
    (experts stacked as HF gate_up, gate = even rows) in both modes, and the combine in ascending expert order."""
    n, E, K, H, I = 11, 4, 2, 64, 32
    logits = rng.standard_normal((n, E)).astype(np.float32)
    logits[3, 1] = logits[3, 2]  # a tie: the lower index wins
    down = rng.standard_normal((n * K, H)).astype(np.float32)
    x0 = rng.standard_normal((n, H)).astype(np.float32)
    d = run(emu, "moe", {"logits.bin": logits, "down.bin": down, "x.bin": x0}, [n, E, K, H])
    ids, wts = rdf(d, "ids.bin", np.int32).reshape(n, K), rdf(d, "wts.bin").reshape(n, K)
    sorted_, tiles = rdf(d, "sorted.bin", np.int32), rdf(d, "tiles.bin", np.int32)
    want_ids = np.array([sorted(range(E), key=lambda e: (-logits[t, e], e))[:K] for t in range(n)])
    assert np.array_equal(ids, want_ids)
    sel = np.take_along_axis(logits, want_ids, 1).astype(np.float64)
    ew = np.exp(sel - sel[:, :1]); ew /= ew.sum(1, keepdims=True)
    check("router_topk weights", wts, ew, 1e-6)
    want_sorted = [p for e in range(E) for p in range(n * K) if ids.flat[p] == e]
    assert list(sorted_) == want_sorted
    tl = [tuple(tiles[1 + 3 * i:4 + 3 * i]) for i in range(tiles[0])]
    cover = [want_sorted[s:s + l] for (_, s, l) in tl]
    assert sum(cover, []) == want_sorted, tl
    assert all(all(ids.flat[p] == e for p in want_sorted[s:s + l]) and l <= 8 for (e, s, l) in tl), tl
    want_x = x0.astype(np.float64).copy()
    for t in range(n):
        for k in np.argsort(ids[t]):
            want_x[t] += down[t * K + k] * wts[t, k]
    check("moe_combine", rdf(d, "x_out.bin").reshape(n, H), want_x, 1e-6)
    # expert gate matmul over the tiles: experts stacked as HF gate_up (E·2I rows), gate = rows e·2I + 2r
    b, s, f, rb = stored("PAIR", E * 2 * I, H)
    xn = rng.standard_normal((n, H)).astype(np.float32)
    gb = rng.standard_normal((E, I)).astype(np.float32)
    for mode in (0, 1):
        files = {"w.bin": b, "s.bin": s, "x.bin": xn, "bias.bin": gb, "y0.bin": b"", "tiles.bin": tiles, "sorted.bin": sorted_}
        meta = [KIND["PAIR"], I, H, rb, 0, 2, 0, n * K, mode, 1, 2 * I, 0, (n * K + 7) // 8 + E, n, K, 0, n * K, I]
        d2 = run(emu, "matmul", files, meta)
        got = rdf(d2, "y.bin").reshape(n * K, I)
        want = np.zeros((n * K, I))
        if mode == 1:
            wq, wd = int_weights("PAIR", b, s, E * 2 * I, H)
            xq, xd = q8_ref(xn, 1)
        for p in range(n * K):
            e, t = ids.flat[p], p // K
            if mode == 0:
                want[p] = f[e * 2 * I:(e + 1) * 2 * I:2].astype(np.float64) @ xn[t] + gb[e]
            else:
                rows_ = slice(e * 2 * I, (e + 1) * 2 * I, 2)
                isum = np.einsum("rbi,bi->rb", wq[rows_].reshape(I, -1, 32), xq[t])
                want[p] = (isum * (wd[rows_] * xd[t][None])).sum(1) + gb[e]
        check(f"expert tiles gate (pair, mode {mode})", got, want, 2e-6)


@pytest.mark.parametrize("window, hd, p0, n", [(5, 16, 7, 4), (0, 16, 7, 4), (5, 64, 3, 9), (0, 40, 0, 6)])
def test_attention_and_kv_store(emu, window, hd, p0, n):
    """Sinks, sliding ring and full layers, cached positions before p0, head_dim below and above 32; kv_store
    keeps the last `window` positions of a batch longer than the ring."""
    nh, nkv = 4, 2; kvd = nkv * hd
    total = p0 + n
    K_all = rng.standard_normal((total, kvd)).astype(np.float32); V_all = rng.standard_normal((total, kvd)).astype(np.float32)
    q = rng.standard_normal((n, nh * hd)).astype(np.float32); sinks = rng.standard_normal(nh).astype(np.float32)
    ring = window
    cap = ring if ring else total
    ck = np.zeros((cap, kvd), np.float32); cv = np.zeros((cap, kvd), np.float32)
    for j in range(p0):
        sl = j % ring if ring else j
        ck[sl] = K_all[j]; cv[sl] = V_all[j]
    scale = hd ** -0.5
    d = run(emu, "attn", {"q.bin": q, "k.bin": K_all[p0:], "v.bin": V_all[p0:], "ck.bin": ck, "cv.bin": cv, "sinks.bin": sinks},
            [ring, p0, n, nh, nkv, hd, window, int(round(np.float32(scale) * 1e9))])
    check(f"attention window {window} hd {hd} p0 {p0} n {n}", rdf(d, "out.bin").reshape(n, nh * hd),
          attn_ref(q, K_all, V_all, sinks, p0, window, nh, nkv, hd, np.float32(scale)), 2e-6)
    ck2 = rdf(d, "ck_out.bin").reshape(cap, kvd)
    want_ck = ck.copy()
    for j in range(p0, total):
        want_ck[j % ring if ring else j] = K_all[j]
    assert np.array_equal(ck2, want_ck), "kv_store"


def test_norm_rope_swiglu(emu):
    """RMSNorm, half-split RoPE with given tables, clamped SwiGLU."""
    n, h, heads, hd = 3, 96, 6, 16
    x = (rng.standard_normal((n, h)) * 3).astype(np.float32); w = rng.standard_normal(h).astype(np.float32)
    cs = rng.standard_normal((n, hd // 2)).astype(np.float32); sn = rng.standard_normal((n, hd // 2)).astype(np.float32)
    d = run(emu, "misc", {"x.bin": x, "w.bin": w, "cos.bin": cs, "sin.bin": sn}, [n, h, int(1e-5 * 1e9), heads, hd])
    xd64 = x.astype(np.float64)
    check("rms_norm", rdf(d, "norm.bin").reshape(n, h), w * (xd64 / np.sqrt((xd64 ** 2).mean(1, keepdims=True) + 1e-5)), 2e-6)
    xr = xd64.reshape(n, heads, hd).copy(); a, bb = xr[..., :hd // 2].copy(), xr[..., hd // 2:].copy()
    c, s_ = cs[:, None, :], sn[:, None, :]
    want_rope = np.concatenate([a * c - bb * s_, bb * c + a * s_], axis=2).reshape(n, h)
    check("rope", rdf(d, "rope.bin").reshape(n, h), want_rope, 2e-6)
    g = np.minimum(xd64, 7.0); u = np.clip(want_rope, -7, 7)
    check("swiglu", rdf(d, "swiglu.bin").reshape(n, h), (u + 1) * g / (1 + np.exp(-1.702 * g)), 2e-6)
