#!/usr/bin/env bash
# Scale benchmark: a synthetic checkpoint with gpt-oss-20b's or gpt-oss-120b's real widths (bench/make_synthetic.py)
# at any depth; `convert` to a split GGUF, then `verify-parity` source vs the split GGUF (tensors, then logits on
# --tokens random ids), and optionally `perplexity` at ctx 512. Each step is timed with /usr/bin/time -v: wall,
# user + sys CPU (report CPU beside wall on a shared machine), peak RSS, and peak anonymous RSS (sampled from
# /proc/PID/status RssAnon every 0.2 s: the memory the model's file map does not explain).
#
#   bench/scale.sh [--model 20b|120b] [--layers N] [--split-max-size SIZE] [--tokens N] [--perplexity]
#                  [--memory-limit SIZE] [--threads N] [--workdir DIR] [--python PY] [--keep]
#
# Examples (the issue's measurements):
#   bench/scale.sh --model 120b --layers 4 --split-max-size 2G                 # 120b shape, ~9.3 GB source
#   bench/scale.sh --model 20b --layers 24 --tokens 512 --perplexity           # full-depth 20b, 13.8 GB source
#   bench/scale.sh --model 20b --layers 24 --tokens 512 --perplexity --memory-limit 16G
#
# --memory-limit runs verify-parity and perplexity inside a cgroup v1 memory cgroup with that
# memory.limit_in_bytes (needs root and /sys/fs/cgroup/memory); page cache counts against it, as on a 16 GB
# machine. The source and outputs live under --workdir (default $TMPDIR/ossify-bench) and are removed at the end
# unless --keep. Disk: about twice the source (120b: 1.75 GB per layer + 2.3 GB; 20b: 0.48 GB per layer + 2.3 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
model=120b; layers=4; split=2G; tokens=128; ppl=0; limit=""; threads=0; work=${TMPDIR:-/tmp}/ossify-bench
py=python3; keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --layers) layers=$2; shift 2 ;;
    --split-max-size) split=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    --perplexity) ppl=1; shift ;;
    --memory-limit) limit=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
src="$work/gpt-oss-$model-width-${layers}L"
out="$work/out-$model-${layers}L"
[ -f "$src/config.json" ] || "$py" bench/make_synthetic.py "$src" --model "$model" --layers "$layers"
cargo build --release --locked -q
bin=$PWD/target/release/ossify
rm -rf "$out"; mkdir -p "$out"
[ "$keep" = 1 ] || trap 'rm -rf "$out"' EXIT

# Random token ids (seeded), inside the vocabulary.
"$py" -c "import json, random; random.seed(0); print(json.dumps({'tokens': [random.randrange(200000) for _ in range($tokens)]}))" \
  > "$out/tokens.json"
text="$out/text.txt"
if [ "$ppl" = 1 ]; then
  # ~1100 tokens of text: two chunks of 512 for perplexity.
  for _ in $(seq 12); do cat golden/README.md; done | head -c 60000 > "$text"
fi

cg=""
if [ -n "$limit" ]; then
  cg=/sys/fs/cgroup/memory/ossify-bench-$$
  mkdir "$cg"
  bytes=$("$py" -c "s='$limit'; u={'K':10**3,'M':10**6,'G':2**30}.get(s[-1]); print(int(s[:-1])*u if u else int(s))")
  echo "$bytes" > "$cg/memory.limit_in_bytes"
  trap 'rm -rf "$out"; rmdir "$cg" 2>/dev/null || true' EXIT
fi

# step NAME CGROUP(0|1) CMD...: runs CMD under /usr/bin/time -v, samples its anonymous RSS, prints one row.
printf '%-28s %9s %9s %11s %11s %s\n' step wall_s cpu_s peak_rss peak_anon exit
step() {
  local name=$1 in_cg=$2; shift 2
  local tv="$out/$name.time" log="$out/$name.log"
  if [ "$in_cg" = 1 ] && [ -n "$cg" ]; then
    /usr/bin/time -v -o "$tv" sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@" > "$log" 2>&1 &
  else
    /usr/bin/time -v -o "$tv" "$@" > "$log" 2>&1 &
  fi
  local tpid=$! anon=0
  while kill -0 "$tpid" 2>/dev/null; do
    for p in $(pgrep -P "$tpid" 2>/dev/null) $(pgrep -P "$(pgrep -P "$tpid" 2>/dev/null | head -1)" 2>/dev/null); do
      a=$(awk '/^RssAnon/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
      [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
    done
    sleep 0.2
  done
  local rc=0; wait "$tpid" || rc=$?
  local wall cpu rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tv")
  cpu=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{print u+s}' "$tv")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$tv")
  printf '%-28s %9.1f %9.1f %8.0f MiB %8.0f MiB %s\n' "$name" "$wall" "$cpu" "$((rss / 1024))" "$((anon / 1024))" "$rc"
}

echo "source: $src ($(du -sh "$src" | cut -f1)), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
step "convert --split-max-size $split" 0 "$bin" convert "$src" -o "$out/model.gguf" --split-max-size "$split" \
  --threads "$threads" --json
first=$(ls "$out"/model-00001-of-*.gguf)
echo "  shards: $(ls "$out"/model-*-of-*.gguf | wc -l), $(du -ch "$out"/model-*-of-*.gguf | tail -1 | cut -f1)"
step "verify-parity (${tokens} tok)" 1 "$bin" verify-parity "$src" "$first" --tokens "$out/tokens.json" --json
grep -E '"(n_exact|n_tensors|n_tokens|kld_mean|max_abs_dlogit|pass)"' "$out/verify-parity (${tokens} tok).log" \
  | tr -d ' \n'; echo
if [ "$ppl" = 1 ]; then
  step "perplexity ctx 512" 1 "$bin" perplexity "$first" --text "$text" --ctx 512 --json
  grep -E '"(ppl|n_tokens)"' "$out/perplexity ctx 512.log" | tr -d ' \n'; echo
fi
