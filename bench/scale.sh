#!/usr/bin/env bash
# Costs at scale (issue 22): does the daily work stay flat as years of history pile up?
#
# For each backend (SQLite, then PostgreSQL) and each amount of closed history (default
# 0, 500,000 and 1,500,000 closed records), a store is built by the gateway itself
# (`run --once` with the clock set by CPIS_GATEWAY_NOW), the same way every time:
#   1. a national extract 800 days back listing 150,000 children plus the history's;
#   2. 400 days back, the 150,000 only: the others are closed by absence (the bench's
#      config lets an extract close them all);
#   3. day 0: the national list today;
# then it times, on every store (each the best of three rounds, a round going through
# every store in turn so the machine's drift falls on a figure and its baseline alike;
# the refresh and the attendance file each time from the same state, put back between):
#   - the daily refresh: day 1's 153 files (149,843 rows, 5,867 records written);
#   - an attendance file of 40,000 rows, all children on the list (run --once);
#   - 1,000 look-ups in process (examples/query_bench: median per look-up);
#   - the nightly report of day 1 (`report --date`).
# With no history it also times the national first load (step 3 on an empty store), and
# the report again after 1,000,000 access-log entries (25 attendance files of 40,000
# flagged rows, the days before; the night before's report run as the daemon would, so the
# night timed checks what is new since its checkpoint). Beside them, in the same run: the bare floors (a `csv`
# pass over the same rows, and examples/bare_store inserting them into equivalent tables on
# each backend). It prints each figure, and each ratio to its baseline.
#
# Usage: bench/scale.sh [--bin DIR] [--log-on BACKENDS] [CLOSED ...]
#   --bin DIR: time another build's binary and examples (e.g. an older commit's
#   target/release); the inputs are always made by this tree's `gen`.
#   --log-on BACKENDS: where to build the 1,000,000-entry access log ("sqlite postgres" by
#   default; "" for nowhere: it takes the longest to build).
# PostgreSQL is Debian's, started here in bench/out on a free 127.0.0.1 port with its
# default durability, and stopped at the end. About 15 minutes on 2 cores, and about 11 GB
# of disk under bench/out/scale (levels 0 and 1500000 with the access log; more with
# 500000): its stores are kept for a look afterwards until the next run, so remove the
# folder when done on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
out=$here/bench/out/scale
bindir=$here/target/release
log_on="sqlite postgres"
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bindir=$(realpath "$2"); shift 2 ;;
    --log-on) log_on=$2; shift 2 ;;
    *) break ;;
  esac
done
levels=${*:-0 500000 1500000}
cargo build --release --quiet --bin cpis-gateway --example bare_csv --example bare_store --example query_bench
gen=$here/target/release/cpis-gateway
bin=$bindir/cpis-gateway
query_bench=$bindir/examples/query_bench
rm -rf "$out"
mkdir -p "$out/src"

# Inputs (the same for every store).
T_HIST=20240910T020000 T_CLOSE=20251010T020000 T0=20261120T020000 T1=20261121T020000
for h in $(echo 0 $levels | tr ' ' '\n' | sort -un); do
  "$gen" gen national --rows $((150000 + h)) --at $T_HIST --out "$out/src/hist-$h" >/dev/null
done
"$gen" gen national --rows 150000 --at $T_CLOSE --out "$out/src/close" >/dev/null
"$gen" gen national --rows 150000 --at $T0 --out "$out/src/day0" >/dev/null
"$gen" gen national --rows 150000 --at $T1 --day 1 --out "$out/src/day1" >/dev/null
"$gen" gen attendance --rows 40000 --flagged-share 1 --at 20261122T010000 --out "$out/src/att" >/dev/null
if [ -n "$log_on" ]; then
  for d in $(seq 1 25); do
    at=$(date -u -d "2026-11-20 - $((26 - d)) days" +%Y%m%dT230000)
    "$gen" gen attendance --rows 40000 --flagged-share 1 --seed $((100 + d)) --at "$at" \
      --out "$out/src/log/$d" >/dev/null
  done
fi
# Day 1's rows as one CSV file (one header), for the bare csv pass.
{ head -1 "$(ls "$out/src/day1/"*.csv | head -1)"; tail -q -n +2 "$out/src/day1/"*.csv; } >"$out/day1-all.csv"

# PostgreSQL.
. "$here/bench/pg.sh" "$out/pg"
trap pg_stop EXIT

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }
# A fresh root (and database), in $root and $url.
fresh() {
  root=$out/run/$1 db=$1
  rm -rf "$root" "$root.snap" && mkdir -p "$root"
  printf '[gateway]\nroot = "var"\nsettle_ms = 0\nmax_closure_share = 1.0\n[[health_org]]\nods = "RWG"\nname = "West Hertfordshire Teaching Hospitals NHS Trust"\n' \
    >"$root/config.toml"
  url=
  if [ "$backend" = postgres ]; then
    psql -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"
    url=$(pgurl "$1")
  fi
  gw init >/dev/null
}
gw() { (cd "$root" && CPIS_GATEWAY_STORE_URL=$url "$bin" "$@"); }
# Puts a folder's files into their mailboxes.
put() {
  local f name box
  for f in "$1"/*.csv; do
    name=${f##*/}
    box=${name#CPIS_*_}
    box=${box%%_*}
    case $name in CPIS_EXTRACT_*) box=LA$box ;; esac
    cp "$f" "$root/var/mailboxes/$box/in/"
  done
}
# Runs the daemon once at time $1 (what is timed).
run_at() {
  CPIS_GATEWAY_NOW=$1 gw run --once >/dev/null 2>"$root/stage.err" || {
    echo "run at $1 failed:" >&2; tail -5 "$root/stage.err" >&2; exit 1; }
}
stage() { put "$1"; run_at "$2"; }
timed() { local t0; t0=$(now); "$@" >/dev/null; secs "$t0" "$(now)"; }
# Keeps the root (and database) as they are, and puts them back: a step that changes the
# store can then be timed three times from the same state.
snapshot() {
  rm -rf "$root.snap" && cp -a "$root" "$root.snap"
  if [ -n "$url" ]; then copy_db "$db" "${db}_snap"; fi
}
restore() {
  rm -rf "$root" && cp -a "$root.snap" "$root"
  if [ -n "$url" ]; then copy_db "${db}_snap" "$db"; fi
}
# Database $2 made a copy of $1 (autovacuum may be in either: it is ended first; any
# failure stops the bench, so a step is never timed on a store it did not start from).
copy_db() {
  psql -v ON_ERROR_STOP=1 \
    -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname IN ('$1', '$2') AND pid <> pg_backend_pid()" \
    -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" -c "CREATE DATABASE $2 TEMPLATE $1" >/dev/null
}
declare -A fig
# Keeps the best (smallest) of the figures given for $1.
best_in() { if [ -z "${fig[$1]:-}" ] || python3 -c "import sys; sys.exit(not $2 < ${fig[$1]})"; then fig[$1]=$2; fi; }
# Selects the store of backend $1 and level $2 (built below) as $root, $url and $db.
use() {
  backend=$1 root=$out/run/s_$1_$2 db=s_$1_$2 url=
  if [ "$1" = postgres ]; then url=$(pgurl "$db"); fi
}
# Times the daemon at $2 on the files of $1, from the state kept (restored first).
once() {
  restore || { echo "cannot put $root back" >&2; exit 1; }
  put "$1"
  sync
  local t
  t=$(timed run_at "$2")
  # Each time the same work: nothing taken as a duplicate of an earlier try.
  if grep -q 'outcome="duplicate"' "$root/stage.err"; then
    echo "a timed run at $2 found duplicates: the store was not put back" >&2; exit 1
  fi
  echo "$t"
}
# Times it (as `once`) into the figure $1, keeping the best; a failure stops the bench.
take() {
  local t
  t=$(once "$2" "$3")
  best_in "$1" "$t"
}

# The stores, built first; then each figure is timed in three rounds that go through
# every store in turn, so that the machine's drift over the minutes of a run falls on a
# figure and its baseline alike (timing one store's three tries, then the next store's,
# gave the same code 0.77x to 1.25x between runs); the best of the three is kept.
first=$(echo $levels | cut -d' ' -f1)
for backend in sqlite postgres; do
  for h in $levels; do
    fresh "s_${backend}_$h"
    stage "$out/src/hist-$h" 2024-09-10T03:00:00Z
    stage "$out/src/close" 2025-10-10T03:00:00Z
    stage "$out/src/day0" 2026-11-20T03:00:00Z
    snapshot
  done
  if [ "$first" = 0 ]; then
    # The national first load: day 0 into an empty store of its own.
    fresh "f_${backend}"
    snapshot
  fi
done
for round in 1 2 3; do
  for backend in sqlite postgres; do
    if [ "$first" = 0 ]; then
      root=$out/run/f_$backend db=f_$backend url=
      if [ "$backend" = postgres ]; then url=$(pgurl "$db"); fi
      take "$backend,first" "$out/src/day0" 2026-11-20T03:00:00Z
    fi
    for h in $levels; do
      use $backend $h
      take "$backend,$h,refresh" "$out/src/day1" 2026-11-21T03:00:00Z
    done
  done
done
# Each store is now at day 1 (its last refresh): kept, for the attendance file.
for backend in sqlite postgres; do
  for h in $levels; do use $backend $h; snapshot; done
done
for round in 1 2 3; do
  for backend in sqlite postgres; do
    for h in $levels; do
      use $backend $h
      take "$backend,$h,attendance" "$out/src/att" 2026-11-22T01:30:00Z
    done
  done
done
for backend in sqlite postgres; do
  rm -rf "$out/run/f_$backend" "$out/run/f_$backend.snap"
  for h in $levels; do use $backend $h; rm -rf "$root.snap"; done
  if [[ " $log_on " == *" $backend "* ]]; then
    fresh "l_${backend}"
    stage "$out/src/hist-0" 2024-09-10T03:00:00Z
    stage "$out/src/close" 2025-10-10T03:00:00Z
    t0=$(now)
    for d in $(seq 1 25); do
      stage "$out/src/log/$d" "$(date -u -d "2026-11-20 - $((25 - d)) days" +%Y-%m-%d)T00:30:00Z"
    done
    fig[$backend,logbuild]=$(secs "$t0" "$(now)")
    stage "$out/src/day0" 2026-11-20T03:00:00Z
    # The night before's report, as the daemon runs it: it leaves the access log's
    # checkpoint the next night starts from.
    CPIS_GATEWAY_NOW=2026-11-21T02:00:00Z gw report --date 2026-11-20 >/dev/null
    stage "$out/src/day1" 2026-11-21T03:00:00Z
    stage "$out/src/att" 2026-11-22T01:30:00Z
    fig[$backend,entries]=$(gw status --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_log"]["entries"])')
  fi
done
# Look-ups and the nightly report of day 1, on each store after day 1 and the attendance
# file (and on the store with the access log), in rounds as well.
for round in 1 2 3; do
  for backend in sqlite postgres; do
    for h in $levels; do
      use $backend $h
      looked=$(cd "$root" && CPIS_GATEWAY_STORE_URL=$url "$query_bench" var "$out/src/att/"*.csv 1000)
      # Every child of the file was on the list: look-ups that flag nobody read another store.
      case $looked in *"(0 flagged)"*|"") echo "look-ups on $backend did not flag the listed children: $looked" >&2; exit 1 ;; *) ;; esac
      best_in "$backend,$h,lookup" "$(echo "$looked" | sed -n 's/.*p50 \([0-9]*\) µs.*/\1/p')"
      t=$(CPIS_GATEWAY_NOW=2026-11-22T02:00:00Z timed gw report --date 2026-11-21)
      best_in "$backend,$h,report" "$t"
    done
    if [ -n "${fig[$backend,entries]:-}" ]; then
      root=$out/run/l_$backend db=l_$backend url=
      if [ "$backend" = postgres ]; then url=$(pgurl "$db"); fi
      t=$(CPIS_GATEWAY_NOW=2026-11-22T02:00:00Z timed gw report --date 2026-11-21)
      best_in "$backend,log,report" "$t"
    fi
  done
done
for backend in sqlite postgres; do
  for h in $levels; do
    echo "$backend, $h closed: refresh ${fig[$backend,$h,refresh]} s, attendance ${fig[$backend,$h,attendance]} s, look-up p50 ${fig[$backend,$h,lookup]} µs, report ${fig[$backend,$h,report]} s"
  done
  if [ -n "${fig[$backend,entries]:-}" ]; then
    echo "$backend, ${fig[$backend,entries]} access-log entries (built in ${fig[$backend,logbuild]} s): report ${fig[$backend,log,report]} s"
  fi
done

# The floors, in the same run.
fig[floor,csv]=$("$here/target/release/examples/bare_csv" "$out/day1-all.csv" | sed -n 's/.* in \([0-9.]*\) s.*/\1/p')
rm -f "$out/bare.sqlite"*
fig[floor,sqlite]=$("$here/target/release/examples/bare_store" sqlite "$out/bare.sqlite" "$out/src/day0/"*.csv | sed -n 's/.* in \([0-9.]*\) s.*/\1/p')
psql -c "DROP DATABASE IF EXISTS bare" -c "CREATE DATABASE bare"
fig[floor,postgres]=$("$here/target/release/examples/bare_store" postgres "$(pgurl bare)" "$out/src/day0/"*.csv | sed -n 's/.* in \([0-9.]*\) s.*/\1/p')

ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
echo
echo "== ratios (each against its baseline in this run)"
for backend in sqlite postgres; do
  for h in $levels; do
    [ "$h" = "$first" ] && continue
    echo "$backend, $h closed against $first: refresh $(ratio ${fig[$backend,$h,refresh]} ${fig[$backend,$first,refresh]}), look-up $(ratio ${fig[$backend,$h,lookup]} ${fig[$backend,$first,lookup]}), attendance $(ratio ${fig[$backend,$h,attendance]} ${fig[$backend,$first,attendance]}), report $(ratio ${fig[$backend,$h,report]} ${fig[$backend,$first,report]})"
  done
  if [ -n "${fig[$backend,log,report]:-}" ]; then
    echo "$backend, report with 1,000,000 access-log entries against none: $(ratio ${fig[$backend,log,report]} ${fig[$backend,$first,report]})"
  fi
done
for h in $levels; do
  echo "postgres against sqlite, $h closed: refresh $(ratio ${fig[postgres,$h,refresh]} ${fig[sqlite,$h,refresh]}), attendance $(ratio ${fig[postgres,$h,attendance]} ${fig[sqlite,$h,attendance]}), report $(ratio ${fig[postgres,$h,report]} ${fig[sqlite,$h,report]})"
done
if [ -n "${fig[sqlite,first]:-}" ]; then
  echo "national first load: sqlite ${fig[sqlite,first]} s, postgres ${fig[postgres,first]} s ($(ratio ${fig[postgres,first]} ${fig[sqlite,first]})); bare inserts of the same rows: sqlite ${fig[floor,sqlite]} s ($(ratio ${fig[sqlite,first]} ${fig[floor,sqlite]})), postgres ${fig[floor,postgres]} s ($(ratio ${fig[postgres,first]} ${fig[floor,postgres]}))"
fi
echo "daily refresh against a bare csv pass over its rows (${fig[floor,csv]} s): sqlite $(ratio ${fig[sqlite,$first,refresh]} ${fig[floor,csv]}), postgres $(ratio ${fig[postgres,$first,refresh]} ${fig[floor,csv]})"
