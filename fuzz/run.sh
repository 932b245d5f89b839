#!/usr/bin/env bash
# Fuzzes the CSV and XML extract readers (with the row validator behind them), and the
# attendance reader with the control-file parser, for a while
# each, seeding the corpus from inbox-samples/ and seeds/. Inputs up to 128 KiB, so that
# the 64 KiB cap on a CSV record is crossed. Needs cargo-fuzz (`cargo install cargo-fuzz`);
# RUSTC_BOOTSTRAP lets it use the sanitizer flags on the stable toolchain this machine has.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 600)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
mkdir -p corpus/csv_extract corpus/xml_extract corpus/attendance
find ../inbox-samples -name '*.csv' -exec cp {} corpus/csv_extract/ \;
find ../inbox-samples -name '*.xml' -exec cp {} corpus/xml_extract/ \;
cp ../inbox-samples/health/*.csv corpus/attendance/
# Cases found by hand that the samples lack (a quoted field running on over many lines).
for target in csv_extract xml_extract attendance; do
  if [ -d "seeds/$target" ]; then cp seeds/"$target"/* "corpus/$target/"; fi
done
for target in csv_extract xml_extract attendance; do
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" -- \
    -max_total_time="$secs" -rss_limit_mb=512 -timeout=5 -max_len=131072 -print_final_stats=1
done
