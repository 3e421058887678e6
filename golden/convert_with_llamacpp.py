#!/usr/bin/env python3
"""Run llama.cpp's convert_hf_to_gguf.py on a golden checkpoint, telling it the pre-tokenizer is "gpt-4o".

llama.cpp's converter names the pre-tokenizer by hashing how the vocabulary splits a fixed test string
(TextModel.get_vocab_base_pre in conversion/base.py). A freshly trained vocabulary hashes to nothing it knows, so
the converter refuses it ("BPE pre-tokenizer was not recognized"). The golden tokenizer uses o200k's split regex,
which is what real gpt-oss hashes to ("gpt-4o"); this wrapper says so and changes nothing else.

Usage (same arguments as convert_hf_to_gguf.py):
    python golden/convert_with_llamacpp.py golden/tiny --outtype f32 --outfile golden/llamacpp/tiny-f32.gguf

The llama.cpp source tree is $LLAMA_CPP_SRC (default: llama-cpp-python 0.3.36's vendored copy); its bundled
gguf-py is put first on sys.path, as the converter itself does.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

LLAMA_CPP_SRC = Path(os.environ.get("LLAMA_CPP_SRC", "/opt/llama/llama_cpp_python-0.3.36/vendor/llama.cpp"))


def main() -> None:
    if not (LLAMA_CPP_SRC / "convert_hf_to_gguf.py").is_file():
        raise SystemExit(f"llama.cpp's converter not found under {LLAMA_CPP_SRC} (set LLAMA_CPP_SRC)")
    sys.path.insert(0, str(LLAMA_CPP_SRC / "gguf-py"))
    sys.path.insert(0, str(LLAMA_CPP_SRC))

    import conversion.base as base  # llama.cpp's conversion package

    def get_vocab_base_pre(self, tokenizer) -> str:  # noqa: ARG001 - same signature as the original
        return "gpt-4o"

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre

    script = str(LLAMA_CPP_SRC / "convert_hf_to_gguf.py")
    sys.argv = [script] + sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
