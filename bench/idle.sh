#!/usr/bin/env bash
# Idle daemon CPU (issue: the daemon must sleep when nothing arrives): `run` with the
# default 153 LA mailboxes and nothing to do; CPU used over 10 s as a share of one core.
# Target: under 1 %.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin cpis-gateway
bin=$PWD/target/release/cpis-gateway
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
printf '[gateway]\nroot = "var"\n' >"$work/config.toml"
(cd "$work" && exec "$bin" run 2>"$work/daemon.log") &
pid=$!
for _ in $(seq 100); do grep -q "gateway running" "$work/daemon.log" 2>/dev/null && break; sleep 0.1; done
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
sleep 10
after=$(ticks)
mailboxes=$(ls "$work/var/mailboxes" | wc -l)
awk -v b="$before" -v a="$after" -v hz="$hz" -v m="$mailboxes" \
  'BEGIN { cpu = (a - b) / hz; printf "idle daemon, %d mailboxes: %.2f s of CPU in 10 s = %.2f %% of a core (target < 1 %%)\n", m, cpu, cpu * 10 }'
