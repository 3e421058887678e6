#!/usr/bin/env python3
"""Writes the GGUF fixtures that pin ossify's GGUF reader and writer to gguf-py, an independent implementation.

Run from anywhere (needs numpy and `gguf`, PyPI 0.19.0 was used):
    /opt/venv/bin/python formats/tests/data/make_fixtures.py

For each fixture NAME it writes, beside this script:
  NAME.gguf   made by gguf-py's GGUFWriter (the same class llama.cpp's converter uses)
  NAME.json   what the script asked gguf-py to write: key/values in file order with their GGUF types, and each
              tensor's name, ggml type, row-major shape and bytes (hex)
and once:
  gguf_py_constants.json   gguf-py's Keys, GGUFValueType, LlamaFileType, GGML_QUANT_SIZES and format constants,
                           plus the Keys of llama.cpp's bundled, newer gguf-py ($LLAMA_CPP_DIR/gguf-py), so Rust
                           tests can check formats/src/gguf/constants.rs against them.

formats/tests/gguf_interop.rs reads NAME.gguf with our reader and checks every value against NAME.json, and
rewrites NAME.json with our writer and checks the bytes equal NAME.gguf. The output is deterministic (seeded data,
no timestamps), so rerunning the script must not change the checked-in files.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

HERE = Path(__file__).resolve().parent  # output folder; `--out DIR` changes it
ARCH = "gpt-oss"
LLAMA_CPP = Path(os.environ.get("LLAMA_CPP_DIR", "/opt/llama/llama_cpp_python-0.3.36/vendor/llama.cpp"))


def type_desc(value, vtype, sub_type=None):
    """'UINT32', 'ARRAY:STRING', 'ARRAY:ARRAY:INT32': the GGUF type gguf-py will write for this value."""
    if vtype != V.ARRAY:
        return vtype.name
    if sub_type is not None:
        ltype = sub_type
    elif isinstance(value, (bytes, bytearray)):
        ltype = V.UINT8
    else:
        ltype = V.get_type(value[0])
    if ltype == V.ARRAY:
        # gguf-py writes each inner array with its own element type; describe the first (ours are uniform)
        return "ARRAY:" + type_desc(value[0], V.ARRAY)
    return "ARRAY:" + ltype.name


def sidecar(writer):
    kvs = []
    for key, v in writer.kv_data[0].items():
        kvs.append({"key": key, "type": type_desc(v.value, v.type, v.sub_type), "value": v.value})
    tensors = []
    for name, ti in writer.tensors[0].items():
        tensors.append({
            "name": name,
            "ggml_type": ti.dtype.name,
            "shape": [int(d) for d in ti.shape],
            "hex": ti.tensor.tobytes().hex(),
        })
    return {
        "made_by": f"gguf-py {gguf_version()} GGUFWriter",
        "alignment": writer.data_alignment,
        "kv": kvs,
        "tensors": tensors,
    }


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:
        return "unknown"


def write(name, writer):
    path = HERE / f"{name}.gguf"
    meta = sidecar(writer)  # before writing: the writer drops tensor data as it streams
    writer.write_header_to_file(path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (HERE / f"{name}.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path.name} ({path.stat().st_size} bytes) and {name}.json")


def raw(rng, quant, shape_elems):
    """Random bytes holding a tensor of `quant` with the given row-major element shape."""
    block, size = gguf.GGML_QUANT_SIZES[quant]
    *outer, row = shape_elems
    assert row % block == 0
    byte_shape = (*outer, row // block * size)
    return rng.integers(0, 256, size=byte_shape, dtype=np.uint8)


def mixed():
    """Every value type, arrays of each, a nested array, gpt-oss-style keys through gguf-py's own add_* methods,
    and tensors of every ggml type ossify handles, with sizes that need padding."""
    rng = np.random.default_rng(20261125)
    w = gguf.GGUFWriter(None, ARCH)  # adds general.architecture first
    # scalars of every type
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.1)
    w.add_bool("test.bool", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "héllo ✓ \"quoted\"\nnewline")
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62) - 3)
    w.add_float64("test.f64", 3.141592653589793)
    # typed arrays of every element type
    w.add_key_value("test.arr_u8", [0, 1, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.arr_i8", [-128, 0, 127], V.ARRAY, sub_type=V.INT8)
    w.add_key_value("test.arr_u16", [0, 65535], V.ARRAY, sub_type=V.UINT16)
    w.add_key_value("test.arr_i16", [-32768, 32767], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("test.arr_u32", [1, 2, 4294967295], V.ARRAY, sub_type=V.UINT32)
    w.add_key_value("test.arr_i32", [-1, 0, 1], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.arr_f32", [0.5, -1.25, 1e-5], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.arr_bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_key_value("test.arr_string", ["a", "", "ü✓", "two words"], V.ARRAY, sub_type=V.STRING)
    w.add_key_value("test.arr_u64", [0, 2**64 - 1], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("test.arr_i64", [-(2**63), 2**63 - 1], V.ARRAY, sub_type=V.INT64)
    w.add_key_value("test.arr_f64", [0.1, -2.5], V.ARRAY, sub_type=V.FLOAT64)
    w.add_array("test.nested", [[1, 2], [3], [4, 5, 6]])  # array of arrays of i32
    # the keys llama.cpp's GptOssModel writes, through the same methods
    w.add_block_count(2)
    w.add_context_length(4096)
    w.add_embedding_length(64)
    w.add_feed_forward_length(96)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(32.0)
    w.add_rope_scaling_orig_ctx_len(4096)
    w.add_rope_freq_base(150000.0)
    w.add_layer_norm_rms_eps(1e-05)
    w.add_expert_count(4)
    w.add_expert_used_count(2)
    w.add_key_length(16)
    w.add_value_length(16)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_MXFP4_MOE)
    w.add_sliding_window(128)
    w.add_expert_feed_forward_length(96)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-4o")
    w.add_token_list(["!", "Ġthe", "<|endoftext|>"])
    w.add_token_types([gguf.TokenType.NORMAL, gguf.TokenType.NORMAL, gguf.TokenType.CONTROL])
    w.add_token_merges(["Ġ t", "Ġt he"])
    w.add_bos_token_id(2)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")

    # tensors: plain types from numpy, block types as raw bytes (gguf-py turns the byte shape into elements)
    w.add_tensor("f32_odd", (np.arange(15, dtype=np.float32).reshape(3, 5) - 7) / 4)
    w.add_tensor("f16", np.array([[1.0, -2.0, 0.5], [65504.0, 0.0, -0.0]], dtype=np.float16))
    w.add_tensor("bf16", raw(rng, Q.BF16, (2, 5)), raw_dtype=Q.BF16)
    w.add_tensor("q8_0", raw(rng, Q.Q8_0, (2, 64)), raw_dtype=Q.Q8_0)
    w.add_tensor("blk.0.ffn_gate_exps.weight", raw(rng, Q.MXFP4, (3, 2, 64)), raw_dtype=Q.MXFP4)
    w.add_tensor("q4_0", raw(rng, Q.Q4_0, (1, 32)), raw_dtype=Q.Q4_0)
    w.add_tensor("q4_1", raw(rng, Q.Q4_1, (1, 32)), raw_dtype=Q.Q4_1)
    w.add_tensor("q5_0", raw(rng, Q.Q5_0, (1, 32)), raw_dtype=Q.Q5_0)
    w.add_tensor("q5_1", raw(rng, Q.Q5_1, (1, 32)), raw_dtype=Q.Q5_1)
    w.add_tensor("i8", np.array([-128, 0, 1, 127], dtype=np.int8))
    w.add_tensor("i16", np.array([[-300, 300], [7, -7]], dtype=np.int16))
    w.add_tensor("i32", np.array([-(2**31), 0, 2**31 - 1], dtype=np.int32))
    w.add_tensor("i64", np.array([-(2**63), 2**63 - 1], dtype=np.int64))
    w.add_tensor("f64", np.array([[0.1], [-1e300]], dtype=np.float64))
    w.add_tensor("f32_4d", np.arange(12, dtype=np.float32).reshape(2, 1, 3, 2))
    w.add_tensor("blk.0.attn_sinks.weight", np.array([0.25, -0.5, 1.0, 2.0], dtype=np.float32))
    write("gguf_py_mixed", w)


def aligned64():
    """general.alignment = 64: the header and every tensor padded to 64 instead of 32."""
    rng = np.random.default_rng(64)
    w = gguf.GGUFWriter(None, ARCH)
    w.add_custom_alignment(64)
    w.add_string("general.name", "alignment test")
    w.add_tensor("a", np.arange(3, dtype=np.float32))
    w.add_tensor("b", raw(rng, Q.MXFP4, (1, 32)), raw_dtype=Q.MXFP4)
    w.add_tensor("c", np.arange(40, dtype=np.float16).reshape(5, 8))
    write("gguf_py_align64", w)


def no_tensors():
    """A file with metadata only."""
    w = gguf.GGUFWriter(None, "llama")
    w.add_uint32("llama.block_count", 1)
    write("gguf_py_no_tensors", w)


def constants():
    def keys_of(cls, prefix=""):
        out = {}
        for attr, val in vars(cls).items():
            if attr.startswith("_"):
                continue
            if isinstance(val, str):
                out[prefix + attr] = val
            elif isinstance(val, type):
                out.update(keys_of(val, prefix + attr + "."))
        return out

    data = {
        "made_by": f"gguf-py {gguf_version()}",
        "GGUF_MAGIC": gguf.GGUF_MAGIC,
        "GGUF_VERSION": gguf.GGUF_VERSION,
        "GGUF_DEFAULT_ALIGNMENT": gguf.GGUF_DEFAULT_ALIGNMENT,
        "GGML_QUANT_VERSION": gguf.GGML_QUANT_VERSION,
        "GGML_MAX_DIMS": getattr(gguf.constants, "GGML_MAX_DIMS", 4),
        "Keys": keys_of(gguf.Keys),
        "GGUFValueType": {t.name: t.value for t in V},
        "LlamaFileType": {t.name: t.value for t in gguf.LlamaFileType},
        "GGMLQuantizationType": {t.name: t.value for t in Q},
        "GGML_QUANT_SIZES": {Q(k).name: list(v) for k, v in gguf.GGML_QUANT_SIZES.items()},
        "TokenType": {t.name: t.value for t in gguf.TokenType},
        "MODEL_ARCH_NAMES.GPT_OSS": gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPT_OSS],
    }
    # llama.cpp's converter runs with its own, newer gguf-py; some keys it writes (the tokenizer normalizer
    # flags) exist only there.
    vendored = LLAMA_CPP / "gguf-py" / "gguf" / "constants.py"
    if vendored.exists():
        import importlib.util
        spec = importlib.util.spec_from_file_location("llama_cpp_gguf_constants", vendored)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        data["Keys_llama_cpp"] = keys_of(mod.Keys)
        data["llama_cpp_gguf_py"] = "gguf-py/gguf/constants.py of llama.cpp 0c1e570 (llama-cpp-python 0.3.36)"
    else:
        print(f"warning: {vendored} not found; Keys_llama_cpp left out", file=sys.stderr)
    (HERE / "gguf_py_constants.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print("wrote gguf_py_constants.json")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--out":
        HERE = Path(sys.argv[2])
    print(f"gguf-py {gguf_version()} from {gguf.__file__}", file=sys.stderr)
    mixed()
    aligned64()
    no_tensors()
    constants()
