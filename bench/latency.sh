#!/usr/bin/env bash
# Daemon drop-to-acknowledgement latency (SPEC 11): 200 small files dropped with .ctl
# control files; prints median, p95 and max. Target: median under 50 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin cpis-gateway --example latency_bench
target/release/examples/latency_bench "${1:-200}"
