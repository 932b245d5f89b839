#!/usr/bin/env bash
# Health-side benchmarks (SPEC 11): 1,000,000 attendance rows (2% of them children on the
# list) matched against a store of 150,000 records, in process as the daemon runs
# (target: 500,000 rows/s or better); then `query` latency, warm (target: p99 under 1 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out/health
rm -rf "$out"
mkdir -p "$out"
cargo build --release --quiet --bin cpis-gateway --example ingest_bench --example query_bench
bin=target/release/cpis-gateway
$bin gen national --rows 150000 --at 20261121T020000 --out "$out/national" >/dev/null
$bin gen attendance --rows 1000000 --national-rows 150000 --flagged-share 0.02 --at 20261121T235900 --out "$out/attend" >/dev/null
$bin gen attendance --rows 20000 --national-rows 150000 --flagged-share 0.5 --seed 2 --at 20261121T235900 --out "$out/queries" >/dev/null
echo "== store of 150,000 records"
target/release/examples/ingest_bench "$out/root" "$out/national"
echo "== 1,000,000 attendance rows"
/usr/bin/time -f "peak RSS %M KB" target/release/examples/ingest_bench "$out/root" "$out/attend"
echo "== query, warm"
target/release/examples/query_bench "$out/root" "$out/queries/"*.csv 20000
