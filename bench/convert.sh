#!/usr/bin/env bash
# Benchmark: `ossify convert` against a durable copy of the same checkpoint (`cp -r` + `sync` of the copied files:
# ossify fsyncs its output before renaming it into place, so a copy that is not synced is not the peer), on a
# synthetic checkpoint with gpt-oss-20b's real widths (bench/make_synthetic.py).
#
#   bench/convert.sh [--layers N | --src DIR] [--workdir DIR] [--runs N] [--threads N] [--baseline BIN]
#                    [--settle S] [--pagecache] [--profile] [--bin BIN] [--llama-cpp DIR] [--python PY]
#
# The two shapes of issue 10 (run on a quiet machine; each prints a table and the ratios):
#   bench/convert.sh --layers 4 --runs 3 --pagecache                    # 4.2 GB, made if missing
#   bench/convert.sh --src DIR --runs 3 --pagecache                     # DIR: make_synthetic.py DIR --layers 24
# (13.8 GB; the output needs as much free disk, one output at a time.)
#
# Method. Before every timed run the previous output is removed, the source is read once more (so as much of
# it is in the page cache as fits, whatever the previous run evicted), and the disk is settled (`sync; sleep
# S`, default 5 s) so no run pays for the previous one's writeback. Rounds interleave the commands, and the
# order alternates from round to round, so a load change on a shared machine hits both. Each run is timed with
# /usr/bin/time: wall, user, system, peak RSS. The summary gives the median of each, and the median over rounds
# of the per-round ossify / copy ratio of wall and of system time. On a shared machine read CPU time (user +
# sys) beside wall, and note the load (`uptime`, printed).
#
# --src: an existing checkpoint folder, only read (default: $workdir/gpt-oss-20b-width-<N>L, made if missing
#   with --python, which needs numpy). Outputs go to --workdir (default $TMPDIR/ossify-bench): one at a time.
# --baseline: another ossify binary (e.g. a build of an older commit) timed beside this one; its output is
#   compared with this one's (sha256, outside the timing) and the result printed.
# --pagecache: also time the same binary with OSSIFY_DIRECT_IO=0 (output written through the page cache, as
#   before direct I/O), compared like --baseline.
# --threads: ossify's --threads (default 0: all cores).
# --bin: the ossify binary to time (default: target/release/ossify, built first).
# --profile: after the rounds, one more ossify run each under `perf stat` (software events), `strace -f -c`
#   (system calls: count and time) and `perf record` (where CPU time goes, kernel included), written to
#   $workdir/profile-*.txt and summarised.
# --llama-cpp: a llama.cpp source tree (llama-cpp-python's sdist carries one under vendor/llama.cpp); one
#   extra run of its converter with --python (needs torch, numpy, transformers). Skipped without it.
set -euo pipefail
cd "$(dirname "$0")/.."
layers=4; src=""; work=${TMPDIR:-/tmp}/ossify-bench; llama=""; py=python3; runs=3; threads=0; baseline=""
settle=5; profile=0; bin=""; pagecache=0
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --llama-cpp) llama=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    --profile) profile=1; shift ;;
    --pagecache) pagecache=1; shift ;;
    --bin) bin=$(realpath "$2"); shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
work=$(cd "$work" && pwd)
if [ -z "$src" ]; then
  src="$work/gpt-oss-20b-width-${layers}L"
  [ -f "$src/config.json" ] || "$py" bench/make_synthetic.py "$src" --layers "$layers"
fi
[ -f "$src/config.json" ] || { echo "$src: no config.json: not a checkpoint folder" >&2; exit 2; }
if [ -z "$bin" ]; then
  cargo build --release --locked -q
  bin=$PWD/target/release/ossify
fi
[ -z "$baseline" ] || baseline=$(realpath "$baseline")
out="$work/out"
trap 'rm -rf "$out"' EXIT

# Each contestant: a name and a command writing into $out.
names=(cp+sync ossify)
[ -z "$baseline" ] || names+=(baseline)
[ "$pagecache" = 0 ] || names+=(pagecache)
contestant() {
  case "$1" in
    cp+sync) cp -r "$src" "$out/copy" && sync "$out"/copy/* ;;
    ossify) "$bin" convert "$src" -o "$out/ossify.gguf" --threads "$threads" > /dev/null ;;
    baseline) "$baseline" convert "$src" -o "$out/baseline.gguf" --threads "$threads" > /dev/null ;;
    pagecache) OSSIFY_DIRECT_IO=0 "$bin" convert "$src" -o "$out/pagecache.gguf" --threads "$threads" > /dev/null ;;
  esac
}
export -f contestant
export src out bin baseline threads

# prepare: no output left, the source in the page cache as far as it fits, the disk settled.
prepare() {
  rm -rf "$out"; mkdir -p "$out"
  cat "$src"/*.safetensors > /dev/null
  sync; sleep "$settle"
}

# run NAME ROUND: one timed run; appends "name round wall user sys rss_kib" to $work/runs.txt.
run() {
  prepare
  /usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" bash -c 'contestant "$0"' "$1" > "$work/$1.log" 2>&1 \
    || { echo "$1 failed:" >&2; cat "$work/$1.log" >&2; exit 1; }
  read -r t u s m < "$work/time.txt"
  echo "$1 $2 $t $u $s $m" >> "$work/runs.txt"
  printf '  round %d  %-9s wall %7.2f s  user %6.2f s  sys %6.2f s  peak RSS %7.1f MiB   (load %s)\n' \
    "$2" "$1" "$t" "$u" "$s" "$(awk "BEGIN{print $m/1024}")" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

echo "checkpoint: $src ($(du -sh "$src" | cut -f1)), $(nproc) cores, $runs rounds, settle ${settle}s," \
     "ossify --threads $threads; $(uptime | sed 's/.*load/load/')"
: > "$work/runs.txt"
for r in $(seq "$runs"); do
  order=("${names[@]}")
  if [ $((r % 2)) = 0 ]; then order=(); for ((i=${#names[@]}-1; i>=0; i--)); do order+=("${names[i]}"); done; fi
  for n in "${order[@]}"; do run "$n" "$r"; done
  if [ "$r" = 1 ]; then
    # Same bytes as the other builds / writers? Each output once, hashed outside the timing.
    for other in "${names[@]:2}"; do
      prepare; contestant ossify; a=$(sha256sum < "$out/ossify.gguf"); rm -f "$out/ossify.gguf"
      contestant "$other"; b=$(sha256sum < "$out/$other.gguf"); rm -f "$out/$other.gguf"
      if [ "$a" = "$b" ]; then echo "  output identical to $other's (sha256 ${a%% *})"
      else echo "  OUTPUT DIFFERS from $other's: ${a%% *} vs ${b%% *}"; fi
    done
  fi
done

echo
echo "median of $runs rounds:    wall s   user s    sys s  CPU s  peak RSS MiB"
for n in "${names[@]}"; do
  awk -v n="$n" '$1 == n { w[++k] = $3; u[k] = $4; s[k] = $5; m[k] = $6 }
    function med(a,   i, j, t, c) { c = 0; for (i in a) c++; for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++)
      if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 }
    END { printf "  %-22s %8.2f %8.2f %8.2f %6.2f %13.1f\n", n, med(w), med(u), med(s), med(u) + med(s), med(m) / 1024 }' \
    "$work/runs.txt"
done
# Per-round ratios against the copy of the same round, then their median.
ratios() {
  awk -v n="$1" '$1 == "cp+sync" { cw[$2] = $3; cs[$2] = $5 } $1 == n { w[$2] = $3; s[$2] = $5 }
    function med(a,   i, j, t, c) { c = 0; for (i in a) c++; for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++)
      if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 }
    END { k = 0; for (r in w) if (r in cw) { k++; rw[k] = w[r] / cw[r]; rs[k] = s[r] / (cs[r] > 0 ? cs[r] : 0.01)
            line = line sprintf(" %.2f", rw[k]) }
          printf "%s / cp+sync: wall %.2fx (rounds:%s), sys %.2fx\n", n, med(rw), line, med(rs) }' "$work/runs.txt"
}
for n in "${names[@]:1}"; do ratios "$n"; done

if [ -n "$llama" ]; then
  prepare
  /usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" env LLAMA_CPP_SRC="$llama" "$py" \
    golden/convert_with_llamacpp.py "$src" --outfile "$out/llama.gguf" --outtype auto > "$work/llamacpp.log" 2>&1
  read -r t u s m < "$work/time.txt"
  printf 'llama.cpp converter (one run): wall %.2f s, user %.2f s, sys %.2f s, peak RSS %.1f MiB\n' \
    "$t" "$u" "$s" "$(awk "BEGIN{print $m/1024}")"
fi

if [ "$profile" = 1 ]; then
  echo
  prepare
  perf stat -e task-clock,page-faults,minor-faults,major-faults,context-switches,cpu-migrations \
    -o "$work/profile-perf-stat.txt" bash -c 'contestant ossify'
  echo "perf stat (ossify): $work/profile-perf-stat.txt"
  grep -E 'task-clock|faults|context|elapsed|user|sys' "$work/profile-perf-stat.txt" | sed 's/^/  /'
  prepare
  strace -f -c -o "$work/profile-strace.txt" bash -c 'contestant ossify'
  echo "strace -f -c (ossify; calls and time inside system calls): $work/profile-strace.txt"
  head -n 14 "$work/profile-strace.txt" | sed 's/^/  /'
  prepare
  perf record -q -F 499 -g -o "$work/profile.data" -- bash -c 'contestant ossify' 2> /dev/null
  perf report -i "$work/profile.data" --no-children --sort comm,sym --stdio 2> /dev/null \
    | grep -v '^#' | grep -E '^ +[0-9]' > "$work/profile-perf.txt" || true
  echo "perf record (ossify; share of CPU samples by thread and symbol): $work/profile-perf.txt"
  head -n 25 "$work/profile-perf.txt" | sed 's/^/  /'
  rm -f "$work/profile.data"
fi
