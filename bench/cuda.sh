#!/usr/bin/env bash
# The CUDA forward pass on a GPU machine, in one call of under 8 minutes:
#   1. every kernel compiles with that machine's NVRTC for sm_90 and sm_80 (kernels/tests/nvrtc_compile.rs);
#   2. the forward-pass golden tests on CUDA (tests/forward_golden.rs: transformers' logits and residuals, every
#      layout and type, and CUDA exact vs CPU exact: max |Δlogit| <= 1e-4, mean KL <= 1e-9);
#   3. a 4-layer synthetic with gpt-oss-20b's widths (bench/make_synthetic.py, HF layout: MXFP4 experts, BF16 rest),
#      then per precision (exact, q8): prefill of 512 and 2048 tokens, decode tokens/s, device memory, and decode as
#      a fraction of the memory-bandwidth roofline (bytes a decode step reads / measured copy bandwidth).
#
#   bench/cuda.sh --prepare           where cargo is: builds the binaries into .cuda-bin/ (git-ignored), for
#                                     a GPU machine without a Rust toolchain (carry .cuda-bin there)
#   bench/cuda.sh [--layers N] [--workdir DIR] [--decode N]
#
# On the GPU machine the script uses .cuda-bin/ when it is there, else builds with cargo. NVRTC is looked up in
# $OSSIFY_NVRTC, the CUDA toolkit (/usr/local/cuda) and the Python environment's nvidia-* wheels. Logs go to
# $OUT (the device tool's folder) when set, else to the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.cuda-bin

if [ "${1:-}" = "--prepare" ]; then
  mkdir -p "$bin"
  cargo build --release --locked --example cuda_bench
  exe() {  # the test executable cargo builds for `cargo test --release --test $2 -p $1`
    cargo test --release --locked --no-run -p "$1" --test "$2" --message-format=json 2>/dev/null |
      python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$2" | tail -1
  }
  strip -o "$bin/cuda_bench" target/release/examples/cuda_bench
  strip -o "$bin/forward_golden" "$(exe ossify forward_golden)"
  strip -o "$bin/nvrtc_compile" "$(exe ossify-kernels nvrtc_compile)"
  # The tests find golden/ through the path they were built in.
  pwd > "$bin/built_in"
  du -sh "$bin"/*
  exit 0
fi

layers=4; work=${TMPDIR:-/tmp}/ossify-cuda-bench; decode=64
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --decode) decode=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
log=${OUT:-$work}
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader || true

if [ -z "${OSSIFY_NVRTC:-}" ]; then
  for c in /usr/local/cuda/lib64/libnvrtc.so /usr/local/cuda/lib64/libnvrtc.so.* \
           $(python3 -c 'import glob, site
print(" ".join(sorted(p for s in site.getsitepackages() for p in glob.glob(s + "/nvidia/*/lib/libnvrtc.so*"))))' 2>/dev/null); do
    if [ -e "$c" ]; then export OSSIFY_NVRTC=$c; break; fi
  done
fi
stamp "NVRTC: ${OSSIFY_NVRTC:-not found (the binary searches its default places)}"

if [ -x "$bin/cuda_bench" ]; then
  bench_exe=$bin/cuda_bench; golden_exe=$bin/forward_golden; nvrtc_exe=$bin/nvrtc_compile
  built_in=$(cat "$bin/built_in")
  if [ "$built_in" != "$PWD" ] && [ ! -e "$built_in" ]; then
    mkdir -p "$(dirname "$built_in")" && ln -s "$PWD" "$built_in"
  fi
elif command -v cargo >/dev/null; then
  cargo build --release --locked --example cuda_bench
  bench_exe=target/release/examples/cuda_bench; golden_exe=""; nvrtc_exe=""
else
  echo "no cargo here and no $bin/: run bench/cuda.sh --prepare where cargo is and carry $bin" >&2
  exit 2
fi

stamp "1. kernels compile with this NVRTC for sm_90 and sm_80"
if [ -n "$nvrtc_exe" ]; then
  OSSIFY_REQUIRE_NVRTC=1 "$nvrtc_exe" --nocapture 2>&1 | tee "$log/nvrtc_compile.log" | grep -E "NVRTC|test result|FAILED|panicked"
else
  OSSIFY_REQUIRE_NVRTC=1 cargo test --release --locked -p ossify-kernels --test nvrtc_compile -- --nocapture 2>&1 |
    tee "$log/nvrtc_compile.log" | grep -E "NVRTC|test result|FAILED|panicked"
fi

stamp "2. forward-pass golden tests on CPU and CUDA (parity)"
set +e
if [ -n "$golden_exe" ]; then
  "$golden_exe" --nocapture --test-threads 2 > "$log/forward_golden.log" 2>&1
else
  cargo test --release --locked --test forward_golden -- --nocapture --test-threads 2 > "$log/forward_golden.log" 2>&1
fi
golden_rc=$?
set -e
grep -E "on NVIDIA|on .*\(sm_|test result|FAILED|panicked|skipped" "$log/forward_golden.log" | tail -40
stamp "forward_golden exit code $golden_rc"

stamp "3. synthetic gpt-oss-20b widths, $layers layers"
syn="$work/gpt-oss-20b-width-${layers}L"
[ -f "$syn/config.json" ] || python3 bench/make_synthetic.py "$syn" --layers "$layers" --tokenizer-from golden/tiny
stamp "synthetic ready ($(du -sh "$syn" | cut -f1))"
for precision in exact q8; do
  "$bench_exe" "$syn" --prefill 512,2048 --decode "$decode" --precision "$precision" 2>&1 | tee -a "$log/cuda_bench.log"
  stamp "$precision done"
done
nvidia-smi --query-gpu=memory.used --format=csv,noheader || true
exit "$golden_rc"
