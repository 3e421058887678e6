#!/usr/bin/env python3
"""Test vectors for formats/src/quant, made by implementations independent of ours.

- gguf-py's `gguf.quants` (llama.cpp 0c1e570's vendored gguf-py 0.19.0, whose tests assert bit-exactness with
  ggml's C) quantizes and dequantizes inputs.f32 for every block type;
- ggml's own C reference quantizers (ggml/src/ggml-quants.c, built here with the tiny harness ggml_ref.c) do the
  same and must agree byte for byte, else this script fails;
- llama.cpp's converter repack (conversion/gpt_oss.py `transform_nibble_layout`, its torch code run verbatim on
  random bytes) pins the HF -> ggml MXFP4 nibble order.

Run from anywhere:  /opt/venv/bin/python golden/quant/make_vectors.py   (needs numpy, torch, a C compiler)
Files written next to this script are described in README.md.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

LLAMA = os.environ.get("LLAMA_CPP", "/opt/llama/llama_cpp_python-0.3.36/vendor/llama.cpp")
sys.path.insert(0, os.path.join(LLAMA, "gguf-py"))
import gguf  # noqa: E402
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf.quants import quantize, dequantize  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROW = 256  # elements per input row (8 blocks of 32)
TYPES = {
    "q4_0": T.Q4_0, "q4_1": T.Q4_1, "q5_0": T.Q5_0, "q5_1": T.Q5_1, "q8_0": T.Q8_0,
    "mxfp4": T.MXFP4, "f16": T.F16, "bf16": T.BF16,
}
rng = np.random.default_rng(20251125)


def f32(x):
    return np.asarray(x, dtype=np.float32)


def pad_row(values):
    """One ROW-element row: the given values, then zeros."""
    v = f32(values).ravel()
    assert v.size <= ROW
    return np.concatenate([v, np.zeros(ROW - v.size, np.float32)])


def input_rows():
    rows = {}
    rows["zeros"] = np.zeros(ROW, np.float32)
    rows["negative_zeros"] = -np.zeros(ROW, np.float32)
    for scale in (1e-3, 1.0, 37.0, 1e4):
        rows[f"normal_{scale:g}"] = f32(rng.standard_normal(ROW) * scale)
    rows["uniform_pos"] = f32(rng.uniform(0.0, 3.0, ROW))
    rows["negative_only"] = f32(-rng.uniform(0.1, 5.0, ROW))
    rows["tiny_1e-30"] = f32(rng.standard_normal(ROW) * 1e-30)
    rows["tiny_f16_subnormal"] = f32(rng.standard_normal(ROW) * 3e-6)
    rows["huge_1e30"] = f32(rng.standard_normal(ROW) * 1e30)
    rows["huge_1e5_f16_overflow"] = f32(rng.standard_normal(ROW) * 1e5)
    rows["bf16_weights"] = (f32(rng.standard_normal(ROW) * 0.02).view(np.uint32) & 0xFFFF0000).view(np.float32)
    # one outlier per block among small values
    r = f32(rng.standard_normal(ROW) * 0.01)
    r[::32] = f32(rng.choice([-1.0, 1.0], ROW // 32) * rng.uniform(5, 50, ROW // 32))
    rows["outliers"] = r
    rows["constant_blocks"] = np.repeat(f32(rng.uniform(-2, 2, ROW // 32)), 32)
    # the same magnitude twice with opposite signs: Q4_0/Q5_0 keep the first one's sign
    r = f32(rng.uniform(-1, 1, ROW))
    r[0::32], r[5::32] = -3.0, 3.0
    r[64 + 0], r[64 + 5] = 3.0, -3.0
    rows["absmax_sign_ties"] = r
    # MXFP4 midpoints at half-scale 0.5 (amax 4 -> e = 127): exact ties between neighbouring values
    mids = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 4.0]
    block = mids + [-m for m in mids] + [0.0, -0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 6.0] + [-0.5, -1.0, -1.5, -2.0, -3.0, -6.0, 0.1, -0.1]
    rows["mxfp4_ties"] = np.tile(f32(block), ROW // 32)
    # Q8_0 halves: amax 127 -> d = 1, x.5 rounds away from zero
    q8 = [127.0] + [k + 0.5 for k in range(-15, 16)]
    rows["q8_0_halves"] = np.tile(f32(q8), ROW // 32)
    # integer grids that Q4_0 / Q5_0 represent exactly
    rows["q4_grid"] = np.tile(f32(list(range(-8, 8)) * 2), ROW // 32)
    rows["q5_grid"] = np.tile(f32(range(-16, 16)), ROW // 32)
    # amax just below / at powers of two: floor(log2f(amax)) decides the MXFP4 exponent
    r = f32(rng.uniform(-0.5, 0.5, ROW))
    for b, k in enumerate([-20, -3, 0, 1, 7, 10, 20, 40]):
        below = np.nextafter(np.float32(2.0**k), np.float32(0))
        r[32 * b] = below if b % 2 == 0 else np.float32(2.0**k)
        r[32 * b + 1 : 32 * (b + 1)] *= np.float32(2.0**k)
    rows["powers_of_two"] = r
    # 1 - 2^-24 times 2^k: where log2f rounds up to k for larger k
    r = np.zeros(ROW, np.float32)
    for b, k in enumerate([3, 6, 9, 12, 15, 20, 30, 60]):
        r[32 * b : 32 * (b + 1)] = f32(rng.uniform(-1, 1, 32)) * np.float32(2.0**k)
        r[32 * b] = np.nextafter(np.float32(2.0**k), np.float32(0))
    rows["log2_rounding"] = r
    # f16 / bf16 rounding: exact halfway points between neighbours (ties to even), both parities
    base = f32(rng.uniform(1, 2, ROW // 2))
    f16_mid = (base.astype(np.float16).astype(np.float32).view(np.uint32) + (1 << 12)).view(np.float32)
    bf_mid = (base.view(np.uint32) & 0xFFFF0000 | 0x8000).view(np.float32)
    rows["half_ties"] = np.concatenate([f16_mid, bf_mid])
    return rows


def run_c(tool, mode, tname, data: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        i, o = os.path.join(d, "in"), os.path.join(d, "out")
        with open(i, "wb") as f:
            f.write(data)
        subprocess.run([tool, mode, tname, i, o], check=True)
        with open(o, "rb") as f:
            return f.read()


def build_c(outdir):
    ggml = os.path.join(LLAMA, "ggml")
    exe = os.path.join(outdir, "ggml_ref")
    cmd = ["cc", "-O2", "-ffp-contract=off", f"-I{ggml}/include", f"-I{ggml}/src",
           os.path.join(HERE, "ggml_ref.c"), f"{ggml}/src/ggml-quants.c", "-lm", "-o", exe]
    subprocess.run(cmd, check=True)
    return exe


def random_blocks(tname, n_blocks):
    """Arbitrary valid encodings (every code reachable), scales kept finite for f16-scaled types."""
    if tname in ("f16",):
        h = rng.integers(0, 1 << 16, n_blocks * 32, dtype=np.uint16)
        h = np.where((h & 0x7C00) == 0x7C00, h & 0x83FF, h).astype(np.uint16)  # no inf/NaN
        return h.view(np.uint8)
    if tname == "bf16":
        h = rng.integers(0, 1 << 16, n_blocks * 32, dtype=np.uint16)
        h = np.where((h & 0x7F80) == 0x7F80, h & 0x807F, h).astype(np.uint16)
        return h.view(np.uint8)
    ts = gguf.GGML_QUANT_SIZES[TYPES[tname]][1]
    b = rng.integers(0, 256, (n_blocks, ts), dtype=np.uint8)
    if tname == "mxfp4":
        b[:, 0] = np.arange(n_blocks) % 256  # every exponent, incl. the subnormal 0 and 1 and 255
    else:
        n_half = 2 if tname in ("q4_0", "q5_0", "q8_0") else 4
        h = b[:, :n_half].copy().view(np.uint16)
        h = np.where((h & 0x7C00) == 0x7C00, h & 0x83FF, h).astype(np.uint16)
        b[:, :n_half] = h.view(np.uint8)
    return b.ravel()


def transform_nibble_layout(tensor):
    # verbatim from llama.cpp conversion/gpt_oss.py (GptOssModel.transform_nibble_layout), 0c1e570
    assert tensor.dtype == torch.uint8
    assert tensor.shape[-1] == 16
    # swap nibbles
    t_lo = tensor & 0x0F
    t_hi = tensor & 0xF0
    t_swapped = (t_lo << 4) | (t_hi >> 4)
    tensor = t_swapped
    # transform aaaa...bbbb... to abababab...
    blk_a, blk_b = tensor.chunk(2, dim=-1)
    # get a_
    blk_a0 = (blk_a & 0xF0).view(-1, 1)
    blk_a1 = (blk_a << 4).view(-1, 1)
    blk_a = torch.stack((blk_a0, blk_a1), dim=2).view(tensor.shape)
    # get _b
    blk_b0 = (blk_b >> 4).view(-1, 1)
    blk_b1 = (blk_b & 0x0F).view(-1, 1)
    blk_b = torch.stack((blk_b0, blk_b1), dim=2).view(tensor.shape)
    # swap once more
    out = blk_a | blk_b
    out_h = out & 0xF0
    out_l = out & 0x0F
    out = (out_h >> 4) | (out_l << 4)
    return out


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(bytes(data))


def main():
    rows = input_rows()
    names = list(rows)
    inputs = np.concatenate([rows[n] for n in names]).astype("<f4")
    write("inputs.f32", inputs.tobytes())
    with open(os.path.join(HERE, "inputs.txt"), "w") as f:
        f.write(f"# rows of {ROW} f32 in inputs.f32, in order\n")
        f.write("".join(n + "\n" for n in names))

    disagreements = []
    with tempfile.TemporaryDirectory() as tmp:
        tool = build_c(tmp)
        for tname, qt in TYPES.items():
            q = quantize(inputs.reshape(-1, ROW), qt)
            if tname == "bf16":
                q = q.view(np.uint8)
            q = np.ascontiguousarray(q).view(np.uint8).ravel().tobytes()
            qc = run_c(tool, "quantize", tname, inputs.tobytes())
            if q != qc:
                # ggml's C is the reference; gguf-py is the cross-check. Name every disagreeing row.
                rb_ = len(q) // len(names)
                bad = sorted({names[i // rb_] for i in range(len(q)) if q[i] != qc[i]})
                disagreements.append(f"{tname} quantize: gguf-py differs from ggml C in rows {bad}; kept ggml C")
                q = qc
            dq = dequantize(np.frombuffer(q, np.uint8).reshape(len(names), -1), qt).astype("<f4").tobytes()
            dqc = run_c(tool, "dequantize", tname, q)
            if dq != dqc:
                sys.exit(f"{tname}: gguf-py and ggml C dequantize differently")
            write(f"{tname}.quant.bin", q)
            write(f"{tname}.dequant.f32", dq)

            rb = random_blocks(tname, 256 if tname == "mxfp4" else 64)
            ts = 2 if tname in ("f16", "bf16") else gguf.GGML_QUANT_SIZES[qt][1]
            rdq = dequantize(rb.reshape(-1, ts * (32 if ts == 2 else 1)), qt).astype("<f4").tobytes()
            rdqc = run_c(tool, "dequantize", tname, rb.tobytes())
            if rdq != rdqc:
                sys.exit(f"{tname}: gguf-py and ggml C decode random blocks differently")
            write(f"{tname}.random.bin", rb.tobytes())
            write(f"{tname}.random.f32", rdq)

        # Non-finite and subnormal scalars: gguf-py's F16 goes through numpy, whose NaN payloads differ from
        # ggml's quiet 0x7E00, so these come from ggml's C alone.
        specials = f32([np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 1e-40, 6e-8, 3e-8, 65504, 65519.99,
                        65520, 1e10, -0.0, 0.0, 1.0])
        nan_bits = np.array([0x7F800001, 0xFFC00001, 0x7FFFFFFF, 0x7FA00000], np.uint32).view(np.float32)
        specials = np.concatenate([specials, nan_bits]).astype("<f4")
        # and 4096 random bit patterns (all exponents, NaNs included)
        specials = np.concatenate([specials, rng.integers(0, 1 << 32, 4096, dtype=np.uint32).view(np.float32)])
        specials = specials.astype("<f4")
        write("specials.f32", specials.tobytes())
        for tname in ("f16", "bf16"):
            write(f"{tname}.specials.bin", run_c(tool, "quantize", tname, specials.tobytes()))

        # MXFP4 blocks whose amax < 2^-125: ggml's exponent goes negative and C's float -> uint8_t conversion is
        # undefined; pin what this x86-64 build of ggml's C produces (gguf-py must agree, else we stop).
        tiny = f32(rng.standard_normal(64) * 1e-39)
        tiny[:32] *= np.float32(1e-3)
        tq = run_c(tool, "quantize", "mxfp4", tiny.astype("<f4").tobytes())
        tqp = np.ascontiguousarray(quantize(tiny.reshape(1, -1), T.MXFP4)).tobytes()
        if tq != tqp:
            disagreements.append("mxfp4 quantize of blocks with amax < 2^-125: gguf-py differs from ggml C; kept ggml C")
        write("mxfp4_tiny.f32", tiny.astype("<f4").tobytes())
        write("mxfp4_tiny.quant.bin", tq)

    # HF/OpenAI MXFP4 -> ggml repack, by llama.cpp's own converter code: [experts=2, rows=3, blocks=4, 16]
    blocks = torch.from_numpy(rng.integers(0, 256, (2, 3, 4, 16), dtype=np.uint8))
    scales = rng.integers(100, 150, (2, 3, 4), dtype=np.uint8)
    scales.flat[:6] = [0, 1, 2, 127, 254, 255]  # subnormal, unit and overflowing scales too
    scales = torch.from_numpy(scales)
    ggml = torch.concat((scales.unsqueeze(-1), transform_nibble_layout(blocks)), dim=-1)
    write("mxfp4_hf.blocks.bin", blocks.numpy().tobytes())
    write("mxfp4_hf.scales.bin", scales.numpy().tobytes())
    write("mxfp4_hf.ggml.bin", ggml.numpy().tobytes())
    write("mxfp4_hf.dequant.f32",
          dequantize(ggml.numpy().reshape(-1, 17 * 4), T.MXFP4).astype("<f4").tobytes())

    with open(os.path.join(HERE, "disagreements.txt"), "w") as f:
        f.write("# where gguf-py's quantizers differ from ggml's C reference (the vectors keep ggml C)\n")
        f.write("".join(d + "\n" for d in disagreements))
    print("\n".join(disagreements))
    # HF semantics straight from transformers (integrations/mxfp4.py, FP4 LUT then ldexp(., scale - 127)); it
    # returns [experts, cols, rows], so transpose back to [experts, rows, cols]. Code 8 gives -0.0 here, +0.0 in
    # ggml: compare as numbers.
    import transformers
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors
    hf = convert_moe_packed_tensors(blocks, scales, dtype=torch.float32).transpose(1, 2).contiguous()
    write("mxfp4_hf.transformers.f32", hf.numpy().astype("<f4").tobytes())

    print(f"transformers {transformers.__version__}")
    print(f"gguf-py {gguf.__file__} (pyproject 0.19.0), numpy {np.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
