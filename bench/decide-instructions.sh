#!/usr/bin/env bash
# Instructions a request costs to normalise and decide, on the `lists` benchmark's mixes
# (crates/lookout-loader/benches/requests: uniform, and Zipf-like popularity), counted by
# callgrind over a fixed number of passes (examples/decide_requests.rs; the whole of
# `counted`, every pass). Printed per request: in all, normalising (`NormUrl::parse_into`),
# deciding (`Policy::decide_as`), and of deciding the lookup (`Index::matches`). Counts do not
# depend on how busy the machine is: use them to compare two builds where criterion's
# wall-clock figures move by 10-20% from run to run. They say nothing of cache misses, which
# criterion does.
#
#   bench/decide-instructions.sh       env: MIXES="uniform zipf", PASSES=2
#
# Needs: valgrind (apt-get install -y valgrind), ../shared/data. For two builds, run it on each
# checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PASSES=${PASSES:-2}
MIXES=${MIXES:-uniform zipf}
OUT=bench/out/decide-instructions
for p in valgrind callgrind_annotate; do
  command -v $p >/dev/null || { echo "$p is not installed: apt-get install -y valgrind" >&2; exit 2; }
done
[ -d ../shared/data/ut1 ] || { echo "no UT1 data at ../shared/data/ut1" >&2; exit 2; }
rm -rf "$OUT"; mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

cargo build --release -q -p lookout-loader --example decide_requests
BIN=$(pwd)/target/release/examples/decide_requests

# Inclusive instructions of the function named by $2 (a regular expression) in dump $1: the
# largest count, as a function's own line carries its total.
part() {
  callgrind_annotate --inclusive=yes "$1" 2>/dev/null \
    | awk -v re="$2" '$0 ~ re && $1 ~ /^[0-9,]+$/ { v = $1; gsub(",", "", v); if (v + 0 > m) m = v + 0 }
        END { printf "%.0f", m }'
}

printf '%-8s %9s %9s %10s %9s %8s  %s\n' mix requests total/req normalise decide lookup "commit $(git rev-parse --short HEAD)"
for mix in $MIXES; do
  dump="$OUT/callgrind.$mix"
  valgrind --tool=callgrind --callgrind-out-file="$dump" --toggle-collect='decide_requests::counted' \
    "$BIN" "$mix" "$PASSES" > "$OUT/$mix.out" 2> "$OUT/$mix.log"
  n=$(awk '{print $2}' "$OUT/$mix.out")
  total=$(awk '/^summary:/ {print $2}' "$dump")
  per=$(( n * PASSES ))
  printf '%-8s %9s %9.0f %10.0f %9.0f %8.0f  %s\n' "$mix" "$n" \
    "$(bc -l <<< "$total / $per")" \
    "$(bc -l <<< "$(part "$dump" 'NormUrl::parse_into( \[|$)') / $per")" \
    "$(bc -l <<< "$(part "$dump" 'Policy::decide_as( \[|$)') / $per")" \
    "$(bc -l <<< "$(part "$dump" 'Index::matches( \[|$)') / $per")" \
    "$(cat "$OUT/$mix.out")"
done
