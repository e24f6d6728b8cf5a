#!/usr/bin/env bash
# Lookout's proxy vs e2guardian: the same blocklist (UT1 gambling), the same nginx origin on
# 127.0.0.1, the same URL mixes, wrk through each in the same run.
#
#   bench/proxy-vs-e2guardian.sh     env: DURATION=10 THREADS=2 CONNECTIONS=50 RUNS=3 (median)
#
# Needs: e2guardian, nginx-light, wrk (apt-get install -y e2guardian nginx-light wrk),
# ../shared/data/ut1. Workloads:
#   allowed  every request an allowed 2 KB page
#   mixed    80% allowed pages, 20% blocked hosts (each listed host once per 1,000 requests)
# Latency at moderate load: wrk -t1 -c4 on allowed pages, direct to nginx and through each
# proxy; "added" is the proxy's p50/p99 minus nginx's own.
# Latency at a fixed rate (open loop): OPEN_RATE requests/s (default 1,000) of allowed pages on
# 8 keep-alive connections for DURATION, each timed from when it was due
# (crates/lookout-testkit/examples/latency_at_rate.rs), direct and through each proxy; wrk's
# -c4 above is a closed loop, so its latency is the queueing of a machine at full load.
# Logging cost: Lookout logging every request vs logging blocked requests only, allowed mix,
# both running, measured alternately, which goes first swapping from run to run (each run's
# figures printed too); also each Lookout's CPU time (user + system, from /proc) per request
# served, which is less at the mercy of how wrk, nginx and Lookout happen to share the cores
# in a run than requests/s are.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
RUNS=${RUNS:-3}
OPEN_RATE=${OPEN_RATE:-1000}
DATA=${LOOKOUT_DATA:-../shared/data}
OUT=bench/out/e2guardian
ORIGIN_PORT=15500; E2G_PORT=15501; LOOKOUT_PORT=15502; LOOKOUT_QUIET_PORT=15503

for p in e2guardian nginx wrk; do
  command -v $p >/dev/null || { echo "$p is not installed: apt-get install -y e2guardian nginx-light wrk" >&2; exit 2; }
done
[ -d "$DATA/ut1" ] || { echo "no UT1 data at $DATA/ut1" >&2; exit 2; }

cargo build --release -q -p lookout
cargo build --release -q -p lookout-testkit --example latency_at_rate
rm -rf "$OUT"; mkdir -p "$OUT/e2g/log"
OUT=$(cd "$OUT" && pwd)
# shellcheck source=bench/proxy-origin.sh
source bench/proxy-origin.sh
start_origin

# e2guardian: the packaged configuration, paths moved to the scratch folder, gambling banned.
cp -r /etc/e2guardian/. "$OUT/e2g/"
grep -rl '/etc/e2guardian' "$OUT/e2g" | xargs sed -i "s|/etc/e2guardian|$OUT/e2g|g"
sed -i -e "s|^filterip =.*|filterip = 127.0.0.1|" -e "s|^filterports =.*|filterports = $E2G_PORT|" \
  -e "s|^nodaemon =.*|nodaemon = on|" -e "s|^httpworkers =.*|httpworkers = 200|" \
  -e "s|^#pidfilename =.*|pidfilename = '$OUT/e2g/e2g.pid'|" \
  -e "s|^#loglocation =.*|loglocation = '$OUT/e2g/log/access.log'|" "$OUT/e2g/e2guardian.conf"
echo ".Include<$OUT/gambling.domains>" >> "$OUT/e2g/lists/bannedsitelist"
# It drops privileges to its own user, which must be able to write its log.
chown -R e2guardian "$OUT/e2g/log" 2>/dev/null || chmod -R a+rwX "$OUT/e2g/log"
e2guardian -N -c "$OUT/e2g/e2guardian.conf" > "$OUT/e2g/stdout.log" 2>&1 &
E2G_PID=$!; PIDS+=($E2G_PID)


# wrk scripts: proxy-style absolute URLs (allowed.lua is start_origin's).
python3 - "$OUT" "$ORIGIN_PORT" <<'PY'
import random, sys
out, port = sys.argv[1], sys.argv[2]
random.seed(11)
hosts = random.sample(open(f"{out}/gambling.domains").read().split(), 200)
urls = []
for i in range(1000):
    urls.append(f"http://{hosts[i // 5]}/" if i % 5 == 0 else f"http://127.0.0.1:{port}/page.html")
with open(f"{out}/mixed.lua", "w") as f:
    f.write("local urls = {\n" + "".join(f'  "{u}",\n' for u in urls) + "}\n")
    f.write("local i = 0\nrequest = function()\n  i = i % #urls + 1\n  return wrk.format(\"GET\", urls[i])\nend\n")
PY

# Median requests/s of RUNS wrk runs: $1 = proxy URL ("" for direct), $2 = script.
rps() {
  local r=()
  for _ in $(seq "$RUNS"); do
    local target=${1:-http://127.0.0.1:$ORIGIN_PORT}
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$OUT/$2.lua" "$target" > "$OUT/wrk.txt" 2>&1
    r+=("$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk.txt")")
  done
  median "${r[@]}"
}
# At OPEN_RATE, direct and through proxy $1 (host:port) alternately, RUNS times each:
# "direct_p50 direct_p99 proxy_p50 proxy_p99 sent failed", medians (failed: most in a run).
open_latency() {
  local d50=() d99=() p50=() p99=() sent=0 failed=0 a b n e
  for _ in $(seq "$RUNS"); do
    read -r a b _ _ _ < <(./target/release/examples/latency_at_rate \
      "http://127.0.0.1:$ORIGIN_PORT/page.html" "$OPEN_RATE" "$DURATION" 8)
    d50+=("$a"); d99+=("$b")
    read -r a b _ n e < <(./target/release/examples/latency_at_rate \
      "http://127.0.0.1:$ORIGIN_PORT/page.html" "$OPEN_RATE" "$DURATION" 8 "$1")
    p50+=("$a"); p99+=("$b"); sent=$n; [ "$e" -gt "$failed" ] && failed=$e
  done
  echo "$(median "${d50[@]}") $(median "${d99[@]}") $(median "${p50[@]}") $(median "${p99[@]}") $sent $failed"
}
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

wait_http "http://127.0.0.1:$E2G_PORT"
# Check that both proxies block the same way before measuring.
BLOCKED_HOST=$(head -1 "$OUT/gambling.domains")

declare -A R
R[direct_lat]=$(latency "")
R[e2g_allowed]=$(rps "http://127.0.0.1:$E2G_PORT" allowed)
R[e2g_mixed]=$(rps "http://127.0.0.1:$E2G_PORT" mixed)
R[e2g_lat]=$(latency "http://127.0.0.1:$E2G_PORT")
R[e2g_open]=$(open_latency "127.0.0.1:$E2G_PORT")
R[e2g_rss]=$(rss_mb $E2G_PID)
E2G_BLOCK=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -x "http://127.0.0.1:$E2G_PORT" "http://$BLOCKED_HOST/")
kill -KILL $E2G_PID

# Logging cost: two Lookouts at once (logging every request / blocked only), measured
# alternately, run after run, so that drift in the machine's state falls on both alike.
declare -A LPIDS
for logall in true false; do
  port=$LOOKOUT_PORT; [ $logall = true ] || port=$LOOKOUT_QUIET_PORT
  lookout_config $logall $port > "$OUT/lookout-$logall.toml"
  ./target/release/lookout serve -c "$OUT/lookout-$logall.toml" 2> "$OUT/lookout-$logall.log" &
  LPIDS[$logall]=$!; PIDS+=($!)
  wait_http "http://127.0.0.1:$port"
done
# CPU time of process $1 so far (user + system), in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One run through the Lookout on port $1, process $2: sets RUN_RPS (requests/s) and RUN_CPU
# (its CPU time per request served, us). Stops the script if wrk served nothing.
logged_run() {
  local before n
  before=$(ticks "$2")
  RUN_RPS=$(RUNS=1 rps "http://127.0.0.1:$1" allowed)
  n=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
  if ! [ "${n:-0}" -gt 0 ] 2>/dev/null; then
    echo "wrk served no requests through port $1: see $OUT/wrk.txt" >&2
    exit 1
  fi
  RUN_CPU=$(printf '%.2f' "$(echo "($(ticks "$2") - $before) * 1000000 / $(getconf CLK_TCK) / $n" | bc -l)")
}
# The order swaps from run to run (logging first, then blocked-only first, ...): a machine that
# speeds up or slows down within a sitting then favours neither side of a pair.
rps_true=(); rps_false=(); cpu_true=(); cpu_false=()
for i in $(seq "$RUNS"); do
  order="true false"; [ $((i % 2)) = 1 ] || order="false true"
  for logall in $order; do
    port=$LOOKOUT_PORT; [ $logall = true ] || port=$LOOKOUT_QUIET_PORT
    logged_run $port "${LPIDS[$logall]}"
    if [ $logall = true ]; then
      rps_true+=("$RUN_RPS"); cpu_true+=("$RUN_CPU")
    else
      rps_false+=("$RUN_RPS"); cpu_false+=("$RUN_CPU")
    fi
  done
done
R[lk_true_allowed]=$(median "${rps_true[@]}")
R[lk_false_allowed]=$(median "${rps_false[@]}")
R[lk_true_cpu]=$(median "${cpu_true[@]}")
R[lk_false_cpu]=$(median "${cpu_false[@]}")
R[lk_mixed]=$(rps "http://127.0.0.1:$LOOKOUT_PORT" mixed)
R[lk_lat]=$(latency "http://127.0.0.1:$LOOKOUT_PORT")
R[lk_open]=$(open_latency "127.0.0.1:$LOOKOUT_PORT")
R[lk_rss]=$(rss_mb "${LPIDS[true]}")
LK_BLOCK=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -x "http://127.0.0.1:$LOOKOUT_PORT" "http://$BLOCKED_HOST/")
R[lk_status]=$(curl -s -x "http://127.0.0.1:$LOOKOUT_PORT" http://lookout.invalid/status)
for logall in true false; do kill -TERM "${LPIDS[$logall]}"; wait "${LPIDS[$logall]}" 2>/dev/null || true; done

ratio() { echo "$1 / $2" | bc -l; }
read -r D50 D99 _ <<< "${R[direct_lat]}"; read -r E50 E99 _ <<< "${R[e2g_lat]}"; read -r L50 L99 _ <<< "${R[lk_lat]}"
echo
echo "origin: nginx, 2 KB page; wrk -t$THREADS -c$CONNECTIONS ${DURATION}s, median of $RUNS runs"
echo "blocked page: e2guardian $E2G_BLOCK bytes; Lookout $LK_BLOCK bytes (status, size)"
printf '%-34s %12s %12s %10s\n' "" "allowed r/s" "mixed r/s" "RSS (MB)"
printf '%-34s %12.0f %12.0f %10s\n' "e2guardian $(e2guardian -v 2>&1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)" "${R[e2g_allowed]}" "${R[e2g_mixed]}" "${R[e2g_rss]}"
printf '%-34s %12.0f %12.0f %10s\n' "Lookout (logging every request)" "${R[lk_true_allowed]}" "${R[lk_mixed]}" "${R[lk_rss]}"
printf '%-34s %12.0f %12s\n' "Lookout (logging blocked only)" "${R[lk_false_allowed]}" "-"
printf 'ratio Lookout/e2guardian: %.2f (allowed), %.2f (mixed)\n' \
  "$(ratio "${R[lk_true_allowed]}" "${R[e2g_allowed]}")" "$(ratio "${R[lk_mixed]}" "${R[e2g_mixed]}")"
echo "allowed r/s run by run, logging every request: ${rps_true[*]}; blocked only: ${rps_false[*]}"
printf 'logging every request costs %.1f%% of allowed throughput\n' \
  "$(echo "(1 - ${R[lk_true_allowed]} / ${R[lk_false_allowed]}) * 100" | bc -l)"
# The same, run by run (each run logging every request against the blocked-only run beside
# it), as the machine drifts within a sitting: the ratio of medians above can hide that.
pairs=()
for i in "${!rps_true[@]}"; do
  pairs+=("$(echo "(1 - ${rps_true[$i]} / ${rps_false[$i]}) * 100" | bc -l)")
done
printf '  pair by pair: median %.1f%% (%s runs each)\n' "$(median "${pairs[@]}")" "$RUNS"
echo "Lookout CPU per allowed request run by run, us, logging every request: ${cpu_true[*]}; blocked only: ${cpu_false[*]}"
printf 'logging every request adds %.1f%% to Lookout'"'"'s CPU per request (medians %.2f / %.2f us)\n' \
  "$(echo "(${R[lk_true_cpu]} / ${R[lk_false_cpu]} - 1) * 100" | bc -l)" "${R[lk_true_cpu]}" "${R[lk_false_cpu]}"
printf 'latency at -t1 -c4, ms (p50 / p99): nginx direct %.3f / %.3f; e2guardian %.3f / %.3f (+%.3f p99); Lookout %.3f / %.3f (+%.3f p99)\n' \
  "$D50" "$D99" "$E50" "$E99" "$(echo "$E99 - $D99" | bc -l)" "$L50" "$L99" "$(echo "$L99 - $D99" | bc -l)"
read -r ED50 ED99 OE50 OE99 OES OEE <<< "${R[e2g_open]}"
read -r LD50 LD99 OL50 OL99 OLS OLE <<< "${R[lk_open]}"
printf 'latency at %s req/s (open loop, each beside nginx direct, median of %s), ms (p50 / p99): e2guardian %.3f / %.3f vs direct %.3f / %.3f (+%.3f p99, %s of %s failed); Lookout %.3f / %.3f vs direct %.3f / %.3f (+%.3f p99, %s of %s failed)\n' \
  "$OPEN_RATE" "$RUNS" "$OE50" "$OE99" "$ED50" "$ED99" "$(echo "$OE99 - $ED99" | bc -l)" "$OEE" "$OES" \
  "$OL50" "$OL99" "$LD50" "$LD99" "$(echo "$OL99 - $LD99" | bc -l)" "$OLE" "$OLS"
echo "Lookout status after the runs: ${R[lk_status]}"
echo "Lookout monitoring (page text and URLs scanned; dropped = queue full): $(grep -h '^monitoring: {' "$OUT"/lookout-true.log | tail -1)"
