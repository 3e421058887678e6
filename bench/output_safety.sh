#!/usr/bin/env bash
# Interrupted runs and racing writers against a real conversion and a real quantization (issue 8's "Interrupts"
# and "Never destroy what exists"): what each leaves behind.
#
#   bench/output_safety.sh SRC WORK [BIN] [TRIALS]
#
# SRC: a checkpoint big enough that a conversion takes a while (bench/make_synthetic.py SRC --layers 1 writes
# 2.7 GB). WORK: a scratch folder on the same kind of disk. BIN: the ossify binary (target/release/ossify).
# TRIALS: per signal (10), alternating between `convert SRC` and `quantize --type q8_0` of SRC's conversion.
# RACES (default 3 x TRIALS): racing pairs; ONLY=races skips the interrupted runs.
#
# 1. Interrupted runs: TRIALS each of SIGINT, SIGTERM and SIGKILL, sent at a random moment after the partial
#    output appears. Expected: INT exits 130 and TERM 143, each naming the partial it removed, with neither
#    output nor partial left; KILL leaves the partial, which the next run of the same command names ("left by
#    an interrupted run") and replaces. A last complete run after the SIGKILLs of each command must equal a clean
#    run byte for byte.
# 2. Racing writers: pairs of runs writing the same output with different types, the second started 0-300 ms
#    after the first; odd pairs are two conversions (auto, q8_0), even pairs two quantizations (q8_0, q4_0).
#    Expected: exactly one exits 0 and the file is exactly that run's output; the other exits 2 with "another
#    process is writing it" (or "already exists" when the first had finished); nothing partial is left.
set -uo pipefail

src=${1:?usage: bench/output_safety.sh SRC WORK [BIN] [TRIALS]}
work=${2:?usage: bench/output_safety.sh SRC WORK [BIN] [TRIALS]}
bin=${3:-target/release/ossify}
trials=${4:-10}
races=${RACES:-$((trials * 3))}
only=${ONLY:-all}
mkdir -p "$work"
base="$work/ref-auto.gguf" # SRC converted: the input of every quantize run

sha() { sha256sum "$1" | cut -c1-16; }
# run CMD OUT [TYPE]: one command writing OUT (convert SRC, or quantize the converted SRC). It execs ossify, so
# call it in a subshell, `( run ... )` or `run ... &`: then $! is ossify itself, which the signals must reach.
run() {
  case $1 in
    convert) exec "$bin" convert "$src" -o "$2" ${3:+--outtype "$3"} ;;
    quantize) exec "$bin" quantize "$base" -o "$2" --type "${3:-q8_0}" --allow-requantize -q ;;
  esac
}
# wait_partial PID PARTIAL STALE: until the run has its partial (when a stale one was there: until it named it
# and took it over), or the run ended
wait_partial() {
  if [ "$3" = yes ]; then
    while ! grep -q 'left by an interrupted run' "$work/run.err" && kill -0 "$1" 2>/dev/null; do sleep 0.005; done
  fi
  while [ ! -e "$2" ] && kill -0 "$1" 2>/dev/null; do sleep 0.005; done
}
secs() { local t0 t1; t0=$(date +%s.%N); ( "$@" ) >/dev/null 2>&1 || { echo "reference run failed: $*"; exit 1; }; t1=$(date +%s.%N); awk "BEGIN{print $t1 - $t0}"; }

echo "source: $src ($(du -sh "$src" | cut -f1)); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$work"/ref-*.gguf
declare -A dur ref
dur[convert]=$(secs run convert "$base")
dur[quantize]=$(secs run quantize "$work/ref-qq8.gguf")
( run convert "$work/ref-q8.gguf" q8_0 ) >/dev/null 2>&1
( run quantize "$work/ref-qq4.gguf" q4_0 ) >/dev/null 2>&1
ref[convert]=$(sha "$base"); ref[quantize]=$(sha "$work/ref-qq8.gguf")
ref_cq8=$(sha "$work/ref-q8.gguf"); ref_qq4=$(sha "$work/ref-qq4.gguf")
echo "reference runs: convert ${dur[convert]} s, quantize q8_0 ${dur[quantize]} s"

if [ "$only" != races ]; then
echo
echo "== interrupted runs =="
printf '%-4s %-9s %-5s %-8s %-5s %-7s %-14s %s\n' '#' cmd sig 'delay_s' exit output partial stderr
declare -A tally
n=0
for sig in INT TERM KILL; do
  for k in $(seq "$trials"); do
    n=$((n + 1))
    cmd=convert; [ $((k % 2)) -eq 0 ] && cmd=quantize
    out="$work/out-$cmd.gguf"; partial="$out.partial"
    # A random moment within the first 40 % of a run's length after its partial appears (the partial appears
    # after the inputs are read and checked, so later moments often find the run finished).
    delay=$(awk -v d="${dur[$cmd]}" -v r="$RANDOM" 'BEGIN{printf "%.3f", d * 0.4 * r / 32768}')
    stale=no; [ -e "$partial" ] && stale=yes
    run "$cmd" "$out" > "$work/run.out" 2> "$work/run.err" &
    pid=$!
    wait_partial "$pid" "$partial" "$stale"
    sleep "$delay"
    kill -s "$sig" "$pid" 2>/dev/null
    wait "$pid"; code=$?
    o=no; [ -e "$out" ] && o=yes
    p=no; [ -e "$partial" ] && p="yes($(stat -c %s "$partial"))"
    err=$(grep -v '^note:' "$work/run.err" | head -c 100)
    note=$(grep -c 'left by an interrupted run' "$work/run.err")
    printf '%-4s %-9s %-5s %-8s %-5s %-7s %-14s %s%s\n' "$n" "$cmd" "$sig" "$delay" "$code" "$o" "$p" "$err" \
      "$([ "$note" -gt 0 ] && echo ' [named the stale partial]')"
    if [ "$o" = yes ]; then
      key="$sig: finished before the signal"
    else
      key="$sig: exit $code, partial ${p%%(*}"
    fi
    [ "$note" -gt 0 ] && key="$key, stale one named"
    tally[$key]=$((${tally[$key]:-0} + 1))
    # INT/TERM trials start clean; after a KILL the partial is left for the next run to take over.
    rm -f "$out"
    [ "$sig" = KILL ] || rm -f "$partial"
  done
done
# The partial of each command's last SIGKILL is taken over by a complete run, which must equal the clean one.
for cmd in convert quantize; do
  out="$work/out-$cmd.gguf"; partial="$out.partial"
  had=no; [ -e "$partial" ] && had=yes
  ( run "$cmd" "$out" ) > /dev/null 2> "$work/run.err"; code=$?
  named=$(grep -c 'left by an interrupted run' "$work/run.err")
  echo "$cmd after its last SIGKILL: stale partial there: $had, exit $code, named: $([ "$named" -gt 0 ] && echo yes || echo no)," \
       "output $( [ "$(sha "$out")" = "${ref[$cmd]}" ] && echo 'identical to a clean run' || echo DIFFERS), partial left: $([ -e "$partial" ] && echo yes || echo no)"
  rm -f "$out" "$partial"
done
for k in "${!tally[@]}"; do echo "  $k: ${tally[$k]}"; done | sort
fi

echo
echo "== racing writers (same output; odd: convert auto vs q8_0, even: quantize q8_0 vs q4_0) =="
printf '%-4s %-9s %-7s %-6s %-6s %-14s %s\n' '#' cmd 'gap_s' 'exitA' 'exitB' 'file' 'loser says'
declare -A race
out="$work/race.gguf"; partial="$out.partial"
rm -f "$out" "$partial"
for i in $(seq "$races"); do
  gap=$(awk -v r="$RANDOM" 'BEGIN{printf "%.3f", 0.3 * r / 32768}')
  if [ $((i % 2)) -eq 1 ]; then
    cmd=convert; ta=""; tb=q8_0; ra=${ref[convert]}; rb=$ref_cq8
  else
    cmd=quantize; ta=q8_0; tb=q4_0; ra=${ref[quantize]}; rb=$ref_qq4
  fi
  run "$cmd" "$out" $ta > /dev/null 2> "$work/a.err" &
  a=$!
  sleep "$gap"
  run "$cmd" "$out" $tb > /dev/null 2> "$work/b.err" &
  b=$!
  wait "$a"; ea=$?
  wait "$b"; eb=$?
  f=none
  if [ -e "$out" ]; then
    case $(sha "$out") in
      "$ra") f=A ;;
      "$rb") f=B ;;
      *) f=CORRUPT ;;
    esac
  fi
  [ -e "$partial" ] && f="$f+partial"
  loser=""
  [ "$ea" -ne 0 ] && loser="A: $(head -c 90 "$work/a.err")"
  [ "$eb" -ne 0 ] && loser="B: $(head -c 90 "$work/b.err")"
  printf '%-4s %-9s %-7s %-6s %-6s %-14s %s\n' "$i" "$cmd" "$gap" "$ea" "$eb" "$f" "$loser"
  verdict=wrong
  if [ "$ea" -eq 0 ] && [ "$eb" -ne 0 ] && [ "$f" = A ]; then verdict="A wrote, B refused"; fi
  if [ "$eb" -eq 0 ] && [ "$ea" -ne 0 ] && [ "$f" = B ]; then verdict="B wrote, A refused"; fi
  case $loser in
    *"another process is writing"*) verdict="$verdict (busy)" ;;
    *"already exists"*) verdict="$verdict (already exists)" ;;
  esac
  race["$cmd: $verdict"]=$((${race["$cmd: $verdict"]:-0} + 1))
  rm -f "$out" "$partial"
done
for k in "${!race[@]}"; do echo "  $k: ${race[$k]}"; done | sort
rm -f "$work"/ref-*.gguf "$work/run.out" "$work/run.err" "$work/a.err" "$work/b.err"
