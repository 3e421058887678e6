#!/usr/bin/env bash
# Benchmark: `ossify convert` against `cp -r` of the same checkpoint and llama.cpp's converter, on a synthetic
# checkpoint with gpt-oss-20b's real widths. Prints wall time and peak RSS of each, and the ratios.
#
#   bench/convert.sh [--layers N] [--workdir DIR] [--llama-cpp DIR] [--python PY]
#
# --llama-cpp: a llama.cpp source tree (llama-cpp-python's sdist carries one under vendor/llama.cpp);
# without it the llama.cpp row is skipped. --python must have what llama.cpp's converter imports (torch, numpy,
# transformers). The page cache is warmed once before timing; each command runs twice, best time kept.
set -euo pipefail
cd "$(dirname "$0")/.."
layers=4; work=${TMPDIR:-/tmp}/ossify-bench; llama=""; py=python3
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --llama-cpp) llama=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
src="$work/gpt-oss-20b-width-${layers}L"
[ -f "$src/config.json" ] || "$py" bench/make_synthetic.py "$src" --layers "$layers"
cargo build --release --locked -q
bin=$PWD/target/release/ossify
cat "$src"/*.safetensors > /dev/null   # warm the page cache

# measure NAME CMD...: best wall seconds of two runs, and peak RSS (KiB) of the best run
measure() {
  local name=$1; shift
  local best="" rss=""
  for _ in 1 2; do
    rm -rf "$work/out"; mkdir -p "$work/out"
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/$name.log" 2>&1
    read -r t m < "$work/time.txt"
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; rss=$m; fi
  done
  printf '%-22s %8.2f s %10.1f MiB\n' "$name" "$best" "$(awk "BEGIN{print $rss/1024}")"
  eval "t_${name//[^a-z]/_}=$best; m_${name//[^a-z]/_}=$rss"
}

echo "checkpoint: $src ($(du -sh "$src" | cut -f1)), $(nproc) cores"
measure cp cp -r "$src" "$work/out/copy"
measure ossify "$bin" convert "$src" -o "$work/out/ossify.gguf"
if [ -n "$llama" ]; then
  measure llamacpp env LLAMA_CPP_SRC="$llama" "$py" golden/convert_with_llamacpp.py \
    "$src" --outfile "$work/out/llama.gguf" --outtype auto
fi
echo "ossify / cp time: $(awk "BEGIN{printf \"%.2f\", $t_ossify/$t_cp}")x"
if [ -n "$llama" ]; then
  echo "llama.cpp / cp time: $(awk "BEGIN{printf \"%.2f\", $t_llamacpp/$t_cp}")x"
  echo "ossify / llama.cpp time: $(awk "BEGIN{printf \"%.3f\", $t_ossify/$t_llamacpp}")x," \
       "peak RSS: $(awk "BEGIN{printf \"%.3f\", $m_ossify/$m_llamacpp}")x"
fi
rm -rf "$work/out"
