#!/usr/bin/env bash
# Rewrites the generated samples in this folder with `cpis-gateway gen` (same seed, same
# bytes). The hand-written ones (bad/ENCODING, bad/FILE_NAME, the attendance sample and the
# hand-made Hertfordshire extract) are left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
cargo build --release --quiet
gen() { ./target/release/cpis-gateway gen extract "$@" >/dev/null; }
at=20261121T020000

gen --la 202 --rows 25 --format xml --seed 202 --offset 100000 --at 20261121T021500 --out "$here"
gen --la 330 --rows 60 --seed 330 --offset 200000 --at 20261121T013000 --bom --crlf --out "$here"
gen --la 942 --rows 12 --format xml --seed 942 --offset 300000 --at 20261121T020500 --out "$here"

for code_fault in NHS_MISSING:nhs-missing NHS_FORMAT:nhs-format NHS_CHECK_DIGIT:check-digit \
    PLAN_TYPE:plan-type DATE_MISSING:date-missing DATE_FORMAT:date-format DATE_ORDER:date-order \
    DATE_FUTURE:date-future LA_MISMATCH:la-mismatch PHONE_MISSING:phone-missing \
    PHONE_FORMAT:phone-format FIELD_TOO_LONG:field-too-long DUPLICATE:duplicate \
    EDD_NOT_UCPP:edd-not-ucpp EDD_PASSED:edd-passed HEADER:unknown-column EMPTY:empty; do
  code=${code_fault%%:*}; fault=${code_fault#*:}
  rm -rf "$here/bad/$code"
  gen --la 919 --rows 20 --seed 7 --at $at --fault "$fault" --out "$here/bad/$code"
done
rm -rf "$here/bad/RECORD_COUNT" "$here/bad/XML" "$here/bad/ERROR_RATE"
gen --la 919 --rows 20 --format xml --seed 7 --at $at --fault truncate --out "$here/bad/RECORD_COUNT"
gen --la 919 --rows 5 --format xml --seed 7 --at $at --fault doctype --out "$here/bad/XML"
gen --la 919 --rows 10 --seed 7 --at $at --fault check-digit:6 --out "$here/bad/ERROR_RATE"
