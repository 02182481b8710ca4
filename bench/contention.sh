#!/bin/sh
# Training speed when the machine is not ours alone: `snnwb bench` timed
# quiet, beside one busy process (a shell loop), and as two trainings at
# once, each with the default threads (one per core) and with
# SNNWB_THREADS=1. The settings take turns ROUNDS times, so that a slow or
# fast spell of a shared machine falls on all of them; each figure is the
# median over the rounds of the bench's median ms per step.
#
#   bench/contention.sh [NET] [METHOD] [T]        (conv-small sltt 6)
#
# BUILD names the build folder (build); ROUNDS (3); STEPS per bench (40).
set -eu
net=${1:-conv-small}
method=${2:-sltt}
T=${3:-6}
build=${BUILD:-build}
rounds=${ROUNDS:-3}
steps=${STEPS:-40}
snnwb="$build/app/snnwb"
[ -x "$snnwb" ] || { echo "no $snnwb: build first (or set BUILD)" >&2; exit 2; }
tmp=$(mktemp -d)
busy=
cleanup () {
  [ -n "$busy" ] && kill "$busy" 2> /dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# One bench with THREADS (empty: the default) writing its median ms to $1.
bench () {
  out=$1 threads=$2
  if [ -n "$threads" ]; then
    SNNWB_THREADS=$threads "$snnwb" bench --net "$net" --methods "$method" --T "$T" --steps "$steps" --no-ceiling > "$out.txt"
  else
    env -u SNNWB_THREADS "$snnwb" bench --net "$net" --methods "$method" --T "$T" --steps "$steps" --no-ceiling > "$out.txt"
  fi
  tail -n 1 "$out.txt" | awk '{ print $5 }' > "$out"
}

# setting: quiet | busy | pair; threads: "" or 1. Appends to $tmp/<setting>-<d|1>.
run_setting () {
  setting=$1 threads=$2 tag=${2:-d}
  case $setting in
    quiet) bench "$tmp/x" "$threads"; cat "$tmp/x" >> "$tmp/$setting-$tag" ;;
    busy)
      sh -c 'while :; do :; done' &
      busy=$!
      bench "$tmp/x" "$threads"
      kill "$busy"; wait "$busy" 2> /dev/null || true; busy=
      cat "$tmp/x" >> "$tmp/$setting-$tag" ;;
    pair)
      bench "$tmp/a" "$threads" & a=$!
      bench "$tmp/b" "$threads" & b=$!
      wait "$a" "$b"
      # Each training's own time, and the slower of the two.
      cat "$tmp/a" "$tmp/b" >> "$tmp/$setting-$tag"
      sort -n "$tmp/a" "$tmp/b" | tail -n 1 >> "$tmp/$setting-worst-$tag" ;;
  esac
}

median () {
  sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

threads_default=$(env -u SNNWB_THREADS "$snnwb" --version 2>/dev/null | sed -n 's/.*, \([0-9]*\) threads\{0,1\}.*/\1/p' | head -n 1)
[ -n "$threads_default" ] || threads_default=$(nproc)
"$snnwb" bench --net "$net" --methods "$method" --T "$T" --steps 3 --warmup 1 --no-ceiling > /dev/null # warm the caches
for r in $(seq "$rounds"); do
  for setting in quiet busy pair; do
    run_setting "$setting" ""
    run_setting "$setting" 1
  done
  echo "round $r of $rounds done" >&2
done

q_d=$(median "$tmp/quiet-d"); q_1=$(median "$tmp/quiet-1")
b_d=$(median "$tmp/busy-d"); b_1=$(median "$tmp/busy-1")
p_d=$(median "$tmp/pair-d"); p_1=$(median "$tmp/pair-1")
w_d=$(median "$tmp/pair-worst-d"); w_1=$(median "$tmp/pair-worst-1")
awk -v net="$net" -v method="$method" -v T="$T" -v n="$threads_default" -v rounds="$rounds" -v steps="$steps" \
    -v q_d="$q_d" -v q_1="$q_1" -v b_d="$b_d" -v b_1="$b_1" -v p_d="$p_d" -v p_1="$p_1" -v w_d="$w_d" -v w_1="$w_1" '
function yn(ok) { return ok ? "yes" : "NO" }
BEGIN {
  printf "%s %s T=%s: ms per step (median of %d rounds of %d steps; %d cores)\n\n", net, method, T, rounds, steps, n
  printf "| setting | default threads (%d) | 1 thread | default / 1 thread |\n", n
  printf "|---|---:|---:|---:|\n"
  printf "| quiet | %.1f | %.1f | %.2f |\n", q_d, q_1, q_d / q_1
  printf "| beside one busy process | %.1f | %.1f | %.2f |\n", b_d, b_1, b_d / b_1
  printf "| two trainings at once (each) | %.1f | %.1f | %.2f |\n", p_d, p_1, p_d / p_1
  printf "| two at once, the slower | %.1f | %.1f | %.2f |\n\n", w_d, w_1, w_d / w_1
  printf "beside a busy process, default threads keep %.2f of their quiet speed (>= 0.5: %s)\n", q_d / b_d, yn(q_d / b_d >= 0.5)
  printf "beside a busy process, default threads / 1 thread: %.2f (<= 1: %s)\n", b_d / b_1, yn(b_d <= b_1)
  printf "two at once, default threads, the slower / quiet 1 thread: %.2f (<= 1.25: %s)\n", w_d / q_1, yn(w_d / q_1 <= 1.25)
  printf "two at once, 1 thread each, the slower / quiet 1 thread: %.2f (<= 1.25: %s)\n", w_1 / q_1, yn(w_1 / q_1 <= 1.25)
}'
