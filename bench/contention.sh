#!/bin/sh
# Training speed when the machine is not ours alone: `snnwb bench` timed
# quiet, beside one busy process (a shell loop), and as two trainings at
# once, each with the default threads (one per core) and with
# SNNWB_THREADS=1. The settings take turns ROUNDS times, so that a slow or
# fast spell of a shared machine falls on all of them (default and one
# thread swap places every round); the table gives the median over the
# rounds of the bench's median ms per step. Each ratio checked at the end is
# taken within each round, from runs minutes apart at most, and its median
# over the rounds is printed with the lowest and highest round: a ratio
# whose range spans the line is a tie within this machine's noise.
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
    if [ $((r % 2)) -eq 1 ]; then
      run_setting "$setting" ""
      run_setting "$setting" 1
    else
      run_setting "$setting" 1
      run_setting "$setting" ""
    fi
  done
  echo "round $r of $rounds done" >&2
done

q_d=$(median "$tmp/quiet-d"); q_1=$(median "$tmp/quiet-1")
b_d=$(median "$tmp/busy-d"); b_1=$(median "$tmp/busy-1")
p_d=$(median "$tmp/pair-d"); p_1=$(median "$tmp/pair-1")
w_d=$(median "$tmp/pair-worst-d"); w_1=$(median "$tmp/pair-worst-1")
# Line r of each file is round r: the per-round ratio A/B of two files,
# then its median, lowest and highest ("0.98 0.91-1.06").
ratio_stats () {
  paste "$1" "$2" | awk '{ print $1 / $2 }' | sort -n |
    awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f %.2f-%.2f", m, v[1], v[NR] }'
}
keep=$(ratio_stats "$tmp/quiet-d" "$tmp/busy-d")
busy_vs_1=$(ratio_stats "$tmp/busy-d" "$tmp/busy-1")
pair_d=$(ratio_stats "$tmp/pair-worst-d" "$tmp/quiet-1")
pair_1=$(ratio_stats "$tmp/pair-worst-1" "$tmp/quiet-1")
awk -v net="$net" -v method="$method" -v T="$T" -v n="$threads_default" -v rounds="$rounds" -v steps="$steps" \
    -v q_d="$q_d" -v q_1="$q_1" -v b_d="$b_d" -v b_1="$b_1" -v p_d="$p_d" -v p_1="$p_1" -v w_d="$w_d" -v w_1="$w_1" \
    -v keep="$keep" -v busy_vs_1="$busy_vs_1" -v pair_d="$pair_d" -v pair_1="$pair_1" '
function yn(ok) { return ok ? "yes" : "NO" }
# "median low-high" -> the median
function med(s) { split(s, f, " "); return f[1] + 0 }
function range(s) { split(s, f, " "); return "rounds " f[2] }
BEGIN {
  printf "%s %s T=%s: ms per step (median of %d rounds of %d steps; %d cores)\n\n", net, method, T, rounds, steps, n
  printf "| setting | default threads (%d) | 1 thread | default / 1 thread |\n", n
  printf "|---|---:|---:|---:|\n"
  printf "| quiet | %.1f | %.1f | %.2f |\n", q_d, q_1, q_d / q_1
  printf "| beside one busy process | %.1f | %.1f | %.2f |\n", b_d, b_1, b_d / b_1
  printf "| two trainings at once (each) | %.1f | %.1f | %.2f |\n", p_d, p_1, p_d / p_1
  printf "| two at once, the slower | %.1f | %.1f | %.2f |\n\n", w_d, w_1, w_d / w_1
  printf "Ratios within each round (median; %s):\n", "lowest-highest round"
  printf "beside a busy process, default threads keep %.2f of their quiet speed (%s; >= 0.5: %s)\n", med(keep), range(keep), yn(med(keep) >= 0.5)
  printf "beside a busy process, default threads / 1 thread: %.2f (%s; <= 1: %s)\n", med(busy_vs_1), range(busy_vs_1), yn(med(busy_vs_1) <= 1)
  printf "two at once, default threads, the slower / quiet 1 thread: %.2f (%s; <= 1.25: %s)\n", med(pair_d), range(pair_d), yn(med(pair_d) <= 1.25)
  printf "two at once, 1 thread each, the slower / quiet 1 thread: %.2f (%s; <= 1.25: %s)\n", med(pair_1), range(pair_1), yn(med(pair_1) <= 1.25)
}'
