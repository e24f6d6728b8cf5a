#!/usr/bin/env bash
# Lookout's DNS filter vs dnsmasq: the same blocklist (UT1 gambling, drugs, redirector, malware, phishing, every name
# listed), the same local upstream (a third dnsmasq answering every name), the same query file,
# dnsperf against each in the same run.
#
#   bench/dns-vs-dnsmasq.sh     env: DURATION=10 CLIENTS=4 QUERIES=200000 RUNS=3 (median)
#                               LOOKOUT_BIN=path (another build, for an A/B; default: built here)
#
# Needs: dnsmasq, dnsperf (apt-get install -y dnsmasq dnsperf), ../shared/data/ut1.
# Both filters answer blocked names with 0.0.0.0; unlisted names go to the upstream and are
# cached by both. Lookout runs twice: logging every query (its default) and logging blocked
# queries only (`[log] allowed = false`).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-4}
QUERIES=${QUERIES:-200000}
RUNS=${RUNS:-3}
DATA=${LOOKOUT_DATA:-../shared/data}
OUT=bench/out/dnsmasq
CATS=(gambling drogue redirector malware phishing)
UP_PORT=15400; DNSMASQ_PORT=15401; LOOKOUT_PORT=15402; CONSOLE_PORT=15403

for p in dnsmasq dnsperf; do
  command -v $p >/dev/null || { echo "$p is not installed: apt-get install -y dnsmasq dnsperf" >&2; exit 2; }
done
[ -d "$DATA/ut1" ] || { echo "no UT1 data at $DATA/ut1" >&2; exit 2; }

if [ -z "${LOOKOUT_BIN:-}" ]; then
  cargo build --release -q -p lookout
  LOOKOUT_BIN=./target/release/lookout
fi
rm -rf "$OUT"; mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# One blocklist, two spellings: domains for Lookout, a hosts file for dnsmasq.
cat $(for c in "${CATS[@]}"; do echo "$DATA/ut1/$c/domains"; done) \
  | tr 'A-Z' 'a-z' | grep -E '^[a-z0-9._-]+\.[a-z0-9-]+$' | grep -vE '^[0-9.]+$' | sort -u > "$OUT/blocked.domains"
awk '{print "0.0.0.0 " $1}' "$OUT/blocked.domains" > "$OUT/blocked.hosts"
echo "blocklist: $(wc -l < "$OUT/blocked.domains") names"

# Queries: half listed names, half unlisted names from a pool of 20,000 drawn Zipf-like
# (s = 1, as real traffic: a few popular names, a long tail), so caches matter as in life.
python3 - "$OUT" "$QUERIES" <<'PY'
import bisect, itertools, random, sys
out, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
blocked = open(f"{out}/blocked.domains").read().split()
weights = list(itertools.accumulate(1 / (k + 1) for k in range(20000)))
with open(f"{out}/queries.txt", "w") as f:
    for i in range(n):
        if i % 2 == 0:
            f.write(f"{random.choice(blocked)} A\n")
        else:
            k = bisect.bisect(weights, random.random() * weights[-1])
            f.write(f"host{k}.allowed-example.org A\n")
PY

# The shared upstream: dnsmasq answering every name with 203.0.113.1, TTL 300 (so both
# filters may cache its answers, as they would a real resolver's).
dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --no-poll --port=$UP_PORT \
  --listen-address=127.0.0.1 --bind-interfaces --address=/#/203.0.113.1 --local-ttl=300 --cache-size=0 \
  --pid-file="$OUT/up.pid" 2>"$OUT/up.log" &
PIDS+=($!)

dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --no-poll --port=$DNSMASQ_PORT \
  --listen-address=127.0.0.1 --bind-interfaces --addn-hosts="$OUT/blocked.hosts" \
  --cache-size=10000 --server=127.0.0.1#$UP_PORT --pid-file="$OUT/dnsmasq.pid" 2>"$OUT/dnsmasq.log" &
DNSMASQ_PID=$!; PIDS+=($DNSMASQ_PID)

lookout_config() { # $1 = log allowed (true/false)
  cat <<EOF
[[lists.source]]
name = "bench"
path = "$OUT/blocked.domains"
format = "domains"
categories = ["gambling"]

[serve]
data_dir = "$OUT/lookout-data-$1"

[proxy]
enabled = false

[dns]
listen = "127.0.0.1:$LOOKOUT_PORT"
upstreams = ["127.0.0.1:$UP_PORT"]
blocked_answer = "block-page"
block_page_ipv4 = "0.0.0.0"
cache_entries = 10000

[log]
allowed = $1

[console]
listen = "127.0.0.1:$CONSOLE_PORT"
EOF
}

wait_port() { for _ in $(seq 100); do dnsperf -s 127.0.0.1 -p "$1" -d <(echo "probe.example A") -l 1 -c 1 >/dev/null 2>&1 && return; sleep 0.1; done; }

run_dnsperf() { # $1 = port -> prints QPS (the median of RUNS runs; the last run's file is kept)
  local qps=()
  for _ in $(seq "$RUNS"); do
    dnsperf -s 127.0.0.1 -p "$1" -d "$OUT/queries.txt" -l "$DURATION" -c "$CLIENTS" -T 1 > "$OUT/dnsperf-$1.txt" 2>&1
    qps+=("$(awk '/Queries per second/ {print $4}' "$OUT/dnsperf-$1.txt")")
  done
  printf '%s\n' "${qps[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
# Queries answered in the last dnsperf run.
answered() { awk '/Queries completed/ {print $3}' "$OUT/dnsperf-$1.txt"; }

wait_port $DNSMASQ_PORT
C0=$(cpu_s $DNSMASQ_PID)
DNSMASQ_QPS=$(run_dnsperf $DNSMASQ_PORT)
DNSMASQ_US=$(echo "($(cpu_s $DNSMASQ_PID) - $C0) * 1000000 / ($(answered $DNSMASQ_PORT) * $RUNS)" | bc -l)
DNSMASQ_RSS=$(rss_kb $DNSMASQ_PID)
kill $DNSMASQ_PID

declare -A QPS RSS LOST US LOGGED
for logall in true false; do
  lookout_config $logall > "$OUT/lookout-$logall.toml"
  "$LOOKOUT_BIN" serve -c "$OUT/lookout-$logall.toml" 2>"$OUT/lookout-$logall.log" &
  LPID=$!; PIDS+=($LPID)
  wait_port $LOOKOUT_PORT
  C0=$(cpu_s $LPID)
  QPS[$logall]=$(run_dnsperf $LOOKOUT_PORT)
  US[$logall]=$(echo "($(cpu_s $LPID) - $C0) * 1000000 / ($(answered $LOOKOUT_PORT) * $RUNS)" | bc -l)
  RSS[$logall]=$(rss_kb $LPID)
  LOST[$logall]=$(awk '/Queries lost/ {print $3}' "$OUT/dnsperf-$LOOKOUT_PORT.txt")
  # What the activity log kept and lost (queue full): a rate bought by dropping events is no rate.
  LOGGED[$logall]=$(curl -s "http://127.0.0.1:$CONSOLE_PORT/metrics" | awk '/^lookout_log_events_written_total/ {w=$2} /^lookout_log_events_dropped_total/ {d=$2} END {printf "%d written, %d dropped", w, d}')
  kill -TERM $LPID; wait $LPID 2>/dev/null || true
done

echo
echo "queries: $QUERIES in the file (half blocked, half unlisted), dnsperf -c $CLIENTS, ${DURATION}s, median of $RUNS runs"
row() { printf '%-36s %10.0f %14.1f %10.1f\n' "$1" "$2" "$3" "$(echo "$4/1024" | bc -l)"; }
printf '%-36s %10s %14s %10s\n' "" "QPS" "CPU us/query" "RSS (MB)"
row "dnsmasq $(dnsmasq --version | head -1 | awk '{print $3}')" "$DNSMASQ_QPS" "$DNSMASQ_US" "$DNSMASQ_RSS"
row "Lookout (logging every query)" "${QPS[true]}" "${US[true]}" "${RSS[true]}"
row "Lookout (logging blocked queries)" "${QPS[false]}" "${US[false]}" "${RSS[false]}"
printf 'ratio Lookout/dnsmasq: %.2f (logging every query), %.2f (blocked only)\n' \
  "$(echo "${QPS[true]}/$DNSMASQ_QPS" | bc -l)" "$(echo "${QPS[false]}/$DNSMASQ_QPS" | bc -l)"
echo "queries lost by dnsperf: Lookout ${LOST[true]} / ${LOST[false]}"
echo "Lookout's activity log: ${LOGGED[true]} (logging every query); ${LOGGED[false]} (blocked only)"
echo "(dnsperf shares this machine's cores with the server; CPU us/query is the server's own cost.)"
