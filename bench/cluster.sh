#!/usr/bin/env bash
# Two gateway nodes on one PostgreSQL store (issues 14, 20): the query latency (p50, p99 of
# the `query` command, a process each, as an operator or a health system runs it) while both
# nodes serve a national load, and three failover times, each beside the lease period
# LEASE_S (default 5 s): a node killed (kill -9), a node frozen (SIGSTOP) outside its write
# transaction, and a node frozen inside it (until the other has taken its mailboxes, and
# until a file it held is acknowledged by the other).
# PostgreSQL is Debian's, started here in bench/out on a free 127.0.0.1 port, stopped at
# the end.
set -euo pipefail
cd "$(dirname "$0")/.."
lease=${LEASE_S:-5}
queries=${QUERIES:-300}
out=$PWD/bench/out/cluster
rm -rf "$out"
mkdir -p "$out/root"
cargo build --release --quiet --bin cpis-gateway
bin=$PWD/target/release/cpis-gateway
. bench/pg.sh "$out/pg"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pg_stop
}
trap cleanup EXIT
cd "$out/root"
printf '[gateway]\nroot = "var"\nsettle_ms = 200\n\n[store]\nurl = "postgres://postgres@127.0.0.1:%s/postgres"\nlease_s = %s\n\n[[health_org]]\nods = "RWG"\nname = "West Herts"\n' "$port" "$lease" > config.toml
"$bin" init >/dev/null
"$bin" gen national --rows 150000 --at 20261121T020000 --out national >/dev/null
for f in national/*; do
  name=$(basename "$f"); la=${name#CPIS_EXTRACT_}; la=${la%%_*}
  mv "$f" "var/mailboxes/LA$la/in/"
done
for n in a b; do
  CPIS_GATEWAY_NODE=$n "$bin" run 2> "node-$n.log" &
  pids+=($!)
  disown
done
echo "== two nodes ($lease s leases) loading the national extracts (153 files, 150,000 rows)"
start=$(date +%s%N)
until [ "$(ls var/mailboxes/LA*/out/CPIS_ACK_* 2>/dev/null | wc -l)" -ge 153 ]; do sleep 0.2; done
echo "all 153 acknowledged after $(( ($(date +%s%N) - start) / 1000000 )) ms; files per node: a $(grep -c ' processed ' node-a.log), b $(grep -c ' processed ' node-b.log)"
echo "== $queries look-ups (\`query\`, one process each) while both nodes run"
nhs=$(sed -n 2p var/archive/*/* 2>/dev/null | head -1 | cut -d, -f1)
nhs=${nhs:-9990000018}
: > times
for i in $(seq "$queries"); do
  t0=$(date +%s%N)
  "$bin" query "$nhs" --org RWG --user "Dr Bench" --role Doctor --setting ED >/dev/null
  echo $(( ($(date +%s%N) - t0) / 1000 )) >> times
done
sort -n times | awk '{a[NR]=$1} END {printf "query: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, a[NR]/1000}'
echo "== failover: kill -9 of node a"
held=$("$bin" status --format json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for l in d["store"]["leases"] if l["owner"].startswith("a:") and l["expires_in_ms"] > 0))')
kill -9 "${pids[0]}"
t0=$(date +%s%N)
before=$(grep -c 'took a mailbox' node-b.log || true)
until [ "$(grep -c 'took a mailbox' node-b.log || true)" -ge $(( before + held )) ]; do sleep 0.05; done
echo "node b took node a's $held mailboxes $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill (lease period $lease s)"

# The leases a node holds now.
held_by() { "$bin" status --format json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(l["name"] for l in d["store"]["leases"] if l["owner"].startswith(sys.argv[1]+":") and l["expires_in_ms"] > 0 and l["name"].startswith("mailbox:")))' "$1"; }
# Starts node $1 (with fault $2, if any); returns once it holds mailboxes.
start_node() {
  local fault=()
  [ -n "${2:-}" ] && fault=("CPIS_GATEWAY_FAULT=$2")
  env CPIS_GATEWAY_NODE="$1" "${fault[@]}" "$bin" run 2> "node-$1.log" &
  pids+=($!)
  disown
  sleep $(( 2 * lease ))
  until [ -n "$(held_by "$1")" ]; do sleep 0.2; done
}
# Waits until node b has taken $1 more mailboxes; the milliseconds since $2.
taken_after() {
  local before=$3
  until [ "$(grep -c 'took a mailbox' node-b.log || true)" -ge $(( before + $1 )) ]; do sleep 0.05; done
  echo $(( ($(date +%s%N) - $2) / 1000000 ))
}

echo "== failover: node c frozen (SIGSTOP) outside its write transaction"
start_node c ""
mine=$(held_by c | wc -w)
before=$(grep -c 'took a mailbox' node-b.log || true)
kill -STOP "${pids[-1]}"
t0=$(date +%s%N)
echo "node b took node c's $mine mailboxes $(taken_after "$mine" "$t0" "$before") ms after it froze (lease period $lease s)"
kill -9 "${pids[-1]}"

echo "== failover: node d frozen (SIGSTOP) inside its write transaction"
"$bin" gen national --rows 150000 --day 1 --at 20261122T020000 --out day1 >/dev/null
start_node d "pause-before-commit:$(( 3 * lease * 1000 ))"
la=$(held_by d | tr ' ' '\n' | head -1 | sed 's/mailbox:LA//')
mine=$(held_by d | wc -w)
file=$(ls day1/CPIS_EXTRACT_${la}_*)
ack="var/mailboxes/LA$la/out/CPIS_ACK_$(basename "${file%.csv}").json"
before=$(grep -c 'took a mailbox' node-b.log || true)
mv "$file" "var/mailboxes/LA$la/in/"
until grep -q 'pausing before commit' node-d.log; do sleep 0.02; done
kill -STOP "${pids[-1]}"
t0=$(date +%s%N)
echo "node b took node d's $mine mailboxes $(taken_after "$mine" "$t0" "$before") ms after it froze inside its transaction (lease period $lease s)"
until [ -f "$ack" ]; do sleep 0.05; done
echo "the file node d was committing (LA $la) was acknowledged by node b $(( ($(date +%s%N) - t0) / 1000000 )) ms after d froze"
kill -9 "${pids[-1]}"
