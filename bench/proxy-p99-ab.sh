#!/usr/bin/env bash
# p99 added at full load (wrk -t1 -c4 on allowed pages, as bench/proxy-vs-e2guardian.sh measures
# it) by this tree's Lookout and another revision's, both running side by side on one origin,
# round after round: nginx direct, then each Lookout, their order swapped every round. A run of
# bench/proxy-vs-e2guardian.sh takes that p99 once, minutes after nginx's own; at full load on
# two shared cores it moves by a few tenths of a millisecond from run to run, so one build's
# run against another's says little. Here each round's figures are taken within half a minute
# of each other, and the medians of many rounds are compared.
#
#   bench/proxy-p99-ab.sh BASE      env: ROUNDS=8 DURATION=10 (seconds a measurement),
#                                        LOG_THIS=true LOG_BASE=true (log allowed requests),
#                                        FIRST=this (or base: which Lookout starts first)
#
# The Lookout started first had the higher p99 in four of six runs on 2026-12-07 (by 0.07-0.16
# ms at the median, whichever build it was): run twice, FIRST=this and FIRST=base, and compare
# each build's two medians with the other's.
#
# BASE is a git revision, built in a worktree with a target folder of its own; with BASE=. both
# Lookouts are this tree's build (to compare settings, e.g. LOG_BASE=false). Needs nginx-light
# and wrk, ../shared/data/ut1. Prints each round (p50, p99 in ms, requests/s) and the medians of
# each Lookout's p99 added (its p99 minus nginx's own in the same round).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: bench/proxy-p99-ab.sh BASE (a git revision, or . for this tree)}
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-10}
DATA=${LOOKOUT_DATA:-../shared/data}
OUT=bench/out/p99-ab
ORIGIN_PORT=15600; THIS_PORT=15610; BASE_PORT=15611
for p in nginx wrk; do
  command -v $p >/dev/null || { echo "$p is not installed: apt-get install -y nginx-light wrk" >&2; exit 2; }
done
[ -d "$DATA/ut1" ] || { echo "no UT1 data at $DATA/ut1" >&2; exit 2; }
ROOT=$(pwd)
cargo build --release -q -p lookout
THIS_BIN=$OUT-this-lookout
rm -rf "$OUT"; mkdir -p "$OUT"
cp target/release/lookout "$THIS_BIN"
BASE_BIN=$THIS_BIN
if [ "$BASE" != "." ]; then
  WT="$ROOT/bench/out/p99-ab-base-tree"
  git worktree remove --force "$WT" 2>/dev/null || true
  git worktree add -q --detach "$WT" "$BASE"
  trap 'git worktree remove --force "$WT" 2>/dev/null || true' EXIT
  # Its own target folder, kept between runs (bench/out is not committed). The worktree's files
  # are new, so cargo rebuilds what differs from the last revision built there.
  (cd "$WT" && CARGO_TARGET_DIR="$ROOT/bench/out/p99-ab-target" cargo build --release -q -p lookout)
  BASE_BIN=$ROOT/bench/out/p99-ab-target/release/lookout
fi
OUT=$(cd "$OUT" && pwd)
# shellcheck source=bench/proxy-origin.sh
source bench/proxy-origin.sh
if [ "$BASE" != "." ]; then
  trap 'cleanup; git worktree remove --force "$WT" 2>/dev/null || true' EXIT
fi
start_origin
# $1 = label, $2 = binary, $3 = port, $4 = log allowed requests.
start_lookout() {
  lookout_config "$4" "$3" | sed "s|lookout-data-$4|lookout-data-$1|" > "$OUT/$1.toml"
  "$2" serve -c "$OUT/$1.toml" 2> "$OUT/$1.log" &
  PIDS+=($!); LOOKOUTS+=($!)
  wait_http "http://127.0.0.1:$3"
}
LOOKOUTS=()
if [ "${FIRST:-this}" = base ]; then
  start_lookout base "$BASE_BIN" $BASE_PORT "${LOG_BASE:-true}"
  start_lookout this "$THIS_BIN" $THIS_PORT "${LOG_THIS:-true}"
else
  start_lookout this "$THIS_BIN" $THIS_PORT "${LOG_THIS:-true}"
  start_lookout base "$BASE_BIN" $BASE_PORT "${LOG_BASE:-true}"
fi
added_this=(); added_base=(); rps_this=(); rps_base=()
printf '%-6s %-22s %-22s %-22s\n' round "direct p50 p99 r/s" "this p50 p99 r/s" "$BASE p50 p99 r/s"
for r in $(seq "$ROUNDS"); do
  d=$(latency "")
  if [ $((r % 2)) = 1 ]; then
    a=$(latency "http://127.0.0.1:$THIS_PORT"); b=$(latency "http://127.0.0.1:$BASE_PORT")
  else
    b=$(latency "http://127.0.0.1:$BASE_PORT"); a=$(latency "http://127.0.0.1:$THIS_PORT")
  fi
  printf '%-6s %-22s %-22s %-22s\n' "$r" "$d" "$a" "$b"
  read -r _ d99 _ <<< "$d"; read -r _ a99 ar <<< "$a"; read -r _ b99 br <<< "$b"
  added_this+=("$(echo "$a99 - $d99" | bc -l)"); added_base+=("$(echo "$b99 - $d99" | bc -l)")
  rps_this+=("$ar"); rps_base+=("$br")
done
printf 'p99 added at wrk -t1 -c4, median of %s rounds: this tree %.3f ms (log allowed: %s), %s %.3f ms (log allowed: %s); started first: %s\n' \
  "$ROUNDS" "$(median "${added_this[@]}")" "${LOG_THIS:-true}" "$BASE" "$(median "${added_base[@]}")" "${LOG_BASE:-true}" "${FIRST:-this}"
printf 'requests/s, medians: this tree %s, %s %s\n' "$(median "${rps_this[@]}")" "$BASE" "$(median "${rps_base[@]}")"
# Each prints its monitoring's counts (pages and URLs scanned, dropped) when it stops.
for p in "${LOOKOUTS[@]}"; do kill -TERM "$p"; wait "$p" 2>/dev/null || true; done
for l in this base; do
  echo "$l: $(grep -h '^monitoring: {' "$OUT/$l.log" | tail -1)"
done
