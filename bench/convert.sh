#!/usr/bin/env bash
# Benchmark: `ossify convert` against `cp -r` of the same checkpoint and llama.cpp's converter, on a synthetic
# checkpoint with gpt-oss-20b's real widths. Prints wall time and peak RSS of each, and the ratios.
#
#   bench/convert.sh [--layers N] [--workdir DIR] [--runs N] [--threads N] [--baseline BIN]
#                    [--llama-cpp DIR] [--python PY]
#
# --baseline: another ossify binary (e.g. a build of an older commit) to time beside this one.
# --llama-cpp: a llama.cpp source tree (llama-cpp-python's sdist carries one under vendor/llama.cpp);
# without it the llama.cpp row is skipped. --python must have what llama.cpp's converter imports (torch, numpy,
# transformers). --threads: ossify's --threads (default: all cores). The page cache is warmed once before
# timing; the commands run in turn, --runs rounds (default 3), best time of each kept, so load from other
# processes hits all rows alike. `cp+fsync` also syncs the copies to disk, as ossify does before renaming its
# output into place; `cp` does not.
set -euo pipefail
cd "$(dirname "$0")/.."
layers=4; work=${TMPDIR:-/tmp}/ossify-bench; llama=""; py=python3; runs=3; threads=0; baseline=""
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --llama-cpp) llama=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
src="$work/gpt-oss-20b-width-${layers}L"
[ -f "$src/config.json" ] || "$py" bench/make_synthetic.py "$src" --layers "$layers"
cargo build --release --locked -q
bin=$PWD/target/release/ossify
cat "$src"/*.safetensors > /dev/null   # warm the page cache

# run NAME CMD...: one timed run; keeps the best wall seconds per NAME and the peak RSS (KiB) of that run
declare -A best rss
run() {
  local name=$1; shift
  rm -rf "$work/out"; mkdir -p "$work/out"
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/$name.log" 2>&1
  read -r t m < "$work/time.txt"
  if [ -z "${best[$name]:-}" ] || awk "BEGIN{exit !($t < ${best[$name]})}"; then best[$name]=$t; rss[$name]=$m; fi
}
row() { printf '%-22s %8.2f s %10.1f MiB\n' "$1" "${best[$1]}" "$(awk "BEGIN{print ${rss[$1]}/1024}")"; }

echo "checkpoint: $src ($(du -sh "$src" | cut -f1)), $(nproc) cores, best of $runs"
for _ in $(seq "$runs"); do
  run cp cp -r "$src" "$work/out/copy"
  run cp+fsync sh -c 'cp -r "$1" "$2" && sync "$2"/*' sh "$src" "$work/out/copy"
  run ossify "$bin" convert "$src" -o "$work/out/ossify.gguf" --threads "$threads"
  [ -z "$baseline" ] || run baseline "$baseline" convert "$src" -o "$work/out/base.gguf" --threads "$threads"
done
if [ -n "$llama" ]; then
  run llamacpp env LLAMA_CPP_SRC="$llama" "$py" golden/convert_with_llamacpp.py \
    "$src" --outfile "$work/out/llama.gguf" --outtype auto
fi
for n in cp cp+fsync ossify; do row $n; done
[ -z "$baseline" ] || row baseline
[ -z "$llama" ] || row llamacpp
ratio() { awk "BEGIN{printf \"%.2f\", ${best[$1]}/${best[$2]}}"; }
echo "ossify / cp time: $(ratio ossify cp)x, ossify / cp+fsync time: $(ratio ossify cp+fsync)x"
[ -z "$baseline" ] || echo "baseline / cp time: $(ratio baseline cp)x"
if [ -n "$llama" ]; then
  echo "llama.cpp / cp time: $(ratio llamacpp cp)x"
  echo "ossify / llama.cpp time: $(ratio ossify llamacpp)x," \
       "peak RSS: $(awk "BEGIN{printf \"%.3f\", ${rss[ossify]}/${rss[llamacpp]}}")x"
fi
rm -rf "$work/out"
