#!/usr/bin/env bash
# Benchmark: ossify's reference forward pass against llama.cpp (llama-cpp-python) on the same GGUF of the
# gpt-oss-20b-width synthetic checkpoint (bench/make_synthetic.py; GGUF by llama.cpp's converter, experts MXFP4,
# the rest BF16), same token ids and thread count. Prints prefill / decode tokens/s, peak RSS and CPU ms per token
# of each (ossify in both precisions: exact f32 and q8 activations). On a shared machine compare CPU ms/token.
#
#   bench/forward.sh [--layers N] [--tokens N] [--decode N] [--threads N] [--workdir DIR] [--python PY]
set -euo pipefail
cd "$(dirname "$0")/.."
layers=4; tokens=128; decode=8; threads=$(nproc); work=${TMPDIR:-/tmp}/ossify-bench; py=python3
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    --decode) decode=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
src="$work/gpt-oss-20b-width-${layers}L"
gguf="$src.bf16.gguf"
[ -f "$src/config.json" ] || "$py" bench/make_synthetic.py "$src" --layers "$layers" --tokenizer-from golden/tiny
[ -f "$gguf" ] || "$py" golden/convert_with_llamacpp.py "$src" --outtype bf16 --outfile "$gguf"
cargo build --release --locked -q --example forward_bench
cat "$gguf" > /dev/null   # warm the page cache
for _ in 1 2 3; do
  for precision in exact q8; do
    target/release/examples/forward_bench "$gguf" --tokens "$tokens" --decode "$decode" --threads "$threads" \
      --precision "$precision"
  done
  "$py" bench/forward_llamacpp.py "$gguf" --tokens "$tokens" --decode "$decode" --threads "$threads"
done
