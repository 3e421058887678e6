#!/usr/bin/env bash
# Benchmark: ossify's forward pass against llama.cpp (llama-cpp-python) on the same GGUFs of the gpt-oss-20b-width
# synthetic checkpoint (bench/make_synthetic.py), same token ids, same thread count, in the same rounds.
#
# Two GGUFs, the two kinds users have: MXFP4 experts with BF16 attention (llama.cpp's converter default; made by
# llama.cpp's converter when it can run here, else by `ossify convert --outtype bf16`, which writes the same bytes),
# and the mxfp4_moe preset (Q8_0 attention and unembedding; `ossify quantize --type mxfp4_moe`, the same bytes as
# llama-quantize). For each: prefill of 128 and of 512 tokens (fresh contexts), then decode after the 512-token
# prompt, for ossify exact (f32 reference), ossify q8 and llama.cpp. Prints a table of ossify / llama.cpp ratios
# (best wall tok/s over the rounds), the CPU ms per token (user + sys, all threads; steadier on a shared machine),
# peak RSS, and decode as a fraction of the memory-bandwidth roofline (read bandwidth measured here, bytes a decode
# step must read counted from the GGUF).
#
#   bench/forward.sh [--layers N] [--prefill 128,512] [--decode N] [--rounds N] [--threads N] [--workdir DIR]
#                    [--python PY]
#
# --layers 24 is the full 20b depth (a 13.8 GB checkpoint plus its GGUFs; minutes per round).
set -euo pipefail
cd "$(dirname "$0")/.."
layers=4; prefill=128,512; decode=16; rounds=2; threads=$(nproc); work=${TMPDIR:-/tmp}/ossify-bench; py=python3
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2; shift 2 ;;
    --prefill) prefill=$2; shift 2 ;;
    --decode) decode=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
src="$work/gpt-oss-20b-width-${layers}L"
bf16="$src.bf16.gguf"
q8="$src.mxfp4_moe.gguf"
cargo build --release --locked -q --example forward_bench --bin ossify
[ -f "$src/config.json" ] || "$py" bench/make_synthetic.py "$src" --layers "$layers" --tokenizer-from golden/tiny
if [ ! -f "$bf16" ]; then
  if "$py" -c 'import torch' 2>/dev/null; then
    "$py" golden/convert_with_llamacpp.py "$src" --outtype bf16 --outfile "$bf16"
  else
    target/release/ossify convert "$src" -o "$bf16" --outtype bf16
  fi
fi
[ -f "$q8" ] || target/release/ossify quantize "$bf16" -o "$q8" --type mxfp4_moe
log="$work/forward-bench.log"
: > "$log"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
target/release/examples/forward_bench --bandwidth --threads "$threads" | tee -a "$log"
for round in $(seq "$rounds"); do
  for gguf in "$bf16" "$q8"; do
    name=$(basename "$gguf")
    cat "$gguf" > /dev/null   # warm the page cache
    for precision in exact q8; do
      target/release/examples/forward_bench "$gguf" --prefill "$prefill" --decode "$decode" --threads "$threads" \
        --precision "$precision" | sed "s/^RESULT /RESULT file=$name round=$round /" | tee -a "$log"
    done
    "$py" bench/forward_llamacpp.py "$gguf" --prefill "$prefill" --decode "$decode" --threads "$threads" 2>/dev/null \
      | sed "s/^RESULT /RESULT file=$name round=$round /" | tee -a "$log"
  done
done
echo "machine after: load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
"$py" bench/forward_report.py "$log" --gguf "$bf16" --gguf "$q8"
