#!/usr/bin/env bash
# FHIR API benchmark (issue 24): CareTeam look-ups per second and p50/p99 over TLS with
# keep-alive, 32 concurrent clients, about 90 % of children not on the list and 10 % on it
# (unscheduled), against a store of 150,000 records, on SQLite and on PostgreSQL; beside
# the baseline measured in the same run, the `query` path's own cost per look-up, warm and
# in process (examples/query_bench.rs).
#
#   bench/api.sh            # SQLite and PostgreSQL, 20 s each
#   bench/api.sh --quick    # SQLite only, 10 s
#
# Aim (2-core machine, client and server together): >= 2,000 look-ups/s at p99 < 25 ms on
# SQLite. Client and server share the machine's cores: the figures are of both.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${1:-}
seconds=20
[ "$quick" = "--quick" ] && seconds=10
out=bench/out/api
rm -rf "$out"
mkdir -p "$out"
cargo build --release --quiet --bin cpis-gateway --example api_load --example query_bench --example ingest_bench
bin=$PWD/target/release/cpis-gateway
$bin gen attendance --rows 20000 --national-rows 150000 --flagged-share 0.1 --seed 3 --at 20261121T235900 --out "$out/queries" >/dev/null
queries=$(ls "$out"/queries/*.csv)

# A CA and the API's certificate for 127.0.0.1.
(
  cd "$out"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -keyout api.key -out api.csr -subj "/CN=127.0.0.1" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > api.ext
  openssl x509 -req -in api.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out api.pem -days 2 -extfile api.ext >/dev/null 2>&1
)
token=bench-token
hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)

run() { # run NAME [STORE_URL]: a root, the national store, then the API and query_bench
  local name=$1 url=${2:-} root="$out/$1"
  mkdir -p "$root"
  cat > "$root/config.toml" <<TOML
[gateway]
root = "var"
[api]
listen = "127.0.0.1:0"
tls_cert = "$PWD/$out/api.pem"
tls_key = "$PWD/$out/api.key"
[[health_org]]
ods = "RWG"
name = "West Herts"
api_token_sha256 = ["$hash"]
TOML
  export CPIS_GATEWAY_STORE_URL=$url
  # ingest_bench takes the files it loads: each store gets its own copy.
  $bin gen national --rows 150000 --at 20261121T020000 --out "$root/national" >/dev/null
  target/release/examples/ingest_bench "$root/var" "$root/national" >/dev/null
  (cd "$root" && exec $bin serve > serve.out 2> serve.err) &
  local pid=$!
  for _ in $(seq 1 100); do [ -s "$root/serve.out" ] && break; sleep 0.1; done
  local base
  base=$(sed 's/listening on //' "$root/serve.out")
  echo "== $name: query path, warm, in process (baseline)"
  target/release/examples/query_bench "$root/var" "$queries" 20000 | sed 's/^/   /'
  echo "== $name: FHIR API over TLS, 32 clients, keep-alive"
  target/release/examples/api_load "$base" "$out/ca.pem" "$token" "$queries" 32 "$seconds" | sed 's/^/   /'
  kill "$pid"; wait "$pid" 2>/dev/null || true
  unset CPIS_GATEWAY_STORE_URL
}

run sqlite
if [ "$quick" != "--quick" ]; then
  . bench/pg.sh "$PWD/$out/pg"
  trap pg_stop EXIT
  psql -c "CREATE DATABASE bench" >/dev/null
  run postgres "$(pgurl bench)"
fi
