#!/usr/bin/env bash
# Instructions Lookout's scanner spends on the scanning benchmark's texts (prose, plain, risky:
# crates/lookout-scan/benches/texts), counted by callgrind over a fixed number of passes of
# 64 KiB pages (examples/scan_pages.rs; one pass first, uncounted, to grow the buffers). Printed
# per KiB of text: the whole scan, normalising, the automaton's walk, and the rest (exceptions,
# matches to findings, evidence). Counts do not depend on how busy the machine is: use them to
# compare two builds where criterion's wall-clock figures move by 10-20% from run to run. They
# say nothing of cache misses (the walk waits on its table's rows), which criterion does.
#
#   bench/scan-instructions.sh       env: BASE=<git revision> (count it too, on the same text,
#                                         and print new/base), TEXTS="prose plain risky", PASSES=2
#
# Needs: valgrind (apt-get install -y valgrind). A part is printed as 0 when the dump names no
# such function (inlined): read the total then.
set -euo pipefail
cd "$(dirname "$0")/.."
PASSES=${PASSES:-2}
TEXTS=${TEXTS:-prose plain risky}
OUT=bench/out/scan-instructions
for p in valgrind callgrind_annotate; do
  command -v $p >/dev/null || { echo "$p is not installed: apt-get install -y valgrind" >&2; exit 2; }
done
rm -rf "$OUT"; mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROOT=$(pwd)

cargo build --release -q -p lookout-scan --example scan_pages
BINS=("this tree=$ROOT/target/release/examples/scan_pages")
if [ -n "${BASE:-}" ]; then
  WT="$OUT/base-tree"
  git worktree add -q --detach "$WT" "$BASE"
  trap 'git worktree remove --force "$WT" 2>/dev/null || true' EXIT
  # The revision's scanner, this tree's driver and texts (which may be newer than it).
  mkdir -p "$WT/crates/lookout-scan/examples" "$WT/crates/lookout-scan/benches/texts"
  cp crates/lookout-scan/examples/scan_pages.rs "$WT/crates/lookout-scan/examples/"
  cp crates/lookout-scan/benches/texts/mod.rs "$WT/crates/lookout-scan/benches/texts/"
  # A target folder of its own, kept between runs (bench/out is not committed).
  (cd "$WT" && CARGO_TARGET_DIR="$ROOT/bench/out/scan-instructions-target" \
    cargo build --release -q -p lookout-scan --example scan_pages)
  BINS+=("$BASE=$ROOT/bench/out/scan-instructions-target/release/examples/scan_pages")
fi

# Inclusive instructions of the function named $2 in dump $1, 0 if not named. callgrind_annotate
# may list a function more than once (its file named two ways); the largest is the whole of it.
part() {
  callgrind_annotate --inclusive=yes --auto=no "$1" 2>/dev/null | awk -v f=":$2" '
    { i = index($0, f); rest = substr($0, i + length(f)) }
    i && (rest == "" || substr(rest, 1, 2) == " [") { gsub(",", "", $1); if ($1 + 0 > max) max = $1 + 0 }
    END { printf "%d\n", max }'
}

printf '%-6s %-14s %9s %11s %11s %9s %9s %9s\n' text build KiB findings total/KiB normalise walk rest
declare -A TOTAL
for text in $TEXTS; do
  for entry in "${BINS[@]}"; do
    label=${entry%%=*}; bin=${entry#*=}
    dump="$OUT/callgrind.$text.${label// /-}"
    line=$(LOOKOUT_TEXTS_ROOT="$ROOT" valgrind --tool=callgrind --toggle-collect='scan_pages::counted' \
      --callgrind-out-file="$dump" "$bin" "$text" "$PASSES" 2>"$dump.log")
    bytes=$(echo "$line" | awk '{print $2}')
    findings=$(echo "$line" | sed -E 's/.* ([0-9]+) findings a pass/\1/')
    total=$(part "$dump" scan_pages::counted)
    norm=$(part "$dump" lookout_scan::normalize::Normalized::normalize)
    walk=$(( $(part "$dump" lookout_scan::scanner::walk_all) + $(part "$dump" lookout_scan::scanner::walk) ))
    kib=$(echo "$bytes * $PASSES / 1024" | bc -l)
    per() { printf '%.0f' "$(echo "$1 / $kib" | bc -l)"; }
    printf '%-6s %-14s %9.0f %11s %11s %9s %9s %9s\n' "$text" "$label" "$(echo "$bytes / 1024" | bc -l)" \
      "$findings" "$(per "$total")" "$(per "$norm")" "$(per "$walk")" "$(per $((total - norm - walk)))"
    TOTAL[$text.$label]=$total
  done
  if [ -n "${BASE:-}" ]; then
    printf '%-6s new/base: %.3f of the instructions\n' "$text" \
      "$(echo "${TOTAL[$text.this tree]} / ${TOTAL[$text.$BASE]}" | bc -l)"
  fi
done
