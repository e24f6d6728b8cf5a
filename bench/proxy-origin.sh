# Sourced by bench/proxy-vs-e2guardian.sh, bench/proxy-instructions.sh and bench/proxy-p99-ab.sh:
# what they set up and measure the same way, so that their figures are of the same requests. The
# caller sets OUT (an existing folder, absolute), DATA and ORIGIN_PORT first (and DURATION, for
# `latency`); every process started goes into PIDS, killed when the script exits.

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# The list (UT1 gambling, plain domains), the page (2 KB of short paragraphs), nginx serving it
# on 127.0.0.1:$ORIGIN_PORT, and the wrk script of allowed requests (allowed.lua).
start_origin() {
  mkdir -p "$OUT/www" "$OUT/nginx"
  grep -E '^[a-z0-9._-]+\.[a-z0-9-]+$' "$DATA/ut1/gambling/domains" | sort -u > "$OUT/gambling.domains"
  python3 -c "print('<!doctype html><title>page</title>' + '<p>Lorem ipsum dolor sit amet.</p>' * 56)" > "$OUT/www/page.html"
  cat > "$OUT/nginx/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$ORIGIN_PORT; root $OUT/www; keepalive_requests 100000; }
}
EOF
  nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" &
  PIDS+=($!)
  # Proxy-style absolute URLs. The query string counts up, so that one logged row differs from
  # the next as real traffic's do (the log's writer binds only the values that changed since
  # the row before); nginx serves the same page whatever the query.
  cat > "$OUT/allowed.lua" <<EOF
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "http://127.0.0.1:$ORIGIN_PORT/page.html?n=" .. n)
end
EOF
}

# Lookout's configuration for the benchmarks: $1 = log allowed requests (true/false), $2 = the
# proxy's port (the console's is 100 above it).
lookout_config() {
  cat <<EOF
[[lists.source]]
name = "ut1-gambling"
path = "$OUT/gambling.domains"
format = "domains"
categories = ["gambling"]

[groups.bench]
block = ["gambling"]

[[networks]]
cidr = "127.0.0.0/8"
group = "bench"

[serve]
data_dir = "$OUT/lookout-data-$1"

[proxy]
listen = "127.0.0.1:$2"

# The benchmark's origin runs on this machine, which the proxy reaches only when told.
[[proxy.internal]]
cidr = "127.0.0.1/32"

[dns]
enabled = false

[log]
allowed = $1

[console]
listen = "127.0.0.1:$(($2 + 100))"
EOF
}

# Waits until a proxy at $1 serves the origin's page.
wait_http() { for _ in $(seq 100); do curl -s -m 2 -o /dev/null -x "$1" "http://127.0.0.1:$ORIGIN_PORT/page.html" && return; sleep 0.2; done; echo "no answer from $1 (see $OUT)" >&2; exit 1; }

# The median of the numbers given (the lower middle one of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# "p50 p99 requests/s" (ms, ms) of one `wrk -t1 -c4` run of allowed pages, the latency at full
# load; $1 = a proxy's URL, or "" for nginx direct.
latency() {
  local target=${1:-http://127.0.0.1:$ORIGIN_PORT}
  wrk -t1 -c4 -d"${DURATION}s" --latency -s "$OUT/allowed.lua" "$target" > "$OUT/lat.txt" 2>&1
  awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
       /^ +50%/ {p50 = ms($2)} /^ +99%/ {p99 = ms($2)} /Requests\/sec/ {r = $2}
       END {printf "%.3f %.3f %.0f\n", p50, p99, r}' "$OUT/lat.txt"
}
