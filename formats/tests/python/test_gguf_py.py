"""GGUF interop with gguf-py under pytest (scripts/test-all runs this folder).

- gguf-py's GGUFReader reads what ossify's writer writes (formats/tests/check_gguf_py.py, run here with
  `cargo test --release` so it reuses test-all's release build).
- The checked-in fixtures in formats/tests/data are exactly what make_fixtures.py makes with this gguf-py, so
  the Rust tests' oracle is reproducible.
"""

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import check_gguf_py  # noqa: E402


def test_gguf_py_reads_what_ossify_writes(tmp_path):
    check_gguf_py.write_with_cargo(tmp_path, release=True)
    assert check_gguf_py.check_dir(tmp_path) == []


def test_fixtures_are_what_make_fixtures_makes(tmp_path):
    subprocess.run([sys.executable, str(TESTS / "data" / "make_fixtures.py"), "--out", str(tmp_path)], check=True)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made, "make_fixtures.py wrote nothing"
    for name in made:
        if name == "gguf_py_constants.json" and "Keys_llama_cpp" not in (tmp_path / name).read_text():
            continue  # llama.cpp's source is not here to dump its gguf-py keys from
        assert (tmp_path / name).read_bytes() == (TESTS / "data" / name).read_bytes(), name
