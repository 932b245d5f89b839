#!/usr/bin/env bash
# The main job end to end on the shipped samples, with the built-in defaults: a working
# copy of inbox-samples/ under work/ (tracked files are never moved or changed), the daemon
# once over it (`run --once`), then what it did and where the outputs are.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${CPIS_WORK:-work}
rm -rf "$work"
mkdir -p "$work"
cargo build --release --quiet
bin=target/release/cpis-gateway
# Defaults throughout, but a short settle time (the copies below are complete at once) and
# the health organisation of the attendance sample.
printf '[gateway]\nroot = "var"\nsettle_ms = 100\n\n[[health_org]]\nods = "RWG"\nname = "West Hertfordshire Teaching Hospitals NHS Trust"\n' > "$work/config.toml"
gw() { "$bin" --config "$work/config.toml" "$@"; }
gw init >/dev/null
for f in inbox-samples/CPIS_EXTRACT_* inbox-samples/CPIS_UPLOAD_*; do
  name=$(basename "$f")
  la=${name#CPIS_*_}
  la=${la%%_*}
  cp "$f" "$work/var/mailboxes/LA$la/in/"
done
# The hospital's attendance sample, sent as the hospital would send it today: its name and
# its rows' times moved to the last hour (an attendance further back than a week is
# answered with ATTENDED_AT_OLD, not with flags).
stamp=$(date -u -d '-1 minute' +%Y%m%dT%H%M%S)
at=$(date -u -d '-30 minutes' +%Y-%m-%dT%H:%M:%S+00:00)
for f in inbox-samples/health/CPIS_ATTEND_RWG_*.csv; do
  sed -E "s/^([0-9]{10}),[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}[^,]*,/\1,$at,/" "$f" \
    > "$work/var/mailboxes/RWG/in/CPIS_ATTEND_RWG_$stamp.csv"
done
echo "== run --once over $(ls inbox-samples/CPIS_EXTRACT_* inbox-samples/CPIS_UPLOAD_* | wc -l) sample extracts (one a CP-IS upload) and an attendance file (logs on stderr)"
status=0
gw run --once || status=$?
echo
echo "== acknowledgements written"
for ack in "$work"/var/mailboxes/*/out/CPIS_ACK_*.json; do
  printf '%s  ' "$ack"
  grep -o '"outcome": "[a-z]*"' "$ack"
done
echo
echo "== flags returned to the hospital, notifications sent to LAs"
ls "$work"/var/mailboxes/RWG/out/CPIS_FLAGS_* "$work"/var/mailboxes/LA*/out/CPIS_NOTIFY_* 2>/dev/null || true
echo
echo "== the morning report, previewed for today so far (the nightly run writes yesterday's)"
gw report --preview | sed 's/^/  /'
echo
echo "== status"
gw status | sed -n 1,6p
exit "$status"
