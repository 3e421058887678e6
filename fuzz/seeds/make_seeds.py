#!/usr/bin/env python3
"""Makes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from the files in golden/, small enough to commit.

Standard library only, and it reads golden files byte by byte rather than through ossify, so the seeds are
llama.cpp's and transformers' files, cut down:
  - GGUF (llama.cpp's converter and llama-quantize outputs in golden/llamacpp/): every metadata key/value kept as
    written (tokenizer included); the tensor infos kept (names, types, dimension count) but each tensor shrunk to
    one block, so a seed is a few KB and still a valid file; a metadata-only copy (no tensors); and a two-file
    split set of the shrunk file, with llama.cpp's split.* keys.
  - safetensors (transformers' and OpenAI's files in golden/tiny*): the JSON header's names, dtypes and
    __metadata__ kept, every tensor shrunk to 2 elements (same rank); golden/tiny's shard index with its three
    shards, shrunk the same way.
  - config.json, tokenizer.json (+ tokenizer_config.json, config.json): as they are.
Multi-file seeds are joined by FILE_SEPARATOR (ossify_formats::fuzz). Run from the repository root:
    python3 fuzz/seeds/make_seeds.py
"""
import json
import os
import struct
import sys

SEP = b"\n==ossify-fuzz-next-file==\n"
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "fuzz", "seeds")

# gguf-py constants.py GGML_QUANT_SIZES: type id -> (block size, type size)
GGML_QUANT_SIZES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
                    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
                    15: (256, 292), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2),
                    39: (32, 17)}
# gguf-py GGUFValueType -> struct format of a fixed-size value
FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class Reader:
    def __init__(self, b):
        self.b, self.pos = b, 0

    def take(self, n):
        s = self.b[self.pos:self.pos + n]
        assert len(s) == n, "truncated"
        self.pos += n
        return s

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def skip_value(self, t):
        if t in FIXED:
            self.take(struct.calcsize(FIXED[t]))
        elif t == 8:
            self.take(self.u64())
        elif t == 9:
            et, n = self.u32(), self.u64()
            for _ in range(n):
                self.skip_value(et) if et != 9 else self.skip_array()
        else:
            raise ValueError(f"value type {t}")

    def skip_array(self):
        et, n = self.u32(), self.u64()
        for _ in range(n):
            self.skip_value(et) if et != 9 else self.skip_array()


def read_gguf(path):
    """(version, [raw key/value records as bytes], [(name, n_dims, type)])"""
    b = open(path, "rb").read()
    r = Reader(b)
    assert r.take(4) == b"GGUF"
    version, n_tensors, n_kv = r.u32(), r.u64(), r.u64()
    kvs = []
    for _ in range(n_kv):
        start = r.pos
        key = r.take(r.u64()).decode()
        r.skip_value(r.u32())
        kvs.append((key, b[start:r.pos]))
    tensors = []
    for _ in range(n_tensors):
        name = r.take(r.u64())
        n_dims = r.u32()
        for _ in range(n_dims):
            r.u64()
        ttype = r.u32()
        r.u64()
        tensors.append((name, n_dims, ttype))
    return version, kvs, tensors


def gguf_string(s):
    return struct.pack("<Q", len(s)) + s


def kv_u16(key, v):
    return gguf_string(key.encode()) + struct.pack("<IH", 2, v)


def kv_i32(key, v):
    return gguf_string(key.encode()) + struct.pack("<Ii", 5, v)


def write_gguf(version, kvs, tensors, align=32):
    """GGUF bytes with the raw key/value records and each tensor shrunk to one block (ne = [block, 1, ...])."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    data_sizes, offset = [], 0
    for name, n_dims, ttype in tensors:
        block, size = GGML_QUANT_SIZES[ttype]
        ne0 = max(block, 32)
        out += gguf_string(name) + struct.pack("<I", n_dims) + struct.pack("<Q", ne0)
        out += struct.pack("<Q", 1) * (n_dims - 1) + struct.pack("<IQ", ttype, offset)
        nbytes = ne0 // block * size
        data_sizes.append(nbytes)
        offset += -(-nbytes // align) * align
    if tensors:
        out += b"\0" * (-len(out) % align)
        for i, n in enumerate(data_sizes):
            out += bytes((i * 7 + j) % 251 for j in range(n)) + b"\0" * (-n % align)
    return out


def shrink_safetensors(path):
    b = open(path, "rb").read()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8:8 + n])
    sizes = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
             "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8}
    out, offset = {}, 0
    if "__metadata__" in header:
        out["__metadata__"] = header["__metadata__"]
    names = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"])
    for k in names:
        t = header[k]
        shape = [1] * (len(t["shape"]) - 1) + [2] if t["shape"] else []
        nbytes = sizes[t["dtype"]] * (2 if shape else 1)
        out[k] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    h = json.dumps(out, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + bytes(i % 251 for i in range(offset))


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    g = lambda *p: os.path.join(ROOT, "golden", *p)
    for src in ["llamacpp/tiny.q8_0.gguf", "llamacpp/tiny.f32.gguf", "llamacpp/quantize/tiny-bf16-noisy.mxfp4_moe.gguf",
                "llamacpp/quantize/tiny-bf16-noisy.q4_1.gguf"]:
        version, kvs, tensors = read_gguf(g(src))
        stem = os.path.basename(src)[: -len(".gguf")]
        raw = [v for _, v in kvs]
        shrunk = write_gguf(version, raw, tensors)
        for target in ["gguf", "gguf_config"]:
            put(target, f"{stem}.shrunk.gguf", shrunk)
        if src.endswith("q8_0.gguf"):
            put("gguf", f"{stem}.metadata-only.gguf", write_gguf(version, raw, []))
            # llama-gguf-split's layout: split.no / split.count (u16), split.tensors.count (i32) in every shard,
            # the model's metadata in the first only.
            half = len(tensors) // 2
            split = lambda no: [kv_u16("split.no", no), kv_u16("split.count", 2), kv_i32("split.tensors.count", len(tensors))]
            first = write_gguf(version, raw + split(0), tensors[:half])
            second = write_gguf(version, split(1), tensors[half:])
            put("gguf", f"{stem}.split-2.gguf", first + SEP + second)
    put("safetensors", "tiny-bf16.shrunk.safetensors", shrink_safetensors(g("tiny-bf16", "model.safetensors")))
    put("safetensors", "tiny-original.shrunk.safetensors", shrink_safetensors(g("tiny", "original", "model.safetensors")))
    index = open(g("tiny", "model.safetensors.index.json"), "rb").read()
    shards = [shrink_safetensors(g("tiny", f"model-{i:05}-of-00002.safetensors")) for i in range(3)]
    put("safetensors", "tiny.index-and-3-shards", SEP.join([index] + shards))
    for d in ["tiny", "tiny-bf16", "tiny-bf16-noisy"]:
        put("config_json", f"{d}.config.json", open(g(d, "config.json"), "rb").read())
    put("config_json", "tiny-original.config.json", open(g("tiny", "original", "config.json"), "rb").read())
    tj = open(g("tiny", "tokenizer.json"), "rb").read()
    put("tokenizer_json", "tiny.tokenizer.json", tj)
    put("tokenizer_json", "tiny.tokenizer-config-and-config",
        SEP.join([tj, open(g("tiny", "tokenizer_config.json"), "rb").read(), open(g("tiny", "config.json"), "rb").read()]))


if __name__ == "__main__":
    sys.exit(main())
