#!/usr/bin/env python3
"""gguf-py reads what ossify's GGUF writer writes — the direction of the interop check a Rust test cannot make
without Python. CI runs it explicitly:

    /opt/venv/bin/python formats/tests/check_gguf_py.py [--release]    # from anywhere in the repository

(formats/tests/python/test_gguf_py.py runs the same check under pytest, with --release, for scripts/test-all.)

It runs the Rust test `writes_files_for_gguf_py_check` (formats/tests/gguf_interop.rs) with OSSIFY_GGUF_PY_OUT
pointing at a temporary folder, which makes our writer produce:
  ours_extra.gguf + ours_extra.json   content gguf-py's writer cannot make (empty and nested arrays) and a tensor
                                      of every ggml type we write, with a JSON description of what was meant
  ours_<fixture>.gguf                 our rewrite of each gguf-py fixture in tests/data
Then gguf-py's GGUFReader (an independent implementation) reads each file and every key, type, value, tensor
name, type, shape and byte is compared with its description; the rewrites must also equal gguf-py's own files
byte for byte. `--dir DIR` checks files already written there instead of running cargo.

Exit status 0 when everything agrees, 1 on any mismatch (each printed), 2 when gguf/numpy are missing.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import numpy as np
    import gguf
    from gguf import GGUFReader, GGUFValueType as V
except ImportError as e:  # loud, distinct exit code: CI must install gguf (pip install gguf numpy)
    print(f"check_gguf_py: cannot import gguf/numpy ({e}); pip install gguf numpy", file=sys.stderr)
    sys.exit(2)

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
FIXTURES = ["gguf_py_mixed", "gguf_py_align64", "gguf_py_no_tensors"]

errors = []


def fail(msg):
    errors.append(msg)
    print("MISMATCH:", msg)


def flatten(v):
    if isinstance(v, list):
        out = []
        for x in v:
            out.extend(flatten(x))
        return out
    return [v]


def same_value(elem_type, got, want):
    if elem_type == "FLOAT32":
        return np.float32(got) == np.float32(want)
    if elem_type == "FLOAT64":
        return float(got) == float(want)
    if elem_type == "BOOL":
        return bool(got) == bool(want)
    if elem_type == "STRING":
        return got == want
    return int(got) == int(want)


def check_file(path, sidecar):
    before = len(errors)
    r = GGUFReader(path)
    fields = list(r.fields.values())
    # GGUFReader puts three synthetic header fields first.
    header = [f for f in fields if f.name.startswith("GGUF.")]
    kvs = [f for f in fields if not f.name.startswith("GGUF.")]
    if len(header) != 3:
        fail(f"{path.name}: expected 3 header fields, got {[f.name for f in header]}")
    if int(r.fields["GGUF.version"].parts[0][0]) != 3:
        fail(f"{path.name}: version {r.fields['GGUF.version'].parts[0][0]}")
    want_keys = [kv["key"] for kv in sidecar["kv"]]
    got_keys = [f.name for f in kvs]
    if got_keys != want_keys:
        fail(f"{path.name}: keys {got_keys} != {want_keys}")
        return
    for f, kv in zip(kvs, sidecar["kv"]):
        want_types = kv["type"].split(":")
        got_types = [t.name for t in f.types]
        values = flatten(kv["value"])
        # gguf-py records an array's element type only from its first element, so an empty array shows as ARRAY
        if values or want_types == ["STRING"]:
            if got_types != want_types:
                fail(f"{path.name}: key {f.name}: types {got_types} != {want_types}")
                continue
        elif got_types[0] != "ARRAY":
            fail(f"{path.name}: key {f.name}: type {got_types} for an empty array")
        if want_types[0] == "ARRAY":
            got = f.contents()
            got = flatten(got if isinstance(got, list) else [got])
            if len(got) != len(values) or not all(
                same_value(want_types[-1], g, w) for g, w in zip(got, values)
            ):
                fail(f"{path.name}: key {f.name}: {got!r} != {values!r}")
        else:
            got = f.contents()
            if not same_value(want_types[0], got, kv["value"]):
                fail(f"{path.name}: key {f.name}: {got!r} != {kv['value']!r}")
    if r.alignment != sidecar["alignment"]:
        fail(f"{path.name}: alignment {r.alignment} != {sidecar['alignment']}")
    if len(r.tensors) != len(sidecar["tensors"]):
        fail(f"{path.name}: {len(r.tensors)} tensors != {len(sidecar['tensors'])}")
        return
    for t, want in zip(r.tensors, sidecar["tensors"]):
        shape = [int(d) for d in reversed(t.shape.tolist())]  # GGUFReader gives ne, innermost first
        if t.name != want["name"] or t.tensor_type.name != want["ggml_type"] or shape != want["shape"]:
            fail(f"{path.name}: tensor {t.name} {t.tensor_type.name} {shape} != "
                 f"{want['name']} {want['ggml_type']} {want['shape']}")
            continue
        data = np.ascontiguousarray(t.data).tobytes()
        if data != bytes.fromhex(want["hex"]) or int(t.n_bytes) != len(data):
            fail(f"{path.name}: tensor {t.name}: bytes differ")
    if len(errors) == before:
        print(f"ok: gguf-py reads {path.name}: {len(kvs)} keys, {len(r.tensors)} tensors as intended")


def write_with_cargo(out, release=False):
    """Runs the Rust test that writes our files into `out`."""
    env = dict(os.environ, OSSIFY_GGUF_PY_OUT=str(out))
    cmd = ["cargo", "test", "-q", *(["--release"] if release else []), "-p", "ossify-formats",
           "--test", "gguf_interop", "writes_files_for_gguf_py_check", "--", "--exact"]
    print("running:", " ".join(cmd))
    subprocess.run(cmd, env=env, check=True, cwd=HERE.parent.parent)


def check_dir(out):
    """Checks every file `writes_files_for_gguf_py_check` wrote into `out`; returns the mismatches."""
    del errors[:]
    check_file(out / "ours_extra.gguf", json.loads((out / "ours_extra.json").read_text()))
    for name in FIXTURES:
        ours = out / f"ours_{name}.gguf"
        sidecar = json.loads((DATA / f"{name}.json").read_text())
        check_file(ours, sidecar)
        if ours.read_bytes() != (DATA / f"{name}.gguf").read_bytes():
            fail(f"{ours.name}: differs from gguf-py's {name}.gguf")
        else:
            print(f"ok: {ours.name} equals gguf-py's {name}.gguf byte for byte")
    return list(errors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, help="check files already written here instead of running cargo")
    ap.add_argument("--release", action="store_true", help="run cargo test --release (reuses a release build)")
    args = ap.parse_args()
    print(f"gguf-py from {gguf.__file__}")

    with tempfile.TemporaryDirectory() as tmp:
        out = args.dir or Path(tmp)
        if args.dir is None:
            write_with_cargo(out, args.release)
        found = check_dir(out)

    if found:
        print(f"{len(found)} mismatches", file=sys.stderr)
        sys.exit(1)
    print("all GGUF files written by ossify read correctly with gguf-py")


if __name__ == "__main__":
    main()
