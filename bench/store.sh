#!/usr/bin/env bash
# The store on SQLite and on PostgreSQL side by side (issue 14): the national first load
# (153 LA files, 150,000 rows, into an empty store) and the daily refresh (the next day's
# 153 files), in process as the daemon runs them (examples/ingest_bench.rs), on each
# backend in turn, 3 runs each on a fresh store; then the bare-parse baseline of the same
# 153 files. PostgreSQL is Debian's, started here in bench/out on a free 127.0.0.1 port with
# its default durability (fsync on, synchronous_commit on) and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$PWD/bench/out/store
rm -rf "$out"
mkdir -p "$out"
cargo build --release --quiet --bin cpis-gateway --example ingest_bench --example bare_csv
bin=target/release/cpis-gateway
$bin gen national --rows 150000 --at 20261120T020000 --out "$out/src/day0" >/dev/null
$bin gen national --rows 150000 --at 20261121T020000 --day 1 --out "$out/src/day1" >/dev/null

. bench/pg.sh "$out/pg"
trap pg_stop EXIT

for backend in sqlite postgres; do
  echo "== $backend: national first load, then the daily refresh (3 runs, each on a fresh store)"
  for run in 1 2 3; do
    rm -rf "$out/run" && cp -r "$out/src" "$out/run"
    url=
    if [ "$backend" = postgres ]; then
      psql -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"
      url="postgres://postgres@127.0.0.1:$port/bench"
    fi
    sync
    CPIS_GATEWAY_STORE_URL=$url target/release/examples/ingest_bench "$out/run/root" "$out/run/day0" "$out/run/day1" \
      | sed "s|$out/run/||; s/^/  run $run: /"
  done
done
echo "== bare csv pass over the first day's files, one after another (the baseline)"
cat "$out/src/day0/"*.csv > "$out/all.csv"
target/release/examples/bare_csv "$out/all.csv" | tail -1
rm -rf "$out/run"
