"""`ossify inspect-weights` on a GGUF: its key/value metadata equals what gguf-py's GGUFReader reads (gguf 0.19.0).

For golden GGUFs (ossify's conversion of golden/tiny, llama.cpp's converter output, a split set) and a GGUF that
gguf-py's own writer makes with awkward values (control characters, a right-to-left override, NaN, nested arrays),
--json must hold every key in file order with gguf-py's type names and every value whole (arrays: length and each
item), and the human output must list each key as gguf-dump does (`  n: TYPE | count | key = value`), with no raw
control character.

Needs OSSIFY_BIN (scripts/test-all sets it) and gguf.
"""
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGUFValueType  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "golden"
OSSIFY = os.environ.get("OSSIFY_BIN", str(ROOT / "target" / "release" / "ossify"))


def ossify(*args) -> str:
    if not os.path.exists(OSSIFY):
        pytest.skip(f"no ossify binary at {OSSIFY} (set OSSIFY_BIN)")
    r = subprocess.run([OSSIFY, *map(str, args)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode("utf-8")


def flatten(v):
    """gguf-py flattens nested arrays into their innermost items."""
    if isinstance(v, list):
        return [x for item in v for x in flatten(item)]
    return [v]


def same_item(ours, theirs, vtype: GGUFValueType) -> bool:
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        if isinstance(ours, str):  # JSON cannot hold NaN / inf: ossify writes "nan", "inf", "-inf"
            return ours in ("nan", "inf", "-inf") and str(float(theirs)) == ours
        width = np.float32 if vtype == GGUFValueType.FLOAT32 else np.float64
        return width(ours) == width(theirs) and not math.isnan(theirs)
    if vtype == GGUFValueType.BOOL:
        return ours is bool(theirs)
    return ours == theirs and type(ours) is type(theirs)


def check_metadata(path: Path, report: dict):
    reader = gguf.GGUFReader(path)
    header = {k: f.contents() for k, f in reader.fields.items() if k.startswith("GGUF.")}
    assert report["gguf"] == {
        "version": header["GGUF.version"],
        "tensor_count": header["GGUF.tensor_count"],
        "kv_count": header["GGUF.kv_count"],
    }
    fields = [(k, f) for k, f in reader.fields.items() if not k.startswith("GGUF.")]
    assert [m["key"] for m in report["metadata"]] == [k for k, _ in fields]
    for m, (key, f) in zip(report["metadata"], fields):
        assert m["type"] == f.types[0].name, key
        if f.types[0] == GGUFValueType.ARRAY:
            if len(f.types) > 1:  # gguf-py records no element type for an empty array
                assert m["element_type"] == f.types[1].name, key
            leaves = flatten(m["value"])
            theirs = f.contents()
            assert len(leaves) == len(f.data) == len(theirs), key
            if f.types[1:2] != [GGUFValueType.ARRAY]:
                assert m["length"] == len(theirs), key
            bad = [i for i, (a, b) in enumerate(zip(leaves, theirs)) if not same_item(a, b, f.types[-1])]
            assert not bad, f"{key}: items {bad[:5]} differ: {[leaves[i] for i in bad[:5]]} vs {[theirs[i] for i in bad[:5]]}"
        else:
            assert "length" not in m and "element_type" not in m, key
            assert same_item(m["value"], f.contents(), f.types[0]), f"{key}: {m['value']!r} vs {f.contents()!r}"
    return reader, fields


def check_dump(text: str, fields):
    """Each key's line starts as gguf-dump's does (numbered without its three GGUF.* header fields)."""
    assert not any(ord(c) < 0x20 and c != "\n" for c in text), "raw control character in the output"
    assert "\u202e" not in text and "\x7f" not in text
    lines = text.splitlines()
    for n, (key, f) in enumerate(fields, 1):
        if f.types[0] == GGUFValueType.ARRAY:
            nest = len(f.types) - 1
            pretty = "[" * nest + f.types[-1].name + "]" * nest
        else:
            pretty = f.types[0].name
        prefix = f"  {n:5}: {pretty:10} | {len(f.data):8} | {key} = "
        assert any(line.startswith(prefix) for line in lines), f"no line starting {prefix!r}"
    return lines


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    d = tmp_path_factory.mktemp("inspect")
    out = d / "tiny.gguf"
    ossify("convert", GOLDEN / "tiny", "-o", out)
    return out


@pytest.mark.parametrize("which", ["ossify", "llamacpp"])
def test_metadata_equals_gguf_py(converted, which):
    path = converted if which == "ossify" else GOLDEN / "llamacpp" / "tiny.bf16.gguf"
    report = json.loads(ossify("inspect-weights", path, "--json"))
    assert report["shape_order"] == "outermost-first"
    reader, fields = check_metadata(path, report)
    # The tokenizer arrays are there whole.
    tokens = next(m for m in report["metadata"] if m["key"] == "tokenizer.ggml.tokens")
    assert tokens["length"] == len(reader.fields["tokenizer.ggml.tokens"].data) > 6
    # Shapes: outermost first, the reverse of gguf-py's `shape` (ggml's ne).
    assert [t["shape"] for t in report["tensors"]] == [list(reversed(t.shape.tolist())) for t in reader.tensors]

    text = ossify("inspect-weights", path)
    lines = check_dump(text, fields)
    line = next(line for line in lines if "| tokenizer.ggml.tokens = " in line)
    first = reader.fields["tokenizer.ggml.tokens"].contents(slice(6))
    # The first six tokens, quoted (printable text needs no escape but \\ and \"), then "...".
    assert all(t.isprintable() for t in first), first
    shown = line.split(" = ", 1)[1]
    assert shown == "[" + ", ".join(json.dumps(t, ensure_ascii=False) for t in first) + ", ...]"
    assert "gguf-dump prints GGUF's ne, the reverse" in text


def test_split_set_lists_shards_and_first_file_metadata(tmp_path):
    ossify("convert", GOLDEN / "tiny", "-o", tmp_path / "m.gguf", "--split-max-tensors", "30")
    files = sorted(tmp_path.glob("m-*-of-*.gguf"))
    assert len(files) == 3
    report = json.loads(ossify("inspect-weights", files[1], "--json"))
    assert [s["file"] for s in report["shards"]] == [f.name for f in files]
    for s, f in zip(report["shards"], files):
        assert s["tensors"] == len(gguf.GGUFReader(f).tensors) and s["bytes"] == f.stat().st_size
    _, fields = check_metadata(files[0], report)
    assert {"split.no", "split.count", "split.tensors.count"} <= {k for k, _ in fields}
    text = ossify("inspect-weights", files[2])
    check_dump(text, fields)
    assert "split   3 files:" in text and all(f.name in text for f in files)


def test_awkward_values_from_gguf_py_writer(tmp_path):
    path = tmp_path / "awkward.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_string("test.escape", "line\nbreak\ttab\x1b[31mred\u202eevil\x7f\\ 'q' \"dq\"")
    w.add_string("test.long", "é" * 100)
    w.add_string("test.empty", "")
    w.add_float32("test.nan", float("nan"))
    w.add_float32("test.tiny", 1e-5)
    w.add_float64("test.f64", 0.1)
    w.add_uint64("test.u64", 2**64 - 1)
    w.add_int64("test.i64", -(2**63))
    w.add_int8("test.i8", -128)
    w.add_uint16("test.u16", 65535)
    w.add_bool("test.bool", True)
    w.add_array("test.strings", [f"s{i}\n" for i in range(10)])
    w.add_array("test.floats", [0.5, -1.25, 3e38, float("inf")])
    w.add_array("test.empty_array", [])
    w.add_array("test.nested", [[1, 2], [3, 4, 5]])
    w.add_tensor("t", np.zeros((2, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    report = json.loads(ossify("inspect-weights", path, "--json"))
    _, fields = check_metadata(path, report)
    by_key = {m["key"]: m for m in report["metadata"]}
    assert by_key["test.nan"]["value"] == "nan"
    assert by_key["test.nested"]["value"] == [[1, 2], [3, 4, 5]]
    assert by_key["test.strings"]["length"] == 10
    assert report["tensors"][0]["shape"] == [2, 32]
    text = ossify("inspect-weights", path)
    check_dump(text, [(k, f) for k, f in fields if k != "test.empty_array"])
    assert '"line\\nbreak\\ttab\\u{1b}[31mred\\u{202e}evil\\u{7f}\\\\ \'q\' \\"dq\\""' in text
    assert "... (100 chars)" in text
    assert '["s0\\n", "s1\\n", "s2\\n", "s3\\n", "s4\\n", "s5\\n", ...]' in text
