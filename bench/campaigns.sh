#!/usr/bin/env bash
# Fault campaigns, longer than CI runs them (the same tests, scaled by environment
# variables); prints what each did. Needs root (the full-disk campaign mounts a tmpfs).
#
#   bench/campaigns.sh [SEEDS] [KILLS] [RACE_ROUNDS] [DISK_ROUNDS]   (defaults 3 30 10 3)
#
# - kill -9 at random moments over 40 files (24 extracts of 4 LAs, 16 attendance files),
#   KILLS kills for each of SEEDS seeds; the end state must equal a clean run's;
# - concurrent ingests (every file twice, shuffled) and queries, RACE_ROUNDS rounds;
# - a full disk (tmpfs) while extracts and an attendance wait, DISK_ROUNDS rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-3} kills=${2:-30} races=${3:-10} disks=${4:-3}
run() { cargo test --locked --quiet --test it -- --exact "$@" --nocapture 2>&1; }
landed=0 total=0
for seed in $(seq "$seeds"); do
  out=$(CPIS_CRASH_SEED=$seed CPIS_CRASH_KILLS=$kills run daemon::kill_9_at_random_moments_loses_and_doubles_nothing)
  echo "$out" | grep -q "test result: ok" || { echo "$out"; exit 1; }
  n=$(echo "$out" | grep -c "^kill -9: [0-9]* of 40 " || true)
  mid=$(echo "$out" | grep "^kill -9:" | awk '$3 < $5' | wc -l)
  echo "kill -9, seed $seed: $n kills, $mid landed before the backlog was done; end state equal to a clean run"
  total=$((total + n)); landed=$((landed + mid))
done
echo "kill -9 campaign: $total kills ($landed mid-backlog) over 40 files x $seeds seeds: nothing lost or doubled"
out=$(CPIS_RACE_ROUNDS=$races run robustness::concurrent_ingests_and_queries_campaign)
echo "$out" | grep -q "test result: ok" || { echo "$out"; exit 1; }
echo "$out" | grep "^campaign:"
for round in $(seq "$disks"); do
  out=$(run robustness::a_full_disk_loses_nothing_and_lets_nothing_overtake)
  echo "$out" | grep -q "test result: ok" || { echo "$out"; exit 1; }
  echo "full disk, round $round: every file applied once, in order, none STALE; notification written once"
done
