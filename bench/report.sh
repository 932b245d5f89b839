#!/usr/bin/env bash
# The morning report for the whole country: 153 LAs, 150,000 children, 8 days of daily
# extracts (a few LAs stop sending, one sends a file with bad rows), then:
#   - the time to write one day's report (national page, 153 LA pages, DQ files), and the
#     time to rebuild a past day's;
#   - the rendered height of the national page in headless Chromium at 1300 px wide, and
#     where the needs-action section and the national table end (the aim: both within two
#     screens of about 1000 px).
# Usage: bench/report.sh [ROWS=150000]. Needs chromium for the heights.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-150000}
cargo build --release --quiet
bin=$PWD/target/release/cpis-gateway
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '[gateway]\nroot = "var"\nsettle_ms = 0\n' >"$work/config.toml"
gw() { (cd "$work" && "$bin" "$@"); }
gw init >/dev/null
for day in 0 1 2 3 4 5 6 7; do
  date=$(date -u -d "2026-11-10 + $day days" +%Y%m%d)
  gw gen national --rows "$rows" --at "${date}T020000" --day "$day" --out "$work/in$day" >/dev/null
  # LAs 201 to 206 stop sending after day 2; 919's day-5 file has a broken row.
  if [ "$day" -gt 2 ]; then rm -f "$work/in$day"/CPIS_EXTRACT_20[1-6]_*; fi
  if [ "$day" -eq 5 ]; then sed -i '3s/,CPP,/,XXX,/' "$work/in$day"/CPIS_EXTRACT_919_*; fi
  for f in "$work/in$day"/*.csv; do
    la=$(basename "$f" | cut -d_ -f3)
    mv "$f" "$work/var/mailboxes/LA$la/in/"
  done
  CPIS_GATEWAY_NOW="$(date -u -d "2026-11-10 + $day days" +%Y-%m-%d)T03:00:00Z" \
    gw run --once 2>/dev/null >/dev/null || true
  CPIS_GATEWAY_NOW="$(date -u -d "2026-11-11 + $day days" +%Y-%m-%d)T02:00:00Z" \
    gw report --date "$(date -u -d "2026-11-10 + $day days" +%Y-%m-%d)" >/dev/null
done
t0=$(date +%s.%N)
CPIS_GATEWAY_NOW=2026-11-18T02:00:00Z gw report --date 2026-11-17 >/dev/null
t1=$(date +%s.%N)
CPIS_GATEWAY_NOW=2026-11-20T09:00:00Z gw report --date 2026-11-14 >/dev/null
t2=$(date +%s.%N)
python3 -c "print(f'one day\'s report (153 LA pages): {$t1 - $t0:.2f} s; a past day rebuilt: {$t2 - $t1:.2f} s')"
page=$work/var/reports/2026-11-17/index.html
echo "national page: $(stat -c %s "$page") bytes; 153 LA pages: $(du -sb "$work/var/reports/2026-11-17/la" | cut -f1) bytes"
if command -v chromium >/dev/null; then
  # A copy of the page with a script that writes the heights into the title (the shipped
  # page has no scripts).
  sed 's|</body>|<script>const y = id => Math.round(document.getElementById(id).getBoundingClientRect().bottom + scrollY); document.title = "height=" + document.documentElement.scrollHeight + " needs-action-ends=" + y("needs-action") + " table-ends=" + y("local-authorities");</script></body>|' \
    "$page" >"$work/measure.html"
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --window-size=1300,1000 --dump-dom "file://$work/measure.html" 2>/dev/null |
    grep -o 'height=[0-9]* needs-action-ends=[0-9]* table-ends=[0-9]*' | sed 's/^/rendered at 1300 px: /'
  mkdir -p bench/out
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --window-size=1300,2000 --screenshot="$PWD/bench/out/report-153.png" "file://$page" 2>/dev/null
  echo "screenshot of the first 2000 px: bench/out/report-153.png"
fi
if command -v chromium >/dev/null; then
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --window-size=1100,1400 --screenshot="$PWD/bench/out/report-la-919.png" \
    "file://$work/var/reports/2026-11-17/la/919.html" 2>/dev/null
  echo "screenshot of LA 919's page: bench/out/report-la-919.png"
fi
