#!/usr/bin/env bash
# MESH throughput on this machine, against NHS England's mesh-sandbox (file store, full
# authentication) on 127.0.0.1, with NHS England's mesh-client playing the LA:
#   - messages per second received and sent by `cpis-gateway mesh poll` (N small files);
#   - the time to move one ~100 MB extract each way (20 MiB chunks), beside mesh-client
#     doing the same transfers on the same sandbox (the baseline).
# The sandbox gzips an uncompressed message on the fly (in Python) for a client that accepts
# gzip, as the gateway and mesh-client both do: that is most of "gateway receives it".
# Usage: bench/mesh.sh [N=200] [ROWS=1180000, about 100 MB]. Needs target/mesh-venv (scripts/test.sh
# --deps-only makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
rows=${2:-1180000}
venv=target/mesh-venv
[ -x "$venv/bin/uvicorn" ] || { echo "no $venv: run scripts/test.sh --deps-only" >&2; exit 2; }
cargo build --release --quiet
bin=$PWD/target/release/cpis-gateway
work=$(mktemp -d)
sandbox=
cleanup() { [ -n "$sandbox" ] && kill "$sandbox" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
mkdir -p "$work/data/X26GW001/in" "$work/data/X26LA919/in"
STORE_MODE=file MAILBOXES_DATA_DIR="$work/data" AUTH_MODE=full SHARED_KEY=BenchKey \
  "$venv/bin/uvicorn" mesh_sandbox.api:app --host 127.0.0.1 --port "$port" --log-level warning \
  >"$work/sandbox.log" 2>&1 &
sandbox=$!
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null; do sleep 0.2; done
cat >"$work/config.toml" <<TOML
[gateway]
root = "var"
local_authorities = ["919"]
[mesh]
url = "$url"
mesh_mailbox = "X26GW001"
password = "password"
shared_key = "BenchKey"
[[mesh.partner]]
mailbox = "LA919"
mesh_mailbox = "X26LA919"
TOML
gw() { "$bin" --config "$work/config.toml" "$@"; }
la() { "$venv/bin/python" tests/mesh/party.py "$url" X26LA919 BenchKey "$@"; }
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
gw init >/dev/null
echo "== $n small messages (one sample extract each, $(stat -c %s inbox-samples/CPIS_EXTRACT_919_20261121T020000.csv) bytes)"
mkdir -p "$work/small"
for i in $(seq -w 1 "$n"); do cp inbox-samples/CPIS_EXTRACT_919_20261121T020000.csv "$work/small/bench_$i.csv"; done
t0=$(now); la send-many X26GW001 "$work/small" CPIS_EXTRACT >/dev/null; t1=$(now)
echo "mesh-client sends them:        $(secs "$t0" "$t1") s  ($(python3 -c "print(round($n / ($t1 - $t0)))") msg/s)"
t0=$(now); gw mesh poll; t1=$(now)
echo "gateway receives them:         $(secs "$t0" "$t1") s  ($(python3 -c "print(round($n / ($t1 - $t0)))") msg/s)"
out=$work/var/mailboxes/LA919/out
for i in $(seq -w 1 "$n"); do cp inbox-samples/CPIS_EXTRACT_919_20261121T020000.csv "$out/CPIS_DQ_919_bench$i.csv"; done
t0=$(now); gw mesh poll; t1=$(now)
echo "gateway sends them:            $(secs "$t0" "$t1") s  ($(python3 -c "print(round($n / ($t1 - $t0)))") msg/s)"
mkdir -p "$work/got"
t0=$(now); la inbox "$work/got" >/dev/null; t1=$(now)
echo "mesh-client receives them:     $(secs "$t0" "$t1") s  ($(python3 -c "print(round($n / ($t1 - $t0)))") msg/s)"

echo
"$bin" gen extract --la 919 --rows "$rows" --out "$work" >/dev/null
big=$(ls "$work"/CPIS_EXTRACT_919_*.csv | head -1)
size=$(stat -c %s "$big")
echo "== one extract of $rows rows, $((size / 1000000)) MB, in 20 MiB chunks"
mkdir -p "$work/one"; mv "$big" "$work/one/"; big=$work/one/$(basename "$big")
t0=$(now); la send-many X26GW001 "$work/one" CPIS_EXTRACT 20971520 >/dev/null; t1=$(now)
echo "mesh-client sends it:          $(secs "$t0" "$t1") s"
t0=$(now); gw mesh poll; t1=$(now)
echo "gateway receives it:           $(secs "$t0" "$t1") s"
cmp "$big" "$work/var/mailboxes/LA919/in/$(basename "$big")" && echo "  (arrived byte for byte)"
cp "$big" "$out/CPIS_DQ_919_big.csv"
t0=$(now); gw mesh poll; t1=$(now)
echo "gateway sends it:              $(secs "$t0" "$t1") s"
rm -rf "$work/got"; mkdir -p "$work/got"
t0=$(now); la inbox "$work/got" >/dev/null; t1=$(now)
echo "mesh-client receives it:       $(secs "$t0" "$t1") s"
cmp "$big" "$work/got/CPIS_DQ_919_big.csv" && echo "  (arrived byte for byte)"
