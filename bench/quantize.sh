#!/usr/bin/env bash
# Benchmark (not a test): `ossify quantize` against llama.cpp's `llama-quantize` on the same BF16 GGUF of a
# synthetic checkpoint with gpt-oss-20b's real widths, same thread count. Prints wall time and peak RSS of each
# and the ratios, per preset, and checks that both wrote the same tensor bytes.
#
#   bench/quantize.sh [--layers N] [--threads T] [--types "mxfp4_moe q8_0"] [--workdir DIR]
#                     [--llama-quantize BIN] [--python PY]
#
# The input: bench/make_synthetic.py (HF MXFP4 layout) -> `ossify convert --outtype bf16` (experts stay MXFP4)
# -> `ossify quantize --type bf16 --allow-requantize` (experts decoded to BF16), so both quantizers do the real
# work of encoding every expert. --python needs numpy and gguf (for the byte comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
layers=24; threads=$(nproc); types="mxfp4_moe q8_0"; work=${TMPDIR:-/tmp}/ossify-qbench
lq=/opt/llama/build/bin/llama-quantize; py=python3; bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --types) types=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --llama-quantize) lq=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;   # an already built ossify (skips the release build; for checking the script)
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$lq" ] || { echo "llama-quantize not found at $lq (--llama-quantize)" >&2; exit 2; }
mkdir -p "$work"
src="$work/gpt-oss-20b-width-${layers}L"
[ -f "$src/config.json" ] || "$py" bench/make_synthetic.py "$src" --layers "$layers"
if [ -z "$bin" ]; then
  cargo build --release --locked -q
  bin=$PWD/target/release/ossify
fi
base="$work/base-${layers}L.gguf"; bf16="$work/bf16-${layers}L.gguf"
[ -f "$base" ] || "$bin" convert "$src" -o "$base" --outtype bf16
[ -f "$bf16" ] || "$bin" quantize "$base" -o "$bf16" --type bf16 --allow-requantize -q
rm -f "$base"
cat "$bf16" > /dev/null   # warm the page cache

# measure NAME CMD...: best wall seconds of two runs, and peak RSS (KiB) of the best run
measure() {
  local name=$1; shift
  local best="" rss=""
  for _ in 1 2; do
    rm -f "$work/$name.gguf"
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/$name.log" 2>&1
    read -r t m < "$work/time.txt"
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; rss=$m; fi
  done
  printf '  %-22s %8.2f s %10.1f MiB\n' "$name" "$best" "$(awk "BEGIN{print $rss/1024}")"
  eval "t_${name//[^a-z0-9]/_}=$best; m_${name//[^a-z0-9]/_}=$rss"
}

echo "input: $bf16 ($(du -h "$bf16" | cut -f1)), $threads threads, $(nproc) cores"
for ty in $types; do
  upper=$(echo "$ty" | tr a-z A-Z)
  echo "$ty:"
  measure "ossify_$ty" "$bin" quantize "$bf16" -o "$work/ossify_$ty.gguf" --type "$ty" --threads "$threads" -q
  measure "llama_$ty" "$lq" "$bf16" "$work/llama_$ty.gguf" "$upper" "$threads"
  to=t_ossify_$ty; tl=t_llama_$ty; mo=m_ossify_$ty; ml=m_llama_$ty
  echo "  ossify / llama-quantize: time $(awk "BEGIN{printf \"%.3f\", ${!to}/${!tl}}")x," \
       "peak RSS $(awk "BEGIN{printf \"%.3f\", ${!mo}/${!ml}}")x"
  "$py" - "$work/ossify_$ty.gguf" "$work/llama_$ty.gguf" <<'PY'
import sys
import gguf
a, b = (gguf.GGUFReader(p) for p in sys.argv[1:3])
ta = {t.name: t for t in a.tensors}
diff = [t.name for t in b.tensors
        if t.name not in ta or ta[t.name].tensor_type != t.tensor_type or ta[t.name].data.tobytes() != t.data.tobytes()]
print(f"  tensor bytes: {'identical' if not diff else f'{len(diff)} differ, e.g. {diff[:3]}'} ({len(b.tensors)} tensors)")
PY
  rm -f "$work/ossify_$ty.gguf" "$work/llama_$ty.gguf"
done
