#!/usr/bin/env bash
# Lookout vs squidGuard: the same UT1 categories, the same file of request lines, whole
# process (start, load, decide every line, print), measured in the same run. Both answer in
# Squid's URL-rewrite helper protocol (`ERR`, or `OK ...url=...` to the block page), as each
# would behind Squid; Lookout's own one-line explanations are timed too, for reference.
# `--threads 1` bounds Lookout's whole run, loading the lists included (squidGuard has one
# thread), so "1 thread" rows are one thread from start to end.
#
#   bench/lookups-vs-squidguard.sh [LINES]        (default 1000000)
#   RUNS=3: each program runs this many times; the median is reported.
#
# Needs: squidguard and GNU time (apt-get install -y squidguard time), a release build of
# Lookout (built here), and ../shared/data/ut1.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-1000000}
RUNS=${RUNS:-3}
DATA=${LOOKOUT_DATA:-../shared/data}
OUT=bench/out/squidguard
CATS=(gambling adult drogue redirector malware phishing)

command -v squidGuard >/dev/null || { echo "squidGuard is not installed: apt-get install -y squidguard" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "GNU time is not installed: apt-get install -y time" >&2; exit 2; }
[ -d "$DATA/ut1" ] || { echo "no UT1 data at $DATA/ut1" >&2; exit 2; }

cargo build --release -q -p lookout
rm -rf "$OUT"; mkdir -p "$OUT/db" "$OUT/log"
OUT=$(cd "$OUT" && pwd)

# squidGuard writes .db files beside the lists, so both read one writable copy.
for c in "${CATS[@]}"; do
  mkdir -p "$OUT/db/$c"
  for f in domains urls; do
    if [ -f "$DATA/ut1/$c/$f" ]; then cp "$DATA/ut1/$c/$f" "$OUT/db/$c/$f"; else : > "$OUT/db/$c/$f"; fi
  done
done

{
  echo "dbhome $OUT/db"
  echo "logdir $OUT/log"
  for c in "${CATS[@]}"; do
    echo "dest $c { domainlist $c/domains  urllist $c/urls }"
  done
  printf 'acl { default { pass'
  for c in "${CATS[@]}"; do printf ' !%s' "$c"; done
  echo ' all  redirect http://blocked.example/?cat=%t&url=%u } }'
} > "$OUT/squidGuard.conf"

{
  echo '[[lists.source]]'
  echo 'name = "ut1"'
  echo "path = \"$OUT/db\""
  echo 'format = "ut1"'
  echo '[groups.bench]'
  echo 'block = ["gambling", "pornography", "drugs", "circumvention", "malware", "phishing"]'
  echo 'blocked_downloads = []'
} > "$OUT/lookout.toml"

# Requests: a third listed hosts (as www. subdomains, with a path), a third unlisted
# neighbours of listed hosts, a third URL-list entries with a page below them (or, for an
# entry with a query, one more parameter).
python3 - "$OUT" "$LINES" "${CATS[@]}" <<'PY'
import random, sys
out, lines, cats = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
random.seed(1)
domains, urls = [], []
for c in cats:
    for name, bucket in (("domains", domains), ("urls", urls)):
        with open(f"{out}/db/{c}/{name}", encoding="utf-8", errors="replace") as f:
            bucket.extend(l.strip() for l in f if l.strip() and not l.startswith("#"))
with open(f"{out}/requests.txt", "w") as f:
    for i in range(lines):
        k = i % 3
        if k == 0:
            url = f"http://www.{random.choice(domains)}/index.html"
        elif k == 1:
            url = f"http://un{random.choice(domains)}listed.example/page?id={i}"
        else:
            entry = random.choice(urls)
            url = f"http://{entry}&x=1" if "?" in entry else f"http://{entry.rstrip('/')}/page.html"
        f.write(f"{url} 10.0.0.{i % 250 + 1}/- - GET\n")
PY

/usr/bin/time -o "$OUT/compile.time" -f "%e" squidGuard -c "$OUT/squidGuard.conf" -C all >/dev/null 2>"$OUT/compile.log"
sg_compile=$(cat "$OUT/compile.time")

# Timed runs write their answers to /dev/null: writing ~100 MB to a file here took 0.6-1.5 s
# from run to run (page cache write-back), more than deciding. One more run, untimed, keeps
# the answers for the comparison below. The timed runs take turns (squidGuard, Lookout,
# squidGuard, ...), so that a machine whose speed drifts during the script treats each
# program alike.
SQUID=(--squid --redirect 'http://blocked.example/?cat=%t&url=%u')
CMD_squidguard=(squidGuard -c "$OUT/squidGuard.conf")
CMD_lookout1=(./target/release/lookout check -c "$OUT/lookout.toml" -g bench --threads 1 "${SQUID[@]}" -)
CMD_lookout=(./target/release/lookout check -c "$OUT/lookout.toml" -g bench "${SQUID[@]}" -)
CMD_lookout1_text=(./target/release/lookout check -c "$OUT/lookout.toml" -g bench --threads 1 -)
NAMES=(squidguard lookout1 lookout lookout1_text)
for name in "${NAMES[@]}"; do
  declare -n cmd="CMD_$name"
  "${cmd[@]}" < "$OUT/requests.txt" > "$OUT/$name.out" 2> "$OUT/$name.err"
  : > "$OUT/$name.times"
  unset -n cmd
done
for _ in $(seq "$RUNS"); do
  for name in "${NAMES[@]}"; do
    declare -n cmd="CMD_$name"
    /usr/bin/time -o "$OUT/$name.time" -f "%e %M" "${cmd[@]}" < "$OUT/requests.txt" > /dev/null 2>> "$OUT/$name.err"
    cat "$OUT/$name.time" >> "$OUT/$name.times"
    unset -n cmd
  done
done
median() { sort -n "$OUT/$1.times" | sed -n "$(( (RUNS + 1) / 2 ))p"; }
read -r sg_s sg_kib < <(median squidguard)
read -r l1_s l1_kib < <(median lookout1)
read -r lk_s lk_kib < <(median lookout)
read -r lt_s lt_kib < <(median lookout1_text)
cmp -s "$OUT/lookout1.out" "$OUT/lookout.out" || { echo "Lookout's answers differ between 1 and all threads" >&2; exit 1; }

sg_lines=$(wc -l < "$OUT/squidguard.out"); lk_lines=$(wc -l < "$OUT/lookout.out")
sg_block=$(grep -c '^OK' "$OUT/squidguard.out" || true)
lk_block=$(grep -c '^OK' "$OUT/lookout.out" || true)
both=$(paste -d' ' <(cut -c1-2 "$OUT/squidguard.out") <(cut -c1-2 "$OUT/lookout.out") | grep -c '^OK OK' || true)
[ "$(grep -c '^block' "$OUT/lookout1_text.out" || true)" = "$lk_block" ] || { echo "Lookout's text and Squid answers disagree" >&2; exit 1; }

python3 - "$LINES" "$sg_s" "$sg_kib" "$lk_s" "$lk_kib" "$sg_lines" "$lk_lines" "$sg_block" "$lk_block" "$both" "$sg_compile" "$l1_s" "$l1_kib" "$RUNS" "$(nproc)" "$lt_s" "$lt_kib" <<'PY'
import sys
n, sg_s, sg_kib, lk_s, lk_kib, sg_lines, lk_lines, sg_b, lk_b, both, sg_c, l1_s, l1_kib, runs, cores, lt_s, lt_kib = sys.argv[1:]
n = int(n); sg_s, lk_s, l1_s, lt_s = float(sg_s), float(lk_s), float(l1_s), float(lt_s)
sg_rate, lk_rate, l1_rate, lt_rate = n / sg_s, n / lk_s, n / l1_s, n / lt_s
print(f"{n:,} request lines, UT1 gambling adult drogue redirector malware phishing; median of {runs} runs")
print(f"{'':20} {'seconds':>8} {'lines/s':>12} {'peak RSS':>10} {'blocked':>9} {'answered':>9}")
print(f"{'squidGuard':20} {sg_s:8.2f} {sg_rate:12,.0f} {int(sg_kib)/1024:8.1f}MB {int(sg_b):9,} {int(sg_lines):9,}")
print(f"{'Lookout, 1 thread':20} {l1_s:8.2f} {l1_rate:12,.0f} {int(l1_kib)/1024:8.1f}MB {int(lk_b):9,} {int(lk_lines):9,}")
print(f"{'Lookout, ' + cores + ' threads':20} {lk_s:8.2f} {lk_rate:12,.0f} {int(lk_kib)/1024:8.1f}MB {int(lk_b):9,} {int(lk_lines):9,}")
print(f"{'Lookout, text, 1 th.':20} {lt_s:8.2f} {lt_rate:12,.0f} {int(lt_kib)/1024:8.1f}MB {int(lk_b):9,} {int(lk_lines):9,}")
print("(squidGuard and the first two Lookout rows answer in Squid's helper protocol; the last")
print(" writes Lookout's one-line explanations: action, URL, categories, reason)")
print(f"ratio (Lookout / squidGuard lines/s): {l1_rate / sg_rate:.1f}x on 1 thread, {lk_rate / sg_rate:.1f}x on {cores}")
print(f"ratio with Lookout's explanations, 1 thread: {lt_rate / sg_rate:.1f}x")
print(f"blocked by both: {int(both):,}; squidGuard's separate compile step (-C all): {sg_c} s")
PY
