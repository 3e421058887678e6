#!/usr/bin/env python3
"""Reference outputs of llama.cpp's quantizer, for ossify's bit-exactness tests (tests/quantize_llamacpp.rs).

1. tiny-bf16-noisy.bf16.gguf: golden/tiny-bf16-noisy (BF16 fine-tune, experts not MXFP4-representable)
   converted by llama.cpp's own convert_hf_to_gguf.py --outtype bf16 (via golden/convert_with_llamacpp.py).
2. tiny-bf16-noisy.<type>.gguf: that file quantized by llama.cpp's llama_model_quantize (the function behind
   llama-quantize), through llama-cpp-python's bindings, one per type, nthread=1.
   For q4_0/q4_1/q5_0/q5_1 output.weight is forced to Q8_0 (llama.cpp's default there is Q6_K, which ossify
   does not write).

Run: /opt/venv/bin/python golden/llamacpp/quantize/generate.py
Versions: llama-cpp-python 0.3.36 (vendored llama.cpp 0c1e570), gguf-py from that tree.
"""
import ctypes
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
LLAMA = os.environ.get("LLAMA_CPP_DIR", "/opt/llama/llama_cpp_python-0.3.36/vendor/llama.cpp")
SRC = os.path.join(ROOT, "golden", "tiny-bf16-noisy")
BASE = os.path.join(HERE, "tiny-bf16-noisy.bf16.gguf")

# preset -> (llama_ftype, output tensor type or None); GGML type ids: Q8_0 = 8
TYPES = {
    "mxfp4_moe": (38, None),
    "q8_0": (7, None),
    "q4_0": (2, 8),
    "q4_1": (3, 8),
    "q5_0": (8, 8),
    "q5_1": (9, 8),
}


def main():
    env = dict(os.environ, PYTHONPATH=os.path.join(LLAMA, "gguf-py"), NO_LOCAL_GGUF="")
    # golden/convert_with_llamacpp.py runs llama.cpp's converter, naming the tiny vocabulary's pre-tokenizer.
    wrapper = os.environ.get("CONVERT_WRAPPER", os.path.join(ROOT, "golden", "convert_with_llamacpp.py"))
    subprocess.check_call([sys.executable, wrapper, SRC, "--outtype", "bf16", "--outfile", BASE], env=env)
    import llama_cpp

    llama_cpp.llama_backend_init()
    for name, (ftype, out_type) in TYPES.items():
        p = llama_cpp.llama_model_quantize_default_params()
        p.nthread = 1
        p.ftype = ftype
        if out_type is not None:
            p.output_tensor_type = out_type
        dst = os.path.join(HERE, f"tiny-bf16-noisy.{name}.gguf")
        rc = llama_cpp.llama_model_quantize(BASE.encode(), dst.encode(), ctypes.byref(p))
        if rc != 0:
            raise SystemExit(f"llama_model_quantize {name} failed: {rc}")
        print("wrote", dst)


if __name__ == "__main__":
    main()
