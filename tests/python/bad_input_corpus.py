"""The bad-input corpus (issue 8): hostile inputs derived from golden/, each with the command to run on it and
what ossify must do: exit 2 for bad input (1 for a verdict that fails), one error line naming the file and the
field or tensor, nothing written (no output, no `.partial`), every input unchanged.

Each case is a function that builds its inputs in an empty folder and returns the `ossify` arguments, the exit
code and the strings the error line must contain. The hostile files are made from the golden checkpoints with
independent tools: GGUF metadata rewritten by gguf-py's writer (as its gguf_new_metadata.py does), GGUF headers
patched byte by byte from the layout in ggml's docs/gguf.md, safetensors files rewritten with numpy and json.

    python tests/python/bad_input_corpus.py OUT     # writes OUT/<case>/ and OUT/cases.json (args, code, needles)

tests/python/test_bad_input.py runs every case (scripts/test-all runs it). Needs numpy and gguf (gguf-py).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "golden"
TINY = GOLDEN / "tiny"  # HF layout, three shards with OpenAI's zero-based names
TINY_GGUF = GOLDEN / "llamacpp" / "tiny.bf16.gguf"  # llama.cpp's converter output for golden/tiny
U64_MAX = 2**64 - 1
TEXT = "The quick brown fox jumps over the lazy dog. " * 8
Q_PROJ = "model.layers.1.self_attn.q_proj.weight"


@dataclass
class Spec:
    """What a case runs and expects. `needles`: each entry a string, or a tuple of which one must appear."""

    args: list
    code: int = 2
    needles: list = field(default_factory=list)
    # Paths that the run must not create (checked besides "nothing new in the folder").
    outputs: list = field(default_factory=list)


@dataclass
class Case:
    name: str
    kind: str  # the class of the issue it belongs to
    build: Callable[[Path], Spec]

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.name}"


CASES: list[Case] = []


def case(kind: str, name: str | None = None):
    def register(f):
        CASES.append(Case(name or f.__name__, kind, f))
        return f

    return register


def with_and_without_force(kind: str):
    """Registers the case twice: as built (its args end in --force) and without --force; both must refuse."""

    def register(f):
        def plain(d: Path) -> Spec:
            s = f(d)
            s.args = [a for a in s.args if a != "--force"]
            return s

        CASES.append(Case(f"{f.__name__}_force", kind, f))
        CASES.append(Case(f.__name__, kind, plain))
        return f

    return register


def cases(kind: str, name: str, variants: dict):
    """Registers one case per variant: `variants` maps a suffix to a builder."""
    for suffix, f in variants.items():
        CASES.append(Case(f"{name}_{suffix}", kind, f))


# ---- building blocks ----


def copy_tiny(d: Path, with_original: bool = False) -> Path:
    m = d / "model"
    shutil.copytree(TINY, m, ignore=None if with_original else shutil.ignore_patterns("original"))
    return m


def copy_original(d: Path) -> Path:
    """OpenAI's original/ layout with the tokenizer beside it, as the HF repos ship it."""
    m = d / "model"
    (m / "original").mkdir(parents=True)
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(TINY / f, m / f)
    for f in ["config.json", "model.safetensors"]:
        shutil.copy(TINY / "original" / f, m / "original" / f)
    return m / "original"


def text(d: Path) -> Path:
    p = d / "text.txt"
    p.write_text(TEXT)
    return p


def edit_json(p: Path, f: Callable) -> None:
    """Edits the parsed JSON in place through `f` (its return value is ignored)."""
    v = json.loads(p.read_text())
    f(v)
    p.write_text(json.dumps(v, indent=2))


def shard_of(model: Path, tensor: str) -> Path:
    idx = json.loads((model / "model.safetensors.index.json").read_text())
    return model / idx["weight_map"][tensor]


# safetensors, per huggingface/safetensors' format: u64 header length, JSON header, data.


def st_read(p: Path) -> tuple[dict, bytes]:
    b = p.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8 : 8 + n]), b[8 + n :]


def st_tensors(p: Path) -> list:
    """[(name, dtype, shape, bytes)] in header order (metadata dropped)."""
    h, data = st_read(p)
    out = []
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out.append((k, v["dtype"], list(v["shape"]), data[a:b]))
    return out


def st_write(p: Path, tensors: list, header_edit: Callable | None = None) -> None:
    h = {"__metadata__": {"format": "pt"}}
    off, blobs = 0, []
    for name, dtype, shape, data in tensors:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    if header_edit:
        header_edit(h)
    hb = json.dumps(h, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    p.write_bytes(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


def st_rewrite(p: Path, edit: Callable) -> None:
    """`edit(name, dtype, shape, bytes)` returns the new tuple, or None to drop the tensor."""
    st_write(p, [t for t in (edit(*t) for t in st_tensors(p)) if t is not None])


BF16_NAN = b"\xc0\x7f"


# GGUF, through gguf-py.


def gguf_rewrite(
    dst: Path,
    src: Path = TINY_GGUF,
    kv: dict | None = None,
    drop: tuple = (),
    tensor: Callable | None = None,
    arch: str | None = None,
) -> Path:
    """A copy of `src` with keys replaced or added (`kv`: key -> (GGUFValueType, value[, sub type])), keys
    dropped, and tensor data edited (`tensor(name, type, array) -> array`), written by gguf-py."""
    import gguf

    r = gguf.GGUFReader(src)
    arch = arch if arch is not None else r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    kv = dict(kv or {})
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name in drop:
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        if name in kv:
            new = kv.pop(name)
            w.add_key_value(name, new[1], new[0], sub_type=new[2] if len(new) > 2 else sub)
        else:
            w.add_key_value(name, f.contents(), vtype, sub_type=sub)
    for name, new in kv.items():
        w.add_key_value(name, new[1], new[0], sub_type=new[2] if len(new) > 2 else None)
    datas = []
    for t in r.tensors:
        data = np.array(t.data)
        if tensor is not None:
            data = tensor(t.name, t.tensor_type, data)
        datas.append(data)
        w.add_tensor_info(t.name, data.shape, data.dtype, data.nbytes, t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for data in datas:
        w.write_tensor_data(data)
    w.close()
    return dst


def vt():
    import gguf

    return gguf.GGUFValueType


def gguf_meta(d: Path, key: str, vtype_name: str, value, name: str = "model.gguf") -> Path:
    return gguf_rewrite(d / name, kv={key: (getattr(vt(), vtype_name), value)})


# GGUF byte layout (ggml docs/gguf.md): magic, u32 version, u64 tensor count, u64 kv count, then each kv
# (u64 key length, key, u32 type, value), then each tensor info (u64 name length, name, u32 n_dims, u64 dims,
# u32 type, u64 offset).


def gguf_layout(b: bytes) -> dict:
    """Offsets of the header's fields, for byte patches."""
    pos = 24
    n_tensors, n_kv = struct.unpack_from("<QQ", b, 8)
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    kvs = {}

    def value(t, pos):
        if t == 8:
            (n,) = struct.unpack_from("<Q", b, pos)
            return pos + 8 + n
        if t == 9:
            (et, n) = struct.unpack_from("<IQ", b, pos)
            pos += 12
            for _ in range(n):
                pos = value(et, pos)
            return pos
        return pos + sizes[t]

    for _ in range(n_kv):
        (kl,) = struct.unpack_from("<Q", b, pos)
        key = b[pos + 8 : pos + 8 + kl].decode()
        tpos = pos + 8 + kl
        (t,) = struct.unpack_from("<I", b, tpos)
        kvs[key] = {"at": pos, "type_at": tpos, "value_at": tpos + 4}
        pos = value(t, tpos + 4)
    tensors = {}
    for _ in range(n_tensors):
        (nl,) = struct.unpack_from("<Q", b, pos)
        name = b[pos + 8 : pos + 8 + nl].decode()
        p = pos + 8 + nl
        (nd,) = struct.unpack_from("<I", b, p)
        tensors[name] = {"at": pos, "ndims_at": p, "dims_at": p + 4, "type_at": p + 4 + 8 * nd, "offset_at": p + 8 + 8 * nd}
        pos = p + 16 + 8 * nd
    return {"kv": kvs, "tensors": tensors, "end": pos}


def gguf_patch(d: Path, patch: Callable, name: str = "model.gguf") -> Path:
    b = bytearray(TINY_GGUF.read_bytes())
    patch(b, gguf_layout(bytes(b)))
    p = d / name
    p.write_bytes(bytes(b))
    return p


def put(b: bytearray, at: int, fmt: str, v) -> None:
    struct.pack_into(fmt, b, at, v)


def ppl(model, d, *extra):
    return ["perplexity", str(model), "--text", str(text(d)), "--ctx", "8", *extra]


# ---- GGUF metadata: every number read from a file is checked before it sizes anything ----

BC = "gpt-oss.block_count"


# where the error names what the key disagrees with instead of the key itself
NEEDLE = {
    "gpt-oss.embedding_length": ("gpt-oss.embedding_length", "token_embd.weight"),
    "gpt-oss.attention.key_length": ("gpt-oss.attention.key_length", "the key length"),
}


def _meta_cases():
    table = [
        # (case, key, type, value, commands)
        ("block_count_1e9", BC, "UINT32", 10**9, ["inspect", "ppl", "quantize"]),
        ("block_count_2p31m1", BC, "UINT32", 2**31 - 1, ["inspect", "stats", "ppl"]),
        ("block_count_0", BC, "UINT32", 0, ["ppl"]),
        ("block_count_5_of_4", BC, "UINT32", 5, ["ppl", "quantize"]),
        ("block_count_string", BC, "STRING", "4", ["inspect"]),
        ("sliding_window_2p62", "gpt-oss.attention.sliding_window", "UINT64", 2**62, ["ppl"]),
        ("sliding_window_u64max", "gpt-oss.attention.sliding_window", "UINT64", U64_MAX, ["ppl", "inspect"]),
        ("rms_epsilon_negative", "gpt-oss.attention.layer_norm_rms_epsilon", "FLOAT32", -1e-5, ["ppl"]),
        ("rms_epsilon_nan", "gpt-oss.attention.layer_norm_rms_epsilon", "FLOAT32", math.nan, ["ppl"]),
        ("rms_epsilon_0", "gpt-oss.attention.layer_norm_rms_epsilon", "FLOAT32", 0.0, ["ppl"]),
        ("freq_base_0", "gpt-oss.rope.freq_base", "FLOAT32", 0.0, ["ppl", "generate"]),
        ("freq_base_inf", "gpt-oss.rope.freq_base", "FLOAT32", math.inf, ["ppl"]),
        ("freq_base_negative", "gpt-oss.rope.freq_base", "FLOAT32", -150000.0, ["ppl"]),
        ("rope_factor_nan", "gpt-oss.rope.scaling.factor", "FLOAT32", math.nan, ["ppl"]),
        ("rope_factor_0", "gpt-oss.rope.scaling.factor", "FLOAT32", 0.0, ["ppl"]),
        ("yarn_beta_fast_nan", "gpt-oss.rope.scaling.yarn_beta_fast", "FLOAT32", math.nan, ["ppl"]),
        ("embedding_length_97", "gpt-oss.embedding_length", "UINT32", 97, ["ppl"]),
        ("embedding_length_2p31", "gpt-oss.embedding_length", "UINT32", 2**31, ["ppl", "inspect"]),
        ("head_count_0", "gpt-oss.attention.head_count", "UINT32", 0, ["ppl"]),
        ("head_count_kv_3", "gpt-oss.attention.head_count_kv", "UINT32", 3, ["ppl"]),
        ("key_length_2p20", "gpt-oss.attention.key_length", "UINT32", 2**20, ["ppl"]),
        ("expert_count_2p31", "gpt-oss.expert_count", "UINT32", 2**31, ["ppl", "inspect"]),
        ("expert_used_count_5_of_4", "gpt-oss.expert_used_count", "UINT32", 5, ["ppl"]),
        ("expert_ffn_length_2p31", "gpt-oss.expert_feed_forward_length", "UINT32", 2**31, ["ppl"]),
        ("context_length_0", "gpt-oss.context_length", "UINT32", 0, ["ppl"]),
        ("context_length_u64max", "gpt-oss.context_length", "UINT64", U64_MAX, ["ppl"]),
        ("bos_token_id_100000", "tokenizer.ggml.bos_token_id", "UINT32", 100000, ["ppl", "tokenize"]),
        ("eos_token_id_u32max", "tokenizer.ggml.eos_token_id", "UINT32", 2**32 - 1, ["generate"]),
    ]

    def make(key, vtype, value, cmd):
        def build(d: Path) -> Spec:
            g = gguf_meta(d, key, vtype, value)
            args = {
                "inspect": ["inspect-weights", str(g)],
                "stats": ["inspect-weights", str(g), "--stats"],
                "ppl": ppl(g, d, "--dump-logits", str(d / "logits.npy")),
                "quantize": ["quantize", str(g), "-o", str(d / "q.gguf")],
                "tokenize": ["tokenize", str(g), "-p", "hello world"],
                "generate": ["generate", str(g), "-p", "hi", "-n", "2"],
            }[cmd]
            return Spec(args, 2, ["model.gguf", NEEDLE.get(key, key)])

        return build

    for name, key, vtype, value, cmds in table:
        cases("gguf-metadata", name, {c: make(key, vtype, value, c) for c in cmds})


_meta_cases()


@case("gguf-metadata")
def vocab_shorter_than_embedding_rows(d):
    import gguf

    r = gguf.GGUFReader(TINY_GGUF)
    toks = r.fields["tokenizer.ggml.tokens"].contents()[:500]
    types = r.fields["tokenizer.ggml.token_type"].contents()[:500]
    A = vt()
    g = gguf_rewrite(
        d / "model.gguf",
        kv={
            "tokenizer.ggml.tokens": (A.ARRAY, toks, A.STRING),
            "tokenizer.ggml.token_type": (A.ARRAY, types, A.INT32),
        },
    )
    return Spec(ppl(g, d), 2, ["model.gguf", ("tokenizer.ggml.tokens", "token_embd.weight")])


@case("gguf-metadata")
def token_type_length_mismatch(d):
    import gguf

    r = gguf.GGUFReader(TINY_GGUF)
    types = r.fields["tokenizer.ggml.token_type"].contents()[:10]
    A = vt()
    g = gguf_rewrite(d / "model.gguf", kv={"tokenizer.ggml.token_type": (A.ARRAY, types, A.INT32)})
    return Spec(["tokenize", str(g), "-p", "hello"], 2, ["model.gguf", "tokenizer.ggml.token_type"])


@case("gguf-metadata")
def missing_block_count(d):
    g = gguf_rewrite(d / "model.gguf", drop=(BC,))
    return Spec(ppl(g, d), 2, ["model.gguf", BC])


@case("gguf-metadata")
def unknown_architecture(d):
    g = gguf_rewrite(d / "model.gguf", arch="llama")
    return Spec(ppl(g, d), 2, ["model.gguf", "general.architecture", "llama"])


@case("gguf-metadata")
def tensor_shape_disagrees_with_metadata(d):
    def t(name, ty, a):
        # attn_q with one row fewer: the reader must compare shapes, not trust block sizes
        return a[:-1] if name == "blk.2.attn_q.weight" else a

    g = gguf_rewrite(d / "model.gguf", tensor=t)
    return Spec(ppl(g, d), 2, ["model.gguf", "blk.2.attn_q.weight"])


# ---- GGUF structure: short, truncated and impossible headers ----


def _structure(name, patch, needles=(), cmd="inspect"):
    def build(d: Path) -> Spec:
        if isinstance(patch, bytes):
            g = d / "model.gguf"
            g.write_bytes(patch)
        else:
            g = gguf_patch(d, patch)
        args = ["inspect-weights", str(g)] if cmd == "inspect" else ppl(g, d)
        return Spec(args, 2, ["model.gguf", *needles])

    CASES.append(Case(name, "gguf-structure", build))


_structure("gguf_empty_file", b"")
_structure("gguf_three_bytes", b"GGU")
_structure("gguf_header_only", TINY_GGUF.read_bytes()[:24])
_structure("gguf_bad_magic", b"GGML" + TINY_GGUF.read_bytes()[4:200])
_structure("gguf_version_99", lambda b, L: put(b, 4, "<I", 99), ["99"])
_structure("gguf_tensor_count_2p62", lambda b, L: put(b, 8, "<Q", 2**62))
_structure("gguf_kv_count_2p62", lambda b, L: put(b, 16, "<Q", 2**62))
_structure("gguf_key_length_2p62", lambda b, L: put(b, L["kv"]["general.architecture"]["at"], "<Q", 2**62))
_structure(
    "gguf_string_length_2p62",
    lambda b, L: put(b, L["kv"]["general.name"]["value_at"], "<Q", 2**62),
    ["general.name"],
)
_structure(
    "gguf_array_length_2p62",
    lambda b, L: put(b, L["kv"]["tokenizer.ggml.tokens"]["value_at"] + 4, "<Q", 2**62),
    ["tokenizer.ggml.tokens"],
)
_structure(
    "gguf_value_type_99",
    lambda b, L: put(b, L["kv"]["general.name"]["type_at"], "<I", 99),
    ["general.name"],
)
_structure(
    "gguf_tensor_type_999",
    lambda b, L: put(b, L["tensors"]["blk.0.attn_q.weight"]["type_at"], "<I", 999),
    ["blk.0.attn_q.weight"],
)
_structure(
    "gguf_tensor_ndims_9",
    lambda b, L: put(b, L["tensors"]["token_embd.weight"]["ndims_at"], "<I", 9),
    ["token_embd.weight"],
)
_structure(
    "gguf_tensor_dims_overflow",
    lambda b, L: (
        put(b, L["tensors"]["output.weight"]["dims_at"], "<Q", 2**40),
        put(b, L["tensors"]["output.weight"]["dims_at"] + 8, "<Q", 2**40),
    ),
    ["output.weight"],
)
_structure(
    "gguf_tensor_offset_past_end",
    lambda b, L: put(b, L["tensors"]["output.weight"]["offset_at"], "<Q", 2**40),
    ["output.weight"],
)
_structure(
    "gguf_tensor_offset_misaligned",
    lambda b, L: put(b, L["tensors"]["output.weight"]["offset_at"], "<Q", 7),
    ["output.weight"],
)


def _dup_tensor_name(b, L):
    # the second tensor renamed to the first one's name (same length in the file: ffn_gate_exps / ffn_down_exps)
    a = L["tensors"]["blk.0.ffn_down_exps.weight"]["at"]
    g = L["tensors"]["blk.0.ffn_gate_exps.weight"]["at"]
    b[g + 8 : g + 8 + len("blk.0.ffn_down_exps.weight")] = b[a + 8 : a + 8 + len("blk.0.ffn_down_exps.weight")]


_structure("gguf_duplicate_tensor_name", _dup_tensor_name, ["blk.0.ffn_down_exps.weight"])


@case("gguf-structure")
def gguf_truncated_data(d):
    g = d / "cut.gguf"
    b = TINY_GGUF.read_bytes()
    g.write_bytes(b[: len(b) - 1000])
    return Spec(["inspect-weights", str(g), "--stats"], 2, ["cut.gguf", ("truncated", "outside the file")])


@case("gguf-structure")
def gguf_truncated_in_header(d):
    g = d / "cut.gguf"
    L = gguf_layout(TINY_GGUF.read_bytes())
    g.write_bytes(TINY_GGUF.read_bytes()[: L["kv"]["tokenizer.ggml.merges"]["value_at"] + 100])
    return Spec(ppl(g, d), 2, ["cut.gguf"])


# ---- safetensors checkpoints (HF layout) ----


@case("safetensors")
def missing_shard(d):
    m = copy_tiny(d)
    s = shard_of(m, Q_PROJ)
    s.unlink()
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, ["model.safetensors.index.json", s.name, "does not exist"])


def _drop(n, dt, s, b, name=Q_PROJ):
    return None if n == name else (n, dt, s, b)


@case("safetensors")
def tensor_missing(d):
    m = copy_tiny(d)
    st_rewrite(shard_of(m, Q_PROJ), _drop)
    edit_json(m / "model.safetensors.index.json", lambda v: v["weight_map"].pop(Q_PROJ))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [Q_PROJ, "missing"])


@case("safetensors")
def index_names_a_tensor_not_in_its_shard(d):
    m = copy_tiny(d)
    s = shard_of(m, Q_PROJ)
    st_rewrite(s, _drop)
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [Q_PROJ, "model.safetensors.index.json"])


def _transpose(n, dt, s, b):
    return (n, dt, [s[1], s[0]] if n == Q_PROJ else s, b)


@case("safetensors")
def tensor_with_wrong_shape(d):
    m = copy_tiny(d)
    st_rewrite(shard_of(m, Q_PROJ), _transpose)
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [Q_PROJ, "[96, 64]", "[64, 96]"])


@case("safetensors")
def tensor_with_wrong_shape_inspect(d):
    m = copy_tiny(d)
    st_rewrite(shard_of(m, Q_PROJ), _transpose)
    return Spec(["inspect-weights", str(m)], 2, [Q_PROJ, "[96, 64]"])


@case("safetensors")
def tensor_with_wrong_shape_perplexity(d):
    m = copy_tiny(d)
    st_rewrite(shard_of(m, Q_PROJ), _transpose)
    return Spec(ppl(m, d), 2, [Q_PROJ, "[96, 64]"])


@case("safetensors")
def tensor_with_wrong_dtype(d):
    m = copy_tiny(d)
    st_rewrite(shard_of(m, Q_PROJ), lambda n, dt, s, b: (n, "I16" if n == Q_PROJ else dt, s, b))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [Q_PROJ, "I16"])


@case("safetensors")
def expert_blocks_with_wrong_dtype(d):
    m = copy_tiny(d)
    t = "model.layers.0.mlp.experts.down_proj_blocks"
    st_rewrite(shard_of(m, t), lambda n, dt, s, b: (n, "I8" if n == t else dt, s, b))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [t, "I8", "U8"])


@case("safetensors")
def unexpected_extra_tensor(d):
    m = copy_tiny(d)
    extra, norm = "model.layers.4.input_layernorm.weight", "model.layers.3.input_layernorm.weight"
    s = shard_of(m, norm)
    ts = st_tensors(s)
    ts.append((extra, *next(t[1:] for t in ts if t[0] == norm)))
    st_write(s, ts)
    edit_json(m / "model.safetensors.index.json", lambda v: v["weight_map"].__setitem__(extra, s.name))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [extra, s.name, "not part of a gpt-oss model"])


@case("safetensors")
def truncated_shard(d):
    m = copy_tiny(d)
    s = shard_of(m, Q_PROJ)
    with open(s, "r+b") as f:
        f.truncate(s.stat().st_size - 100)
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [s.name, "truncated"])


@case("safetensors")
def index_names_a_file_outside_the_folder(d):
    m = copy_tiny(d)
    shutil.copy(shard_of(m, Q_PROJ), d / "outside.safetensors")
    edit_json(m / "model.safetensors.index.json", lambda v: v["weight_map"].__setitem__(Q_PROJ, "../outside.safetensors"))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, ["../outside.safetensors", "inside the model folder"])


@case("safetensors")
def index_names_an_absolute_path(d):
    m = copy_tiny(d)
    shutil.copy(shard_of(m, Q_PROJ), d / "abs.safetensors")
    edit_json(m / "model.safetensors.index.json", lambda v: v["weight_map"].__setitem__(Q_PROJ, str(d / "abs.safetensors")))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, ["abs.safetensors", "model.safetensors.index.json"])


@case("safetensors")
def index_is_not_json(d):
    m = copy_tiny(d)
    (m / "model.safetensors.index.json").write_text('{"weight_map": {')
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, ["model.safetensors.index.json"])


def _raw_header(d, raw: bytes, name="model-00001-of-00002.safetensors"):
    m = copy_tiny(d)
    (m / name).write_bytes(raw)
    return m, name


@case("safetensors")
def header_length_2p63(d):
    m, n = _raw_header(d, struct.pack("<Q", 2**63) + b"{}")
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [n, "header"])


@case("safetensors")
def header_longer_than_the_file(d):
    m, n = _raw_header(d, struct.pack("<Q", 4096) + b'{"a":1}')
    return Spec(["inspect-weights", str(m)], 2, [n, "header"])


@case("safetensors")
def header_not_json(d):
    m, n = _raw_header(d, struct.pack("<Q", 8) + b"{not js}")
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [n])


@case("safetensors")
def file_shorter_than_its_length_field(d):
    m, n = _raw_header(d, b"\x01\x02\x03")
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [n])


def _header_edit(d, edit, tensor="model.layers.1.mlp.router.weight"):
    m = copy_tiny(d)
    s = shard_of(m, tensor)
    st_write(s, st_tensors(s), lambda h: edit(h[tensor]))
    return m, s.name


@case("safetensors")
def data_offsets_past_the_end(d):
    m, n = _header_edit(d, lambda t: t.__setitem__("data_offsets", [0, 2**40]))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [n, "model.layers.1.mlp.router.weight"])


@case("safetensors")
def data_offsets_reversed(d):
    m, n = _header_edit(d, lambda t: t.__setitem__("data_offsets", [768, 0]))
    return Spec(["inspect-weights", str(m)], 2, [n, "model.layers.1.mlp.router.weight"])


@case("safetensors")
def shape_product_overflows(d):
    m, n = _header_edit(d, lambda t: t.__setitem__("shape", [2**40, 2**40, 2**40]))
    return Spec(["inspect-weights", str(m)], 2, [n, "model.layers.1.mlp.router.weight"])


@case("safetensors")
def unknown_dtype(d):
    m, n = _header_edit(d, lambda t: t.__setitem__("dtype", "X9"))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [n, "X9"])


@case("safetensors")
def shape_and_bytes_disagree(d):
    m, n = _header_edit(d, lambda t: t.__setitem__("shape", [4, 95]))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [n, "model.layers.1.mlp.router.weight"])


# ---- config.json / original/config.json ----


def _config(edit, cmd="convert", needles=None):
    def build(d: Path) -> Spec:
        m = copy_tiny(d)
        edit_json(m / "config.json", edit)
        args = {
            "convert": ["convert", str(m), "-o", str(d / "x.gguf")],
            "ppl": ppl(m, d),
            "inspect": ["inspect-weights", str(m)],
        }[cmd]
        # a field that disagrees with the weights is reported at the tensor, naming the shard
        files = ("config.json", "safetensors") if needles and needles[0] in ("hidden_size (97)", "model.embed_tokens.weight") else "config.json"
        return Spec(args, 2, [files, *needles])

    return build


def setk(k, v):
    return lambda c: c.__setitem__(k, v)


def _config_cases():
    table = [
        ("num_hidden_layers_20000", setk("num_hidden_layers", 20000), ["num_hidden_layers"], ["convert", "inspect"]),
        ("num_hidden_layers_2p31m1", setk("num_hidden_layers", 2**31 - 1), ["num_hidden_layers"], ["convert", "ppl"]),
        ("num_hidden_layers_0", setk("num_hidden_layers", 0), ["num_hidden_layers"], ["convert"]),
        ("num_hidden_layers_negative", setk("num_hidden_layers", -4), ["num_hidden_layers"], ["convert"]),
        ("num_hidden_layers_float", setk("num_hidden_layers", 4.5), ["num_hidden_layers"], ["convert"]),
        ("num_hidden_layers_string", setk("num_hidden_layers", "4"), ["num_hidden_layers"], ["convert"]),
        ("sliding_window_2p62", setk("sliding_window", 2**62), ["sliding_window"], ["ppl", "convert"]),
        ("sliding_window_u64max", setk("sliding_window", U64_MAX), ["sliding_window"], ["ppl"]),
        ("sliding_window_2p64", setk("sliding_window", 2**64), ["sliding_window"], ["convert"]),
        ("rms_norm_eps_negative", setk("rms_norm_eps", -1e-5), ["rms_norm_eps"], ["ppl", "convert"]),
        ("rms_norm_eps_0", setk("rms_norm_eps", 0), ["rms_norm_eps"], ["ppl"]),
        ("rope_theta_0", setk("rope_theta", 0), ["rope_theta"], ["ppl", "convert"]),
        ("rope_theta_negative", setk("rope_theta", -150000), ["rope_theta"], ["ppl"]),
        ("rope_factor_0", lambda c: c["rope_scaling"].__setitem__("factor", 0), ["factor"], ["ppl", "convert"]),
        ("rope_factor_negative", lambda c: c["rope_scaling"].__setitem__("factor", -32.0), ["factor"], ["ppl"]),
        ("rope_scaling_not_an_object", setk("rope_scaling", [1, 2]), ["rope_scaling"], ["convert"]),
        ("hidden_size_97", setk("hidden_size", 97), ["hidden_size (97)"], ["convert", "ppl"]),
        ("hidden_size_2p40", setk("hidden_size", 2**40), ["hidden_size"], ["convert"]),
        ("num_attention_heads_0", setk("num_attention_heads", 0), ["num_attention_heads"], ["convert", "ppl"]),
        ("num_key_value_heads_3", setk("num_key_value_heads", 3), ["num_key_value_heads"], ["convert"]),
        ("head_dim_0", setk("head_dim", 0), ["head_dim"], ["ppl"]),
        ("num_local_experts_0", setk("num_local_experts", 0), ["num_local_experts"], ["convert"]),
        ("num_local_experts_2p31", setk("num_local_experts", 2**31), ["num_local_experts"], ["inspect"]),
        ("experts_per_tok_5_of_4", setk("num_experts_per_tok", 5), ["num_experts_per_tok"], ["ppl"]),
        ("vocab_size_100000", setk("vocab_size", 100000), ["model.embed_tokens.weight", "[100000, 96]"], ["convert", "ppl"]),
        ("max_position_embeddings_0", setk("max_position_embeddings", 0), ["max_position_embeddings"], ["ppl"]),
        ("layer_types_too_short", lambda c: c["layer_types"].pop(), ["layer_types"], ["convert"]),
        ("layer_types_unknown", lambda c: c["layer_types"].__setitem__(0, "banana_attention"), ["layer_types"], ["convert"]),
        ("swiglu_limit_negative", setk("swiglu_limit", -7.0), ["swiglu_limit"], ["ppl"]),
        ("missing_hidden_size", lambda c: c.pop("hidden_size"), ["hidden_size", "missing"], ["convert"]),
        (
            "unknown_architecture",
            lambda c: (c.__setitem__("model_type", "llama"), c.__setitem__("architectures", ["LlamaForCausalLM"])),
            ["unknown architecture", "llama"],
            ["convert"],
        ),
    ]
    for name, edit, needles, cmds in table:
        cases("config", name, {c: _config(edit, c, needles) for c in cmds})


_config_cases()


def _config_raw(raw: str, cmd="convert"):
    def build(d: Path) -> Spec:
        m = copy_tiny(d)
        (m / "config.json").write_text(raw)
        args = ["convert", str(m), "-o", str(d / "x.gguf")] if cmd == "convert" else ppl(m, d)
        return Spec(args, 2, ["config.json"])

    return build


cases("config", "config_not_json", {"convert": _config_raw('{"hidden_size": 96,')})
cases("config", "config_empty", {"ppl": _config_raw("", "ppl")})
cases("config", "config_is_a_list", {"convert": _config_raw("[" + TINY.joinpath("config.json").read_text() + "]")})
cases(
    "config",
    "rms_norm_eps_1e400",
    {"ppl": _config_raw(TINY.joinpath("config.json").read_text().replace('"rms_norm_eps": 1e-05', '"rms_norm_eps": 1e400'), "ppl")},
)
cases("config", "config_nan_literal", {"convert": _config_raw(TINY.joinpath("config.json").read_text().replace('"rms_norm_eps": 1e-05', '"rms_norm_eps": NaN'))})


@case("config")
def original_config_missing_a_field(d):
    o = copy_original(d)
    edit_json(o / "config.json", lambda v: v.pop("rope_ntk_beta"))
    return Spec(["convert", str(o), "-o", str(d / "x.gguf")], 2, ["config.json", "rope_ntk_beta"])


@case("config")
def original_config_layers_2p31m1(d):
    o = copy_original(d)
    edit_json(o / "config.json", setk("num_hidden_layers", 2**31 - 1))
    return Spec(["convert", str(o), "-o", str(d / "x.gguf")], 2, ["config.json", "num_hidden_layers"])


@case("config")
def original_config_sliding_window_2p62(d):
    o = copy_original(d)
    edit_json(o / "config.json", setk("sliding_window", 2**62))
    return Spec(ppl(o, d), 2, ["config.json", "sliding_window"])


# ---- tokenizer.json and token files ----


def _tok(edit, cmd="convert", needles=()):
    def build(d: Path) -> Spec:
        m = copy_tiny(d)
        edit_json(m / "tokenizer.json", edit)
        args = {
            "convert": ["convert", str(m), "-o", str(d / "x.gguf")],
            "tokenize": ["tokenize", str(m), "-p", "hello world"],
            "ppl": ppl(m, d),
        }[cmd]
        return Spec(args, 2, ["tokenizer.json", *needles])

    return build


def _added(i, **kw):
    def f(t):
        t["added_tokens"][i].update(kw)

    return f


cases(
    "tokenizer",
    "added_token_duplicate_id",
    {"convert": _tok(_added(3, id=490), "convert", ["490"]), "tokenize": _tok(_added(3, id=490), "tokenize", ["490"])},
)
cases(
    "tokenizer",
    "added_token_id_100000",
    {"convert": _tok(_added(20, id=100000), "convert", ["100000"]), "ppl": _tok(_added(20, id=100000), "ppl", ["100000"])},
)
cases("tokenizer", "added_token_id_negative", {"convert": _tok(_added(2, id=-1), "convert", ["-1"])})
cases("tokenizer", "added_token_id_u64max", {"convert": _tok(_added(2, id=U64_MAX), "convert", [str(U64_MAX)])})


def _vocab_dup(t):
    v = t["model"]["vocab"]
    k = list(v)
    v[k[10]] = v[k[11]]


cases("tokenizer", "vocab_duplicate_id", {"convert": _tok(_vocab_dup, "convert", ["vocab"]), "tokenize": _tok(_vocab_dup, "tokenize", ["vocab"])})
cases(
    "tokenizer",
    "vocab_id_out_of_range",
    {"convert": _tok(lambda t: t["model"]["vocab"].__setitem__("!", 10**6), "convert", ["1000000"])},
)
cases("tokenizer", "merges_not_a_list", {"tokenize": _tok(lambda t: t["model"].__setitem__("merges", 7), "tokenize", [("merges", "MergeType")])})
cases("tokenizer", "model_missing", {"convert": _tok(lambda t: t.pop("model"), "convert", ["model"])})


@case("tokenizer")
def tokenizer_not_json(d):
    m = copy_tiny(d)
    (m / "tokenizer.json").write_text('{"added_tokens": [')
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, ["tokenizer.json"])


@case("tokenizer")
def tokenizer_empty(d):
    m = copy_tiny(d)
    (m / "tokenizer.json").write_text("")
    return Spec(["tokenize", str(m), "-p", "hi"], 2, ["tokenizer.json"])


def _tokens_file(content: str, extra=(), needles=()):
    def build(d: Path) -> Spec:
        g = d / "model.gguf"
        shutil.copy(TINY_GGUF, g)
        t = d / "ids.json"
        t.write_text(content)
        return Spec(["perplexity", str(g), "--tokens", str(t), "--ctx", "8", *extra], 2, ["ids.json", *needles])

    return build


cases(
    "tokenizer",
    "tokens_file",
    {
        "id_out_of_vocab": _tokens_file(json.dumps(list(range(1, 16)) + [544]), needles=["544"]),
        "id_negative": _tokens_file("[1, 2, -3, 4, 5, 6, 7, 8, 9]", needles=["-3"]),
        "id_u64max": _tokens_file(f"[1, 2, {U64_MAX}, 4, 5, 6, 7, 8, 9]", needles=[str(U64_MAX)]),
        "id_float": _tokens_file("[1, 2, 3.5, 4, 5, 6, 7, 8, 9]", needles=["3.5"]),
        "not_json": _tokens_file("[1, 2, 3"),
        "object_without_tokens": _tokens_file('{"ids": [1, 2, 3]}'),
        "empty_list": _tokens_file("[]"),
    },
)


@case("tokenizer")
def sequence_index_out_of_range(d):
    t = d / "ids.json"
    t.write_text(json.dumps({"sequences": [list(range(1, 12)), list(range(2, 13))]}))
    m = copy_tiny(d)
    g = d / "model.gguf"
    shutil.copy(TINY_GGUF, g)
    return Spec(
        ["verify-parity", str(m), str(g), "--tokens", str(t), "--sequence", str(U64_MAX)], 2, ["ids.json", "--sequence"]
    )


# ---- verdicts: a broken model never passes (exit 1) ----


def _nan_gguf(d, name="model.gguf", tensor_name="blk.1.attn_q.weight"):
    def t(n, ty, a):
        if n != tensor_name:
            return a
        if a.dtype == np.float32:
            return np.full_like(a, np.nan)
        return np.frombuffer(BF16_NAN * (a.nbytes // 2), np.uint8).reshape(a.shape).copy()

    return gguf_rewrite(d / name, tensor=t)


@case("verdict")
def perplexity_nan_weights(d):
    g = _nan_gguf(d)
    return Spec(ppl(g, d, "--dump-logits", str(d / "logits.npy")), 1, [("NaN", "non-finite"), ("layer 1", "blk.1")])


@case("verdict")
def perplexity_inf_norm(d):
    def t(n, ty, a):
        return np.full_like(a, np.inf) if n == "blk.2.attn_norm.weight" else a

    g = gguf_rewrite(d / "model.gguf", tensor=t)
    return Spec(ppl(g, d), 1, [("NaN", "non-finite", "Inf"), ("layer 2", "blk.2")])


@case("verdict")
def verify_parity_nan_candidate(d):
    m = copy_tiny(d)
    g = _nan_gguf(d)
    return Spec(["verify-parity", str(m), str(g), "--text", str(text(d))], 1, [("NaN", "non-finite")])


def _swap_experts(n, ty, a):
    # experts 0 and 1 exchanged in one expert tensor: every byte a valid MXFP4 block, the weights different
    if n == "blk.0.ffn_gate_exps.weight":
        a = a.copy()
        a[[0, 1]] = a[[1, 0]]
    return a


@case("verdict")
def tensors_only_different_experts(d):
    m = copy_tiny(d)
    g = gguf_rewrite(d / "model.gguf", tensor=_swap_experts)
    return Spec(["verify-parity", str(m), str(g), "--tensors-only"], 1, [("ffn_gate_exps", "gate_up_proj")])


@case("verdict")
def tensors_only_changed_lossless_tensor(d):
    m = copy_tiny(d)

    def t(n, ty, a):
        if n == "blk.3.attn_k.bias":
            return a * np.float32(1.01)
        return a

    g = gguf_rewrite(d / "model.gguf", tensor=t)
    return Spec(["verify-parity", str(m), str(g), "--tensors-only"], 1, [("attn_k.bias", "k_proj.bias")])


@case("verdict")
def full_parity_different_experts(d):
    m = copy_tiny(d)
    g = gguf_rewrite(d / "model.gguf", tensor=_swap_experts)
    return Spec(["verify-parity", str(m), str(g), "--text", str(text(d))], 1, [("ffn_gate_exps", "gate_up_proj")])


def _npy(p: Path, a: np.ndarray):
    np.save(p, a)
    return p


@case("verdict")
def reference_logits_nan(d):
    g = d / "model.gguf"
    shutil.copy(TINY_GGUF, g)
    t = d / "ids.json"
    t.write_text(json.dumps(list(range(1, 9))))
    r = _npy(d / "ref.npy", np.full((8, 544), np.nan, np.float32))
    # a reference that holds NaN cannot vouch for anything: the verdict fails
    return Spec(["verify-parity", "--reference-logits", str(r), "--tokens", str(t), str(g)], 1, ["NaN", "Reference"])


@case("verdict")
def reference_logits_wrong_shape(d):
    g = d / "model.gguf"
    shutil.copy(TINY_GGUF, g)
    t = d / "ids.json"
    t.write_text(json.dumps(list(range(1, 9))))
    r = _npy(d / "ref.npy", np.zeros((8, 543), np.float32))
    return Spec(["verify-parity", "--reference-logits", str(r), "--tokens", str(t), str(g)], 2, ["ref.npy", "543"])


@case("verdict")
def reference_logits_truncated(d):
    g = d / "model.gguf"
    shutil.copy(TINY_GGUF, g)
    t = d / "ids.json"
    t.write_text(json.dumps(list(range(1, 9))))
    r = _npy(d / "ref.npy", np.zeros((8, 544), np.float32))
    r.write_bytes(r.read_bytes()[:1000])
    return Spec(["verify-parity", "--reference-logits", str(r), "--tokens", str(t), str(g)], 2, ["ref.npy"])


@case("verdict")
def quantize_nan_weights(d):
    g = _nan_gguf(d)
    return Spec(["quantize", str(g), "-o", str(d / "q.gguf")], 2, ["model.gguf", "blk.1.attn_q.weight", "NaN"])


@case("verdict")
def convert_q8_0_nan_weights(d):
    m = copy_tiny(d)
    st_rewrite(shard_of(m, Q_PROJ), lambda n, dt, s, b: (n, dt, s, BF16_NAN * (len(b) // 2) if n == Q_PROJ else b))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf"), "--outtype", "q8_0"], 2, [Q_PROJ, "NaN"])


@case("verdict")
def quantize_safetensors_nan_weights(d):
    # tiny-bf16's experts are BF16: quantizing them to MXFP4 is where NaN matters
    m2 = d / "bf16"
    shutil.copytree(GOLDEN / "tiny-bf16", m2)
    tb = "model.layers.2.mlp.experts.gate_up_proj"
    st_rewrite(m2 / "model.safetensors", lambda n, dt, s, b: (n, dt, s, BF16_NAN * (len(b) // 2) if n == tb else b))
    return Spec(["quantize", str(m2), "-o", str(d / "q.gguf")], 2, [(tb, "blk.2.ffn_gate_exps.weight"), "NaN"])


# ---- outputs: never over an input, never over an existing file, never through a link ----


def _gguf_and_text(d):
    g = d / "model.gguf"
    shutil.copy(TINY_GGUF, g)
    return g, text(d)


@with_and_without_force("output")
def convert_over_the_source_config(d):
    m = copy_tiny(d)
    return Spec(["convert", str(m), "-o", str(m / "config.json"), "--force"], 2, ["config.json", "is one of this command's inputs"])


@with_and_without_force("output")
def convert_over_a_source_shard(d):
    m = copy_tiny(d)
    s = m / "model-00000-of-00002.safetensors"
    return Spec(["convert", str(m), "-o", str(s), "--force"], 2, [s.name, "is one of this command's inputs"])


@with_and_without_force("output")
def convert_over_a_link_to_the_source(d):
    m = copy_tiny(d)
    (d / "link.json").symlink_to(m / "config.json")
    return Spec(["convert", str(m), "-o", str(d / "link.json"), "--force"], 2, ["link.json", "is one of this command's inputs"])


@with_and_without_force("output")
def quantize_over_its_input(d):
    g, _ = _gguf_and_text(d)
    return Spec(["quantize", str(g), "-o", str(g), "--force"], 2, ["model.gguf", "is one of this command's inputs"])


@with_and_without_force("output")
def quantize_over_a_hard_link_to_its_input(d):
    g, _ = _gguf_and_text(d)
    os.link(g, d / "hard.gguf")
    return Spec(["quantize", str(g), "-o", str(d / "hard.gguf"), "--force"], 2, ["hard.gguf", "is one of this command's inputs"])


@with_and_without_force("output")
def quantize_folder_over_its_input_folder(d):
    m = copy_tiny(d)
    return Spec(["quantize", str(m), "-o", str(m), "--format", "safetensors", "--force"], 2, ["model", "is one of this command's inputs"])


@with_and_without_force("output")
def dump_logits_over_the_text(d):
    g, t = _gguf_and_text(d)
    return Spec(["perplexity", str(g), "--text", str(t), "--ctx", "8", "--dump-logits", str(t), "--force"], 2, ["text.txt", "is one of this command's inputs"])


@with_and_without_force("output")
def dump_logits_side_file_over_the_tokens(d):
    g, _ = _gguf_and_text(d)
    tok = d / "ids.tokens.json"
    tok.write_text(json.dumps(list(range(1, 17))))
    return Spec(
        ["perplexity", str(g), "--tokens", str(tok), "--ctx", "8", "--dump-logits", str(d / "ids.npy"), "--force"],
        2,
        ["ids.tokens.json", "is one of this command's inputs"],
    )


@with_and_without_force("output")
def imatrix_out_over_the_calibration_text(d):
    m = copy_tiny(d)
    t = text(d)
    return Spec(
        ["quantize", str(m), "-o", str(d / "q.gguf"), "--calibration", str(t), "--imatrix-out", str(t), "--force"],
        2,
        ["text.txt", "is one of this command's inputs"],
    )


def _existing(cmd):
    def build(d: Path) -> Spec:
        g, t = _gguf_and_text(d)
        m = copy_tiny(d)
        old = d / "old.out"
        old.write_text("an existing file")
        args = {
            "convert": ["convert", str(m), "-o", str(old)],
            "quantize": ["quantize", str(g), "-o", str(old)],
            "dump_logits": ["perplexity", str(g), "--text", str(t), "--ctx", "8", "--dump-logits", str(old)],
            "imatrix_out": ["quantize", str(m), "-o", str(d / "q.gguf"), "--calibration", str(t), "--imatrix-out", str(old)],
        }[cmd]
        return Spec(args, 2, ["old.out", "already exists"], outputs=[d / "q.gguf"])

    return build


cases("output", "existing_output_without_force", {c: _existing(c) for c in ["convert", "quantize", "dump_logits", "imatrix_out"]})


@case("output")
def existing_dump_logits_side_file(d):
    g, t = _gguf_and_text(d)
    (d / "l.tokens.json").write_text("[1]")
    return Spec(["perplexity", str(g), "--text", str(t), "--ctx", "8", "--dump-logits", str(d / "l.npy")], 2, ["l.tokens.json", "already exists"], [d / "l.npy"])


@case("output")
def existing_split_shard(d):
    m = copy_tiny(d)
    (d / "x-00002-of-00003.gguf").write_text("mine")
    return Spec(
        ["convert", str(m), "-o", str(d / "x.gguf"), "--split-max-tensors", "30"],
        2,
        ["x-00002-of-00003.gguf", "already exists"],
    )


def _partial_link(cmd, force):
    def build(d: Path) -> Spec:
        g, t = _gguf_and_text(d)
        m = copy_tiny(d)
        victim = d / "victim.bin"
        victim.write_text("precious")
        out = {"convert": "o.gguf", "quantize": "q.gguf", "dump_logits": "l.npy"}[cmd]
        (d / f"{out}.partial").symlink_to(victim)
        args = {
            "convert": ["convert", str(m), "-o", str(d / out)],
            "quantize": ["quantize", str(g), "-o", str(d / out)],
            "dump_logits": ["perplexity", str(g), "--text", str(t), "--ctx", "8", "--dump-logits", str(d / out)],
        }[cmd]
        return Spec(args + (["--force"] if force else []), 2, [f"{out}.partial", "symbolic link"])

    return build


cases(
    "output",
    "partial_is_a_symlink",
    {f"{c}{'_force' if f else ''}": _partial_link(c, f) for c in ["convert", "quantize", "dump_logits"] for f in [False, True]},
)


@case("output")
def partial_folder_not_made_by_ossify(d):
    m = copy_tiny(d)
    p = d / "mine.partial"
    p.mkdir()
    (p / "notes.txt").write_text("keep me")
    return Spec(["quantize", str(m), "-o", str(d / "mine"), "--format", "safetensors"], 2, ["mine.partial", "not made by ossify"])


@case("output")
def partial_is_a_folder_for_a_file_output(d):
    m = copy_tiny(d)
    (d / "o.gguf.partial").mkdir()
    (d / "o.gguf.partial" / "x").write_text("mine")
    return Spec(["convert", str(m), "-o", str(d / "o.gguf"), "--force"], 2, ["o.gguf.partial"])


@case("output")
def folder_output_not_empty_even_with_force(d):
    m = copy_tiny(d)
    ft = d / "ft"
    ft.mkdir()
    (ft / "mine.txt").write_text("keep")
    return Spec(["quantize", str(m), "-o", f"{ft}/", "--format", "safetensors", "--force"], 2, ["ft", "not empty"])


@case("output")
def gguf_output_is_a_folder(d):
    m = copy_tiny(d)
    (d / "out").mkdir()
    return Spec(["convert", str(m), "-o", str(d / "out"), "--force"], 2, ["out", "folder"])


@case("output")
def gguf_output_with_trailing_slash(d):
    m = copy_tiny(d)
    return Spec(["convert", str(m), "-o", f"{d}/new/"], 2, ["new/", "names a folder"])


@case("output")
def output_parent_is_a_file(d):
    m = copy_tiny(d)
    (d / "afile").write_text("x")
    return Spec(["convert", str(m), "-o", str(d / "afile" / "x.gguf")], 2, ["afile"])


@case("output")
def output_folder_missing(d):
    m = copy_tiny(d)
    return Spec(["convert", str(m), "-o", str(d / "nope" / "sub" / "x.gguf")], 2, ["nope/sub", "does not exist"])


# ---- special files: named as such, never read forever ----


def fifo(p: Path) -> Path:
    os.mkfifo(p)
    return p


@case("special")
def convert_source_is_a_fifo(d):
    return Spec(["convert", str(fifo(d / "model")), "-o", str(d / "x.gguf")], 2, ["model", "FIFO"])


@case("special")
def inspect_a_fifo(d):
    return Spec(["inspect-weights", str(fifo(d / "m.gguf"))], 2, ["m.gguf", "FIFO"])


@case("special")
def perplexity_model_is_a_fifo(d):
    return Spec(ppl(fifo(d / "m.gguf"), d), 2, ["m.gguf", "FIFO"])


@case("special")
def text_is_a_fifo(d):
    g, _ = _gguf_and_text(d)
    return Spec(["perplexity", str(g), "--text", str(fifo(d / "t.txt")), "--ctx", "8"], 2, ["t.txt", "FIFO"])


@case("special")
def tokens_file_is_a_fifo(d):
    g, _ = _gguf_and_text(d)
    return Spec(["perplexity", str(g), "--tokens", str(fifo(d / "t.json")), "--ctx", "8"], 2, ["t.json", "FIFO"])


@case("special")
def tokenizer_json_is_a_fifo(d):
    m = copy_tiny(d)
    (m / "tokenizer.json").unlink()
    fifo(m / "tokenizer.json")
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, ["tokenizer.json", "FIFO"])


@case("special")
def config_json_is_a_fifo(d):
    m = copy_tiny(d)
    (m / "config.json").unlink()
    fifo(m / "config.json")
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, ["config.json", "FIFO"])


@case("special")
def shard_is_a_fifo(d):
    m = copy_tiny(d)
    s = shard_of(m, Q_PROJ)
    s.unlink()
    fifo(s)
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, [s.name, "FIFO"])


@case("special")
def text_is_a_socket(d):
    g, _ = _gguf_and_text(d)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / "t.sock"))
    s.close()
    return Spec(["perplexity", str(g), "--text", str(d / "t.sock"), "--ctx", "8"], 2, ["t.sock", "socket"])


@case("special")
def text_is_a_folder(d):
    g, _ = _gguf_and_text(d)
    (d / "txt").mkdir()
    return Spec(["perplexity", str(g), "--text", str(d / "txt"), "--ctx", "8"], 2, ["txt", "folder"])


@case("special")
def text_is_dev_zero(d):
    g, _ = _gguf_and_text(d)
    (d / "zero").symlink_to("/dev/zero")
    return Spec(["perplexity", str(g), "--text", str(d / "zero"), "--ctx", "8"], 2, ["zero", ("character device", "special")])


@case("special")
def output_is_a_fifo(d):
    m = copy_tiny(d)
    return Spec(["convert", str(m), "-o", str(fifo(d / "x.gguf")), "--force"], 2, ["x.gguf", "not a regular file"])


# ---- control bytes in names and strings: escaped in the one error line ----

ESC = "\x1b[31m\x1b]0;owned\x07"


@case("names")
def control_bytes_in_a_tensor_name(d):
    m = copy_tiny(d)
    s = shard_of(m, Q_PROJ)
    bad = f"model.layers.1.{ESC}evil.weight"
    ts = st_tensors(s)
    ts.append((bad, "BF16", [2], b"\0" * 4))
    st_write(s, ts)
    edit_json(m / "model.safetensors.index.json", lambda v: v["weight_map"].__setitem__(bad, s.name))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, ["evil.weight", "\\u{1b}"])


@case("names")
def control_bytes_in_model_type(d):
    m = copy_tiny(d)
    edit_json(m / "config.json", lambda c: (c.__setitem__("model_type", f"gpt{ESC}"), c.__setitem__("architectures", [f"Gpt{ESC}"])))
    return Spec(["convert", str(m), "-o", str(d / "x.gguf")], 2, ["config.json", "\\u{1b}"])


@case("names")
def control_bytes_in_gguf_architecture(d):
    g = gguf_rewrite(d / "model.gguf", arch=f"gpt-oss{ESC}")
    return Spec(ppl(g, d), 2, ["model.gguf", "general.architecture", "\\u{1b}"])


@case("names")
def control_bytes_in_a_file_name(d):
    m = copy_tiny(d)
    return Spec(["convert", str(m / f"no{ESC}such"), "-o", str(d / "x.gguf")], 2, ["no\\u{1b}", "such"])


@case("names")
def newline_in_a_file_name(d):
    return Spec(["inspect-weights", str(d / "two\nlines.gguf")], 2, ["two", "lines.gguf"])


@case("names")
def control_bytes_in_a_gguf_tensor_name(d):
    def patch(b, L):
        t = L["tensors"]["output.weight"]["at"]
        b[t + 8 : t + 8 + 6] = b"out\x1b[2"
        # and data past the end of the file, so the reader names the tensor
        put(b, L["tensors"]["output.weight"]["offset_at"], "<Q", 2**40)

    g = gguf_patch(d, patch)
    return Spec(["inspect-weights", str(g)], 2, ["model.gguf", "\\u{1b}"])


@case("names")
def invalid_utf8_in_a_gguf_key(d):
    def patch(b, L):
        k = L["kv"]["general.name"]["at"]
        b[k + 8] = 0xFF

    g = gguf_patch(d, patch)
    return Spec(["inspect-weights", str(g)], 2, ["model.gguf", ("UTF-8", "utf-8")])


# ---- command-line numbers ----


def _cli(args_of, needles, code=2):
    def build(d: Path) -> Spec:
        g, t = _gguf_and_text(d)
        return Spec(args_of(d, g, t), code, needles)

    return build


cases(
    "cli",
    "ctx",
    {
        "u64max": _cli(lambda d, g, t: ["perplexity", str(g), "--text", str(t), "--ctx", str(U64_MAX)], ["--ctx", str(U64_MAX)]),
        "2p64": _cli(lambda d, g, t: ["perplexity", str(g), "--text", str(t), "--ctx", str(2**64)], ["--ctx", str(2**64)]),
        "0": _cli(lambda d, g, t: ["perplexity", str(g), "--text", str(t), "--ctx", "0"], ["--ctx", "0"]),
        "negative": _cli(lambda d, g, t: ["perplexity", str(g), "--text", str(t), "--ctx=-8"], ["--ctx", "-8"]),
        "generate_u64max": _cli(lambda d, g, t: ["generate", str(g), "-p", "hi", "--ctx", str(U64_MAX)], ["--ctx", str(U64_MAX)]),
    },
)
cases(
    "cli",
    "threads",
    {
        "convert_100000": _cli(lambda d, g, t: ["convert", str(copy_tiny(d)), "-o", str(d / "x.gguf"), "--threads", "100000"], ["--threads", "100000"]),
        "quantize_100000": _cli(lambda d, g, t: ["quantize", str(g), "-o", str(d / "q.gguf"), "--threads", "100000"], ["--threads", "100000"]),
        "inspect_u64max": _cli(lambda d, g, t: ["inspect-weights", str(g), "--stats", "--threads", str(U64_MAX)], ["--threads", str(U64_MAX)]),
        "generate_100000": _cli(lambda d, g, t: ["generate", str(g), "-p", "hi", "-n", "2", "--threads", "100000"], ["--threads", "100000"]),
    },
)
cases(
    "cli",
    "thresholds",
    {
        "max_kld_nan": _cli(lambda d, g, t: ["verify-parity", str(copy_tiny(d)), str(g), "--text", str(t), "--max-kld", "nan"], ["--max-kld", "nan"]),
        "max_kld_negative": _cli(lambda d, g, t: ["verify-parity", str(copy_tiny(d)), str(g), "--text", str(t), "--max-kld=-1"], ["--max-kld", "-1"]),
        "min_top1_1p5": _cli(lambda d, g, t: ["verify-parity", str(copy_tiny(d)), str(g), "--text", str(t), "--min-top1", "1.5"], ["--min-top1", "1.5"]),
        "min_top1_nan": _cli(lambda d, g, t: ["verify-parity", str(copy_tiny(d)), str(g), "--text", str(t), "--min-top1", "NaN"], ["--min-top1", "NaN"]),
        "max_ppl_ratio_inf": _cli(lambda d, g, t: ["verify-parity", str(copy_tiny(d)), str(g), "--text", str(t), "--max-ppl-ratio", "inf"], ["--max-ppl-ratio", "inf"]),
    },
)
cases(
    "cli",
    "sampling",
    {
        "temperature_nan": _cli(lambda d, g, t: ["generate", str(g), "-p", "hi", "-n", "2", "--temperature", "nan"], ["--temperature", "NaN"]),
        "temperature_negative": _cli(lambda d, g, t: ["generate", str(g), "-p", "hi", "-n", "2", "--temperature=-1"], ["--temperature", "-1"]),
        "top_p_2": _cli(lambda d, g, t: ["generate", str(g), "-p", "hi", "-n", "2", "--top-p", "2"], ["--top-p", "2"]),
        "top_p_nan": _cli(lambda d, g, t: ["generate", str(g), "-p", "hi", "-n", "2", "--top-p", "nan"], ["--top-p", "NaN"]),
        "seed_2p64": _cli(lambda d, g, t: ["generate", str(g), "-p", "hi", "-n", "2", "--seed", str(2**64)], ["--seed", str(2**64)]),
    },
)
cases(
    "cli",
    "split",
    {
        "max_size_0": _cli(lambda d, g, t: ["convert", str(copy_tiny(d)), "-o", str(d / "x.gguf"), "--split-max-size", "0"], ["--split-max-size", "0"]),
        "max_size_overflow": _cli(
            lambda d, g, t: ["convert", str(copy_tiny(d)), "-o", str(d / "x.gguf"), "--split-max-size", "99999999999999999999G"],
            ["--split-max-size", "99999999999999999999G"],
        ),
        "max_tensors_0": _cli(lambda d, g, t: ["quantize", str(g), "-o", str(d / "q.gguf"), "--split-max-tensors", "0"], ["--split-max-tensors", "0"]),
    },
)


# ---- the script ----


def build_all(out: Path) -> list:
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for c in CASES:
        d = out / c.id
        d.mkdir()
        s = c.build(d)
        manifest.append(
            {
                "name": c.id,
                "class": c.kind,
                "args": [str(a) for a in s.args],
                "code": s.code,
                "needles": [list(n) if isinstance(n, tuple) else n for n in s.needles],
            }
        )
    (out / "cases.json").write_text(json.dumps(manifest, indent=1))
    return manifest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT")
    m = build_all(Path(sys.argv[1]))
    print(f"{len(m)} cases in {sys.argv[1]}")
