"""Split GGUF against llama.cpp's own tools: llama-gguf-split (built from the llama.cpp sources llama-cpp-python
0.3.36 vendors, by scripts/build-llama-gguf-split) and llama.cpp's loader (llama-cpp-python).

- ossify's `--split-max-tensors` / `--split-max-size` shards, from `convert` and `quantize`, are byte for byte
  the files `llama-gguf-split --split` makes from ossify's single file;
- ossify reads llama-gguf-split's shards as the whole model (inspect-weights, verify-parity: identical tensors,
  identical logits);
- llama.cpp loads ossify's shards and computes exactly the logits it computes on the single file;
- `llama-gguf-split --merge` of ossify's shards gives back the single file's metadata and tensors.

Needs OSSIFY_BIN (scripts/test-all sets it), OSSIFY_GGUF_SPLIT or a venv where scripts/build-llama-gguf-split can
build it, gguf-py, numpy and llama-cpp-python.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

from conftest import GOLDEN, OSSIFY, ROOT, llama_logits  # noqa: E402

SPLIT_KEYS = {"split.no", "split.count", "split.tensors.count"}


@pytest.fixture(scope="session")
def gguf_split():
    path = os.environ.get("OSSIFY_GGUF_SPLIT")
    if not path:
        r = subprocess.run([ROOT / "scripts" / "build-llama-gguf-split", sys.prefix], capture_output=True, text=True)
        assert r.returncode == 0, f"building llama-gguf-split failed:\n{r.stderr}"
        path = r.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK), f"no llama-gguf-split at {path}"
    return path


def ossify(*args):
    if not os.path.exists(OSSIFY):
        pytest.fail(f"no ossify binary at {OSSIFY} (set OSSIFY_BIN)")
    r = subprocess.run([OSSIFY, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, f"ossify {' '.join(map(str, args))}: {r.stderr}"
    return r.stdout


def llama_gguf_split(tool, *args):
    r = subprocess.run([tool, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, f"llama-gguf-split {' '.join(map(str, args))}: {r.stdout}\n{r.stderr}"


def shards(folder: Path, prefix: str):
    return sorted(folder.glob(f"{prefix}-*-of-*.gguf"))


def assert_same_files(ours, theirs):
    assert [p.name for p in ours] == [p.name for p in theirs]
    assert len(ours) > 1
    for a, b in zip(ours, theirs):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs from llama-gguf-split's"


# (how the single file is made, the split flags). gguf-split's sizes are whole M or G, so the size case uses a
# model over 1 MB: tiny-bf16 in F32 (1.9 MB).
CASES = [
    (["convert", GOLDEN / "tiny"], ["--split-max-tensors", "7"]),
    (["convert", GOLDEN / "tiny", "--outtype", "q8_0"], ["--split-max-tensors", "20"]),
    (["convert", GOLDEN / "tiny-bf16", "--outtype", "f32"], ["--split-max-size", "1M"]),
    (["quantize", GOLDEN / "tiny-bf16", "--type", "q8_0", "-q"], ["--split-max-tensors", "30"]),
    (["quantize", GOLDEN / "tiny-bf16", "--type", "f32", "-q"], ["--split-max-size", "1M"]),
]


@pytest.mark.parametrize("make,flags", CASES, ids=lambda c: " ".join(map(str, c)).replace(str(GOLDEN) + "/", ""))
def test_our_shards_are_llama_gguf_splits(tmp_path, gguf_split, make, flags):
    single = tmp_path / "single.gguf"
    ossify(*make, "-o", single)
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    ours_dir.mkdir()
    theirs_dir.mkdir()
    ossify(*make, "-o", ours_dir / "m.gguf", *flags)
    llama_gguf_split(gguf_split, "--split", *flags, single, theirs_dir / "m")
    assert not (ours_dir / "m.gguf").exists()
    assert_same_files(shards(ours_dir, "m"), shards(theirs_dir, "m"))


def test_llama_cpp_computes_our_shards_as_the_single_file(tmp_path):
    single = tmp_path / "single.gguf"
    ossify("convert", GOLDEN / "tiny", "-o", single)
    ossify("convert", GOLDEN / "tiny", "-o", tmp_path / "m.gguf", "--split-max-tensors", "20")
    ours = shards(tmp_path, "m")
    assert len(ours) == 4
    ids = json.loads((GOLDEN / "reference" / "tokens.json").read_text())["sequences"][0]
    want = llama_logits(single, ids)
    got = llama_logits(ours[0], ids)
    assert np.isfinite(want).all()
    np.testing.assert_array_equal(got, want)
    # And the single file's logits are llama.cpp's on its own converter's file, computed in this run (the stored
    # .npy came from another CPU, whose kernels round differently in the last bits), so the shards' are too.
    np.testing.assert_array_equal(got, llama_logits(GOLDEN / "llamacpp" / "tiny.bf16.gguf", ids))


def test_ossify_reads_llama_gguf_split_shards(tmp_path, gguf_split):
    single = tmp_path / "single.gguf"
    ossify("convert", GOLDEN / "tiny", "-o", single)
    llama_gguf_split(gguf_split, "--split", "--split-max-tensors", "20", single, tmp_path / "theirs")
    files = shards(tmp_path, "theirs")
    assert len(files) == 4
    report = json.loads(ossify("inspect-weights", files[2], "--json"))
    assert [s["file"] for s in report["shards"]] == [f.name for f in files]
    reader = gguf.GGUFReader(single)
    assert [t["name"] for t in report["tensors"]] == [t.name for t in reader.tensors]
    # llama-gguf-split puts the first 20 tensors in the first file, and so on.
    assert [t["file"] for t in report["tensors"]] == [files[i // 20].name for i in range(len(reader.tensors))]
    for given in (files[0], files[3]):
        v = json.loads(ossify("verify-parity", single, given, "--json"))
        assert v["pass"] and v["tensors"]["n_exact"] == len(reader.tensors) and v["tensors"]["n_failed"] == 0
        assert v["logits"]["n_tokens"] > 0 and v["logits"]["max_abs_dlogit"] == 0.0


def fields(path: Path):
    r = gguf.GGUFReader(path)
    kv = {k: (f.types, [bytes(p) for p in f.parts]) for k, f in r.fields.items() if not k.startswith("GGUF.")}
    tensors = [(t.name, t.tensor_type, list(t.shape), bytes(t.data)) for t in r.tensors]
    return kv, tensors


def test_merge_of_our_shards_gives_back_the_single_file(tmp_path, gguf_split):
    single = tmp_path / "single.gguf"
    ossify("convert", GOLDEN / "tiny", "-o", single)
    ossify("convert", GOLDEN / "tiny", "-o", tmp_path / "m.gguf", "--split-max-tensors", "20")
    merged = tmp_path / "merged.gguf"
    llama_gguf_split(gguf_split, "--merge", shards(tmp_path, "m")[0], merged)
    kv_single, t_single = fields(single)
    kv_merged, t_merged = fields(merged)
    # The merged file keeps the split keys (split.count 0 marks it merged); everything else is the single file's.
    assert set(kv_merged) - set(kv_single) == SPLIT_KEYS
    assert {k: v for k, v in kv_merged.items() if k not in SPLIT_KEYS} == kv_single
    assert list(kv_merged)[: len(kv_single)] == list(kv_single)
    assert t_merged == t_single
    # ossify reads a merged file (split.count 0) as one whole model.
    v = json.loads(ossify("verify-parity", single, merged, "--json"))
    assert v["pass"] and v["tensors"]["n_exact"] == len(t_single) and v["logits"]["max_abs_dlogit"] == 0.0
