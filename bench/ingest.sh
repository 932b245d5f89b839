#!/usr/bin/env bash
# Ingest benchmarks (SPEC 11), in process as the daemon runs (examples/ingest_bench.rs):
#   1. national first load: 153 LA files, 150,000 rows, into an empty store (target < 1 s)
#   2. daily national refresh: the next day's 153 files, ~1% gone, 2% changed, 1% new
#      (target < 0.3 s)
#   3. a single 1,000,000-row file's first ingest (target >= 400,000 rows/s)
# and, beside it, the floors of the same 1,000,000-row file: a bare `csv` pass, and a bare
# SQLite program inserting its sorted rows into equivalent tables in one transaction
# (examples/bare_store; issue 22's target: the first ingest within 1.25x of it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out/ingest
rm -rf "$out"
mkdir -p "$out"
cargo build --release --quiet --bin cpis-gateway --example ingest_bench --example bare_csv --example bare_store
bin=target/release/cpis-gateway
$bin gen national --rows 150000 --at 20261120T020000 --out "$out/src/day0" >/dev/null
$bin gen national --rows 150000 --at 20261121T020000 --day 1 --out "$out/src/day1" >/dev/null
$bin gen extract --la 919 --rows 1000000 --seed 9 --at 20261121T020000 --out "$out/src/one" >/dev/null

echo "== national first load, then the daily refresh (3 runs, each on a fresh store)"
for run in 1 2 3; do
  rm -rf "$out/run" && cp -r "$out/src" "$out/run"
  sync
  target/release/examples/ingest_bench "$out/run/root" "$out/run/day0" "$out/run/day1" | sed "s/^/run $run: /"
done
echo "== single 1,000,000-row file, first ingest"
rm -rf "$out/run" && cp -r "$out/src" "$out/run"
sync
/usr/bin/time -f "peak RSS %M KB" target/release/examples/ingest_bench "$out/run/root1" "$out/run/one"
echo "== bare csv pass over the same file"
target/release/examples/bare_csv "$out/src/one/"*.csv
echo "== bare SQLite inserts of the same rows (read, sort, two tables, one transaction)"
target/release/examples/bare_store sqlite "$out/run/bare.sqlite" "$out/src/one/"*.csv
rm -rf "$out/run"
