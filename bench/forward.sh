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
#   bench/forward.sh [--layers N[,N...]] [--src [N=]DIR]... [--prefill 128,512] [--decode N] [--rounds N] [--threads N]
#                    [--workdir DIR] [--python PY]
#
# --layers 24 is the full 20b depth (a 13.8 GB checkpoint plus two GGUFs of about 13 GB each; minutes per round);
# --layers 4,24 runs both depths one after the other, each with its own summary. --src 24=DIR uses an existing
# checkpoint for that depth (read only; e.g. one bench/scale.sh or make_synthetic.py made) instead of generating
# one under --workdir (plain --src DIR: for the only --layers value); the GGUFs are always written under
# --workdir, named after the checkpoint's folder.
#
# The quiet-machine run of issue 10 (both depths, 3 rounds), as the lead repeats it:
#   bench/forward.sh --layers 4,24 --rounds 3 --workdir /work/scratch/speed --python /work/venv/bin/python \
#     --src 24=/work/scratch/models/20b-24
# (/work/scratch/models/20b-24.gguf, its BF16-attention GGUF, is used in place; the mxfp4_moe GGUF is made under
# --workdir only when the disk keeps 10 GB spare after it.)
set -euo pipefail
cd "$(dirname "$0")/.."
layers=4; prefill=128,512; decode=16; rounds=2; threads=$(nproc); work=${TMPDIR:-/tmp}/ossify-bench; py=python3
declare -A srcs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2; shift 2 ;;
    --src) case "$2" in [0-9]*=*) srcs[${2%%=*}]=${2#*=} ;; *) srcs[only]=$2 ;; esac; shift 2 ;;
    --prefill) prefill=$2; shift 2 ;;
    --decode) decode=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -n "${srcs[only]:-}" ]; then
  [ "${layers#*,}" = "$layers" ] || { echo "--src DIR names one checkpoint: write --src N=DIR for --layers $layers" >&2; exit 2; }
  srcs[$layers]=${srcs[only]}
fi
mkdir -p "$work"
cargo build --release --locked -q --example forward_bench --bin ossify
for n_layers in ${layers//,/ }; do
  src=${srcs[$n_layers]:-"$work/gpt-oss-20b-width-${n_layers}L"}
  name=$(basename "$src")
  bf16="$work/$name.bf16.gguf"
  q8="$work/$name.mxfp4_moe.gguf"
  # A BF16-attention GGUF made beside the checkpoint (bench/scale.sh writes DIR.gguf) is used in place.
  if [ ! -f "$bf16" ] && [ -f "${src%/}.gguf" ]; then bf16="${src%/}.gguf"; fi
  if [ ! -f "$bf16" ] || [ ! -f "$q8" ]; then
    [ -f "$src/config.json" ] || "$py" bench/make_synthetic.py "$src" --layers "$n_layers" --tokenizer-from golden/tiny
  fi
  if [ ! -f "$bf16" ]; then
    if "$py" -c 'import torch' 2>/dev/null; then
      "$py" golden/convert_with_llamacpp.py "$src" --outtype bf16 --outfile "$bf16"
    else
      target/release/ossify convert "$src" -o "$bf16" --outtype bf16
    fi
  fi
  if [ ! -f "$q8" ]; then
    need=$(( $(stat -c %s "$bf16") * 3 / 4 / 1000000000 + 1 ))
    free=$(df -P --block-size=1G "$work" | awk 'NR == 2 {print $4}')
    if [ "$free" -lt $(( need + 10 )) ]; then
      echo "skipping $q8: it needs about $need GB and $free GB are free (10 GB kept spare)" >&2; q8=""
    else
      target/release/ossify quantize "$bf16" -o "$q8" --type mxfp4_moe
    fi
  fi
  log="$work/forward-bench-$name.log"
  : > "$log"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
  echo "model: $name ($(du -sh "$src" | cut -f1) checkpoint), $(free -g | awk '/Mem:/ {print $2 " GB RAM, " $7 " GB available"}')" | tee -a "$log"
  target/release/examples/forward_bench --bandwidth --threads "$threads" | tee -a "$log"
  for round in $(seq "$rounds"); do
    for gguf in "$bf16" ${q8:+"$q8"}; do
      file=$(basename "$gguf")
      cat "$gguf" > /dev/null   # warm the page cache
      for precision in exact q8; do
        target/release/examples/forward_bench "$gguf" --prefill "$prefill" --decode "$decode" --threads "$threads" \
          --precision "$precision" | sed "s/^RESULT /RESULT file=$file round=$round /" | tee -a "$log"
      done
      "$py" bench/forward_llamacpp.py "$gguf" --prefill "$prefill" --decode "$decode" --threads "$threads" 2>/dev/null \
        | sed "s/^RESULT /RESULT file=$file round=$round /" | tee -a "$log"
    done
  done
  echo "machine after: load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
  "$py" bench/forward_report.py "$log" --gguf "$bf16" ${q8:+--gguf "$q8"} | tee "$log.summary"
done
