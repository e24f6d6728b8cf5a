#!/usr/bin/env bash
# Instructions a proxied request costs `lookout serve`, counted by callgrind: logging every
# request vs logging blocked requests only, in the same run, on the same input (the setup of
# bench/proxy-vs-e2guardian.sh: nginx origin, a 2 KB page of short paragraphs, the counting URL,
# monitoring on). Instruction counts do not depend on how busy the machine is, so this says
# what logging costs where wall-clock runs on two shared cores are noisy; it does not count the
# kernel's work (system calls, thread switches), which throughput runs do.
#
#   bench/proxy-instructions.sh      env: SECONDS_COUNTED=20 (wrk -t1 -c2 under callgrind),
#                                         LOOKOUT_BIN (another build to count; default: this tree's)
#
# Needs: valgrind, nginx-light, wrk (apt-get install -y valgrind nginx-light wrk),
# ../shared/data/ut1. Prints, for each Lookout, the requests served while counting, the
# instructions of all its threads per request, and the parts that differ most (inclusive, per
# request): the log's writer, the task that takes events from the queue for it and frees them
# after (write_loop), page text extraction (html_text), the monitoring's scan. A part is 0 when
# no function of that name is in the dump (write_loop's was missing from one of three runs of one
# build: read the total, not that part, then).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTED=${SECONDS_COUNTED:-20}
DATA=${LOOKOUT_DATA:-../shared/data}
OUT=bench/out/instructions
ORIGIN_PORT=15650; LOOKOUT_PORT=15652; LOOKOUT_QUIET_PORT=15653

for p in valgrind callgrind_control callgrind_annotate nginx wrk; do
  command -v $p >/dev/null || { echo "$p is not installed: apt-get install -y valgrind nginx-light wrk" >&2; exit 2; }
done
[ -d "$DATA/ut1" ] || { echo "no UT1 data at $DATA/ut1" >&2; exit 2; }
if [ -z "${LOOKOUT_BIN:-}" ]; then
  cargo build --release -q -p lookout
  LOOKOUT_BIN=./target/release/lookout
fi
[ -x "$LOOKOUT_BIN" ] || { echo "no Lookout to run at $LOOKOUT_BIN" >&2; exit 2; }

rm -rf "$OUT"; mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# shellcheck source=bench/proxy-origin.sh
source bench/proxy-origin.sh
start_origin

# Inclusive instructions of the functions named by $2 (a regular expression) in dump $1, per
# request ($3 requests): the largest count, as a function's own line carries its total.
part() {
  callgrind_annotate --inclusive=yes "$1" 2>/dev/null \
    | awk -v re="$2" -v n="$3" '$0 ~ re && $1 ~ /^[0-9,]+$/ { v = $1; gsub(",", "", v); if (v + 0 > m) m = v + 0 }
        END { printf "%.0f", m / n }'
}

declare -A IR PARTS
for logall in true false; do
  port=$LOOKOUT_PORT; [ $logall = true ] || port=$LOOKOUT_QUIET_PORT
  lookout_config $logall $port > "$OUT/lookout-$logall.toml"
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind-$logall.%p" \
    "$LOOKOUT_BIN" serve -c "$OUT/lookout-$logall.toml" > "$OUT/lookout-$logall.out" 2> "$OUT/lookout-$logall.log" &
  lk=$!; PIDS+=($lk)
  up=""
  for _ in $(seq 300); do
    curl -s -m 5 -o /dev/null -x "http://127.0.0.1:$port" "http://127.0.0.1:$ORIGIN_PORT/page.html" && { up=1; break; }
    kill -0 "$lk" 2>/dev/null || break
    sleep 1
  done
  [ -n "$up" ] || { echo "Lookout did not answer on port $port: see $OUT/lookout-$logall.log" >&2; exit 1; }
  # Warm up (connections, caches, the log's first pages), then count from zero.
  wrk -t1 -c2 -d5s -s "$OUT/allowed.lua" "http://127.0.0.1:$port" > /dev/null
  sleep 2
  callgrind_control -z "$lk" > /dev/null 2>&1
  wrk -t1 -c2 -d"${COUNTED}s" -s "$OUT/allowed.lua" "http://127.0.0.1:$port" > "$OUT/wrk-$logall.txt"
  # Time for the log's writer to write the last batch before the dump.
  sleep 3
  callgrind_control -d "$lk" > /dev/null 2>&1
  sleep 1
  kill -TERM "$lk"; wait "$lk" 2>/dev/null || true
  n=$(awk '/requests in/ {print $1}' "$OUT/wrk-$logall.txt")
  if ! [ "${n:-0}" -gt 0 ] 2>/dev/null; then
    echo "wrk served no requests through port $port: see $OUT" >&2
    exit 1
  fi
  dump=$(ls -t "$OUT"/callgrind-$logall.*.1 | head -1)
  total=$(awk '/^summary:/ {print $2}' "$dump")
  IR[$logall]=$((total / n))
  PARTS[$logall]="writer $(part "$dump" '(LogWriter::write_now|log_writer::Inserts::write) ' "$n"), write_loop $(part "$dump" 'events::write_loop' "$n"), html_text $(part "$dump" 'html::html_text ' "$n"), scan $(part "$dump" 'Scanner::scan_with ' "$n")"
  printf 'Lookout, logging %-13s %7d requests counted, %8d instructions a request (%s)\n' \
    "$([ $logall = true ] && echo 'every request' || echo 'blocked only')" "$n" "${IR[$logall]}" "${PARTS[$logall]}"
done
printf 'logging every request adds %.1f%% to the instructions of a request (%d vs %d)\n' \
  "$(echo "(${IR[true]} - ${IR[false]}) * 100 / ${IR[false]}" | bc -l)" "${IR[true]}" "${IR[false]}"
