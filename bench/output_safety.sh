#!/usr/bin/env bash
# Interrupted runs and racing writers against a real conversion (issue 8's "Interrupts" and "Never destroy what
# exists"): what each leaves behind.
#
#   bench/output_safety.sh SRC WORK [BIN] [TRIALS]
#
# SRC: a checkpoint big enough that a conversion takes a while (bench/make_synthetic.py SRC --layers 1 writes
# 2.7 GB). WORK: a scratch folder on the same kind of disk. BIN: the ossify binary (target/release/ossify).
# TRIALS: per kind (10). RACES (default 3 x TRIALS): racing pairs; ONLY=races skips the interrupted runs.
#
# 1. Interrupted runs: TRIALS each of SIGINT, SIGTERM and SIGKILL, sent at a random moment after the partial
#    output appears. Expected: INT exits 130 and TERM 143, each naming the partial it removed, with neither
#    output nor partial left; KILL leaves the partial, which the next run names ("left by an interrupted run")
#    and replaces. A last complete run after the SIGKILLs must equal a clean run byte for byte.
# 2. Racing writers: TRIALS pairs of runs writing the same output with different types (auto and q8_0), the
#    second started 0-300 ms after the first. Expected: exactly one exits 0 and the file is exactly that run's
#    output; the other exits 2 with "another process is writing it" (or "already exists" when the first had
#    finished); nothing partial is left.
set -uo pipefail

src=${1:?usage: bench/output_safety.sh SRC WORK [BIN] [TRIALS]}
work=${2:?usage: bench/output_safety.sh SRC WORK [BIN] [TRIALS]}
bin=${3:-target/release/ossify}
trials=${4:-10}
races=${RACES:-$((trials * 3))}
only=${ONLY:-all}
mkdir -p "$work"
out="$work/out.gguf"
partial="$out.partial"

sha() { sha256sum "$1" | cut -c1-16; }
clean() { rm -f "$out" "$partial"; }
# wait_partial PID STALE: until the run has its partial (when a stale one was there: until it named it and
# took it over), or the run ended
wait_partial() {
  if [ "$2" = yes ]; then
    while ! grep -q 'left by an interrupted run' "$work/run.err" && kill -0 "$1" 2>/dev/null; do sleep 0.005; done
  fi
  while [ ! -e "$partial" ] && kill -0 "$1" 2>/dev/null; do sleep 0.005; done
}

clean
echo "source: $src ($(du -sh "$src" | cut -f1)); $(nproc) cores, machine shared with other jobs"
t0=$(date +%s.%N)
"$bin" convert "$src" -o "$work/ref-auto.gguf" >/dev/null 2>&1 || { echo "reference run failed"; exit 1; }
t1=$(date +%s.%N)
dur=$(awk "BEGIN{print $t1 - $t0}")
[ -f "$work/ref-q8.gguf" ] || "$bin" convert "$src" -o "$work/ref-q8.gguf" --outtype q8_0 >/dev/null 2>&1
ref_auto=$(sha "$work/ref-auto.gguf")
ref_q8=$(sha "$work/ref-q8.gguf")
echo "reference convert: ${dur} s; sha auto $ref_auto, q8_0 $ref_q8"

if [ "$only" != races ]; then
echo
echo "== interrupted runs =="
printf '%-4s %-5s %-8s %-5s %-7s %-14s %s\n' '#' sig 'delay_s' exit output partial stderr
declare -A tally
n=0
for sig in INT TERM KILL; do
  for _ in $(seq "$trials"); do
    n=$((n + 1))
    # A random moment within the first 80 % of a run.
    delay=$(awk -v d="$dur" -v r="$RANDOM" 'BEGIN{printf "%.3f", d * 0.8 * r / 32768}')
    stale=no; [ -e "$partial" ] && stale=yes
    "$bin" convert "$src" -o "$out" > "$work/run.out" 2> "$work/run.err" &
    pid=$!
    wait_partial "$pid" "$stale"
    sleep "$delay"
    kill -s "$sig" "$pid" 2>/dev/null
    wait "$pid"; code=$?
    o=no; [ -e "$out" ] && o=yes
    p=no; [ -e "$partial" ] && p="yes($(stat -c %s "$partial"))"
    err=$(grep -v '^note:' "$work/run.err" | head -c 100)
    note=$(grep -c 'left by an interrupted run' "$work/run.err")
    printf '%-4s %-5s %-8s %-5s %-7s %-14s %s%s\n' "$n" "$sig" "$delay" "$code" "$o" "$p" "$err" \
      "$([ "$note" -gt 0 ] && echo ' [named the stale partial]')"
    if [ "$o" = yes ]; then
      key="$sig: finished before the signal"
    else
      key="$sig: exit $code, partial ${p%%(*}"
    fi
    tally[$key]=$((${tally[$key]:-0} + 1))
    # INT/TERM trials start clean; after a KILL the partial is left for the next run to take over.
    [ "$sig" = KILL ] && rm -f "$out" || clean
  done
done
# The partial of the last SIGKILL is taken over by a complete run, which must equal the clean one.
"$bin" convert "$src" -o "$out" > /dev/null 2> "$work/run.err"; code=$?
named=$(grep -c 'left by an interrupted run' "$work/run.err")
echo "run after the last SIGKILL: exit $code, stale partial named: $([ "$named" -gt 0 ] && echo yes || echo no)," \
     "output $( [ "$(sha "$out")" = "$ref_auto" ] && echo 'identical to a clean run' || echo DIFFERS), partial left: $([ -e "$partial" ] && echo yes || echo no)"
for k in "${!tally[@]}"; do echo "  $k: ${tally[$k]}"; done | sort
clean
fi

echo
echo "== racing writers (same output, auto vs q8_0) =="
printf '%-4s %-7s %-6s %-6s %-22s %s\n' '#' 'gap_s' 'exitA' 'exitB' 'file' 'loser says'
declare -A race
for i in $(seq "$races"); do
  gap=$(awk -v r="$RANDOM" 'BEGIN{printf "%.3f", 0.3 * r / 32768}')
  "$bin" convert "$src" -o "$out" > /dev/null 2> "$work/a.err" &
  a=$!
  sleep "$gap"
  "$bin" convert "$src" -o "$out" --outtype q8_0 > /dev/null 2> "$work/b.err" &
  b=$!
  wait "$a"; ea=$?
  wait "$b"; eb=$?
  f=none
  if [ -e "$out" ]; then
    case $(sha "$out") in
      "$ref_auto") f=A ;;
      "$ref_q8") f=B ;;
      *) f=CORRUPT ;;
    esac
  fi
  [ -e "$partial" ] && f="$f+partial"
  loser=""
  [ "$ea" -ne 0 ] && loser="A: $(head -c 90 "$work/a.err")"
  [ "$eb" -ne 0 ] && loser="B: $(head -c 90 "$work/b.err")"
  printf '%-4s %-7s %-6s %-6s %-22s %s\n' "$i" "$gap" "$ea" "$eb" "$f" "$loser"
  verdict=wrong
  if [ "$ea" -eq 0 ] && [ "$eb" -ne 0 ] && [ "$f" = A ]; then verdict="A wrote, B refused"; fi
  if [ "$eb" -eq 0 ] && [ "$ea" -ne 0 ] && [ "$f" = B ]; then verdict="B wrote, A refused"; fi
  case $loser in
    *"another process is writing"*) verdict="$verdict (busy)" ;;
    *"already exists"*) verdict="$verdict (already exists)" ;;
  esac
  race[$verdict]=$((${race[$verdict]:-0} + 1))
  clean
done
for k in "${!race[@]}"; do echo "  $k: ${race[$k]}"; done | sort
rm -f "$work/ref-auto.gguf" "$work/run.out" "$work/run.err" "$work/a.err" "$work/b.err"
