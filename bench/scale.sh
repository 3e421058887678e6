#!/usr/bin/env bash
# Scale benchmark: a synthetic checkpoint with gpt-oss-20b's or gpt-oss-120b's real widths (bench/make_synthetic.py)
# at any depth, each ossify step timed beside its peer in the same run:
#   convert            vs `cp -r` + sync of the checkpoint, and vs llama.cpp's convert_hf_to_gguf.py (--llama-cpp)
#   verify-parity      source vs the converted (optionally split) GGUF: every tensor, then logits on --tokens ids
#   perplexity ctx 512 vs llama-perplexity on the same GGUF and text (--llama-perplexity)
#   quantize           BF16 GGUF -> mxfp4_moe vs llama-quantize (--quantize-layers N: the BF16 GGUF of an N-layer
#                      checkpoint of the same widths; 1.65 GB per 20b layer, so full depth needs ~41 GB)
# Each row: wall, user + sys CPU (report CPU beside wall on a shared machine), peak RSS (/usr/bin/time -v), peak
# anonymous RSS (RssAnon of the process tree sampled every 0.2 s: the memory the model's file map does not explain)
# and the 1-minute load average when the step ended.
#
#   bench/scale.sh [--model 20b|120b] [--layers N] [--source DIR] [--gguf PATH] [--split-max-size SIZE|none]
#                  [--steps convert,parity,ppl,quantize] [--tokens N] [--memory-limit SIZE] [--threads N]
#                  [--llama-cpp DIR] [--llama-perplexity BIN] [--llama-quantize BIN] [--quantize-layers N]
#                  [--workdir DIR] [--python PY] [--bin OSSIFY] [--keep]
#
# Examples (the issue's measurements; scripts/build-llama-tools builds llama-perplexity and llama-quantize):
#   bench/scale.sh --model 120b --layers 4 --split-max-size 2G                 # 120b shape, ~9.3 GB source
#   L=/path/to/vendor/llama.cpp; T=$(scripts/build-llama-tools)
#   bench/scale.sh --model 20b --layers 24 --split-max-size none --steps convert,parity,ppl,quantize --tokens 512 \
#     --llama-cpp $L --llama-perplexity $T/llama-perplexity --llama-quantize $T/llama-quantize --quantize-layers 8
#   bench/scale.sh --model 20b --layers 24 --split-max-size none --steps parity,ppl --tokens 512 --memory-limit 16G
#
# --source: an existing checkpoint (kept); otherwise one is generated under --workdir. --gguf: where convert writes
# (kept; without --steps convert, an existing GGUF to check). --memory-limit runs verify-parity and perplexity
# inside a cgroup v1 memory cgroup with that memory.limit_in_bytes (needs root and /sys/fs/cgroup/memory); page
# cache counts against it, as on a machine of that size. --python needs numpy (and torch, transformers, gguf for
# llama.cpp's converter). Outputs under --workdir (default $TMPDIR/ossify-bench) are removed at the end unless
# --keep. Disk: the source, plus one converted copy (and, while a peer runs, its copy too).
set -euo pipefail
cd "$(dirname "$0")/.."
model=120b; layers=4; split=2G; tokens=128; steps=convert,parity; limit=""; threads=0
work=${TMPDIR:-/tmp}/ossify-bench; py=python3; keep=0; src=""; gguf=""; bin=""
llama=""; lppl=""; lq=""; qlayers=0
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --layers) layers=$2; shift 2 ;;
    --source) src=$2; shift 2 ;;
    --gguf) gguf=$2; shift 2 ;;
    --split-max-size) split=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    --perplexity) steps=$steps,ppl; shift ;;
    --memory-limit) limit=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --llama-cpp) llama=$2; shift 2 ;;
    --llama-perplexity) lppl=$2; shift 2 ;;
    --llama-quantize) lq=$2; shift 2 ;;
    --quantize-layers) qlayers=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
has() { case ",$steps," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
mkdir -p "$work"
[ -n "$src" ] || src="$work/gpt-oss-$model-width-${layers}L"
out="$work/out-$model-${layers}L"
[ -f "$src/config.json" ] || "$py" bench/make_synthetic.py "$src" --model "$model" --layers "$layers"
if [ -z "$bin" ]; then
  cargo build --release --locked -q
  bin=$PWD/target/release/ossify
fi
nthreads=$threads; [ "$nthreads" != 0 ] || nthreads=$(nproc)
rm -rf "$out"; mkdir -p "$out"
cleanup() { [ "$keep" = 1 ] || rm -rf "$out"; [ -z "${cg:-}" ] || rmdir "$cg" 2>/dev/null || true; }
trap cleanup EXIT

# Random token ids (seeded), inside the vocabulary.
"$py" -c "import json, random; random.seed(0); print(json.dumps({'tokens': [random.randrange(200000) for _ in range($tokens)]}))" \
  > "$out/tokens.json"
# Text for perplexity: two chunks of 512 tokens and a little more, cut to size with the model's own tokenizer (the
# synthetic checkpoints carry golden/tiny's 490-piece vocabulary, so characters per token are few).
text="$out/text.txt"
for _ in $(seq 12); do cat golden/README.md; done > "$out/long.txt"
ntok() { "$bin" tokenize "$src" --text "$1" --json -q | "$py" -c 'import json, sys; print(json.load(sys.stdin)["n_tokens"])'; }
chars=$(( $(wc -c < "$out/long.txt") * 1100 / $(ntok "$out/long.txt") ))
head -c "$chars" "$out/long.txt" > "$text"
while [ "$(ntok "$text")" -lt 1040 ]; do chars=$((chars + 200)); head -c "$chars" "$out/long.txt" > "$text"; done

cg=""
if [ -n "$limit" ]; then
  cg=/sys/fs/cgroup/memory/ossify-bench-$$
  mkdir "$cg"
  bytes=$("$py" -c "s='$limit'; u={'K':2**10,'M':2**20,'G':2**30}.get(s[-1]); print(int(s[:-1])*u if u else int(s))")
  echo "$bytes" > "$cg/memory.limit_in_bytes"
fi

# step NAME CGROUP(0|1) CMD...: runs CMD under /usr/bin/time -v, samples its anonymous RSS, prints one row.
printf '%-34s %8s %8s %10s %10s %5s %s\n' step wall_s cpu_s peak_rss peak_anon load exit
step() {
  local name=$1 in_cg=$2; shift 2
  local tv="$out/$name.time" log="$out/$name.log"
  if [ "$in_cg" = 1 ] && [ -n "$cg" ]; then
    # Start cold: drop these files' clean pages from the page cache (pages cached earlier stay charged to the
    # cgroup that read them, so a warm cache would escape the limit), and reset the cgroup's counters.
    "$py" - "$src" "${gguf%.gguf}" <<'PY'
import glob, os, sys
for f in glob.glob(os.path.join(sys.argv[1], "*")) + glob.glob(sys.argv[2] + "*.gguf"):
    fd = os.open(f, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY
    echo 0 > "$cg/memory.max_usage_in_bytes"; echo 0 > "$cg/memory.failcnt"
    /usr/bin/time -v -o "$tv" sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@" > "$log" 2>&1 &
  else
    /usr/bin/time -v -o "$tv" "$@" > "$log" 2>&1 &
  fi
  local tpid=$! anon=0 a p kids
  while kill -0 "$tpid" 2>/dev/null; do
    kids=$(pgrep -P "$tpid" 2>/dev/null || true)
    for p in $kids $(for k in $kids; do pgrep -P "$k" 2>/dev/null || true; done); do
      a=$(awk '/^RssAnon/{print $2}' "/proc/$p/status" 2>/dev/null || true)
      [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
    done
    sleep 0.2
  done
  local rc=0; wait "$tpid" || rc=$?
  local wall cpu rss extra=""
  if [ "$in_cg" = 1 ] && [ -n "$cg" ]; then
    extra="  (cgroup peak $(($(cat "$cg/memory.max_usage_in_bytes") / 1048576)) MiB, failcnt $(cat "$cg/memory.failcnt"),"
    extra="$extra oom_kill $(awk '/oom_kill /{print $2}' "$cg/memory.oom_control"))"
  fi
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tv")
  cpu=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{print u+s}' "$tv")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$tv")
  printf '%-34s %8.1f %8.1f %6.0f MiB %6.0f MiB %5s %s\n' "$name" "$wall" "$cpu" "$((rss / 1024))" "$((anon / 1024))" \
    "$(cut -d' ' -f1 /proc/loadavg)" "$rc"
  [ -z "$extra" ] || echo "$extra"
  return 0
}
# the converted GGUF (or its first shard)
first_of() { if [ -f "$1" ]; then echo "$1"; else ls "${1%.gguf}"-00001-of-*.gguf; fi; }

echo "source: $src ($(du -sh "$src" | cut -f1)), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "memory limit: ${limit:-none}"
[ -n "$gguf" ] || gguf="$out/model.gguf"
splitargs=(); [ "$split" = none ] || splitargs=(--split-max-size "$split")
if has convert; then
  step "cp -r + sync" 0 sh -c 'cp -r "$1" "$2" && sync "$2"/*' sh "$src" "$out/copy"
  rm -rf "$out/copy"
  step "convert${splitargs[*]:+ ${splitargs[*]}}" 0 "$bin" convert "$src" -o "$gguf" "${splitargs[@]}" \
    --threads "$threads" --json
  echo "  output: $(ls "${gguf%.gguf}"*.gguf | wc -l) file(s), $(du -ch "${gguf%.gguf}"*.gguf | tail -1 | cut -f1)"
  if [ -n "$llama" ]; then
    step "llama.cpp convert_hf_to_gguf.py" 0 env LLAMA_CPP_SRC="$llama" "$py" golden/convert_with_llamacpp.py \
      "$src" --outfile "$out/llama.gguf" --outtype auto
    # Same tensors, same bytes? (gguf-py; one tensor in memory at a time)
    "$py" - "$(first_of "$gguf")" "$out/llama.gguf" <<'PY' || true
import sys
import gguf
a, b = (gguf.GGUFReader(p) for p in sys.argv[1:3])
ta = {t.name: t for t in a.tensors}
diff = [t.name for t in b.tensors
        if t.name not in ta or ta[t.name].tensor_type != t.tensor_type or ta[t.name].data.tobytes() != t.data.tobytes()]
print(f"  vs llama.cpp's GGUF: {len(b.tensors)} tensors, "
      f"{'all bytes identical' if not diff else f'{len(diff)} differ, e.g. {diff[:3]}'}")
PY
    rm -f "$out/llama.gguf"
  fi
fi
first=""; if has parity || has ppl; then first=$(first_of "$gguf"); fi   # a quantize-only run has no converted GGUF
if has parity; then
  step "verify-parity (${tokens} tok)" 1 "$bin" verify-parity "$src" "$first" --tokens "$out/tokens.json" --json
  grep -E '"(n_exact|n_tensors|n_tokens|kld_mean|max_abs_dlogit|pass)"' "$out/verify-parity (${tokens} tok).log" \
    | tr -d ' \n'; echo
fi
if has ppl; then
  step "perplexity ctx 512" 1 "$bin" perplexity "$first" --text "$text" --ctx 512 --json
  grep -E '"(ppl|n_tokens|n_chunks)"' "$out/perplexity ctx 512.log" | tr -d ' \n'; echo
  if [ -n "$lppl" ]; then
    step "llama-perplexity ctx 512" 1 "$lppl" -m "$first" -f "$text" -c 512 -b 512 -t "$nthreads" --chunks 2
    grep -E 'Final estimate|tokenizing the input|perplexity: calculating' "$out/llama-perplexity ctx 512.log" || true
  fi
fi
if has quantize; then
  [ "$qlayers" != 0 ] || qlayers=$layers
  [ -n "$lq" ] || { echo "--llama-quantize BIN is needed for the quantize step" >&2; exit 2; }
  qsrc="$work/gpt-oss-$model-width-${qlayers}L"
  [ "$qlayers" = "$layers" ] && qsrc=$src
  made=0
  [ -f "$qsrc/config.json" ] || { "$py" bench/make_synthetic.py "$qsrc" --model "$model" --layers "$qlayers"; made=1; }
  bf16="$out/bf16-${qlayers}L.gguf"
  # The BF16 input: every expert decoded, so both quantizers do the real work of encoding every expert.
  "$bin" quantize "$qsrc" -o "$bf16" --type bf16 --allow-requantize -q
  [ "$made" = 0 ] || rm -rf "$qsrc"
  echo "quantize input: $bf16 ($(du -h "$bf16" | cut -f1), $qlayers layers)"
  cat "$bf16" > /dev/null   # the page cache as warm as it can be for both
  step "quantize mxfp4_moe (${qlayers}L)" 0 "$bin" quantize "$bf16" -o "$out/ossify_q.gguf" --type mxfp4_moe \
    --threads "$nthreads" -q
  "$py" - "$out/ossify_q.gguf" > "$out/ossify_q.sums" <<'PY'
import hashlib, sys
import gguf
for t in gguf.GGUFReader(sys.argv[1]).tensors:
    print(t.name, int(t.tensor_type), hashlib.sha256(t.data.tobytes()).hexdigest())
PY
  rm -f "$out/ossify_q.gguf"   # one output on disk at a time
  step "llama-quantize MXFP4_MOE (${qlayers}L)" 0 "$lq" "$bf16" "$out/llama_q.gguf" MXFP4_MOE "$nthreads"
  "$py" - "$out/llama_q.gguf" "$out/ossify_q.sums" <<'PY' || true
import hashlib, sys
import gguf
ours = dict((n, (int(ty), h)) for n, ty, h in (l.split() for l in open(sys.argv[2])))
theirs = gguf.GGUFReader(sys.argv[1]).tensors
diff = [t.name for t in theirs if ours.get(t.name) != (int(t.tensor_type), hashlib.sha256(t.data.tobytes()).hexdigest())]
print(f"  vs llama-quantize: {len(theirs)} tensors, "
      f"{'all bytes identical' if not diff else f'{len(diff)} differ, e.g. {diff[:3]}'}")
PY
  rm -f "$out/llama_q.gguf" "$bf16"
fi
