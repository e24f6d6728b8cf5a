# Sourced by bench/proxy-vs-e2guardian.sh and bench/proxy-instructions.sh: what both set up the
# same way, so that their figures are of the same requests. The caller sets OUT (an existing
# folder, absolute), DATA and ORIGIN_PORT first; every process started goes into PIDS, killed
# when the script exits.

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
