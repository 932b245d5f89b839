#!/usr/bin/env bash
# The tests, on a machine that has only Rust: installs what they need, then runs them.
#   - Debian packages (apt-get, as root): an OpenSSH server for the SFTP tests, SQLite's shell
#     to dump and tamper with a store, xmllint for the XSD, systemd-analyze for the unit,
#     Chromium for the report page, dpkg-deb for the package, PostgreSQL for `store copy`;
#   - cargo-deb (crates.io) to build the Debian package;
#   - NHS England's mesh-sandbox and mesh-client (PyPI, pinned in tests/mesh/requirements.txt)
#     in a venv at target/mesh-venv, the MESH tests' peer.
# Some tests mount a tmpfs (a full disk) and hand a root to another user: run as root, as CI
# does. `scripts/test.sh --deps-only` installs and stops (.ci/run does that before clippy,
# which needs the OpenSSL headers too), anything else is passed to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)    # ssh2 builds libssh2 against OpenSSL
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
command -v mount >/dev/null 2>&1 || need+=(mount)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v openssl >/dev/null 2>&1 || need+=(openssl)           # the MESH TLS test's certificates
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)   # the PostgreSQL store's tests
command -v setsid >/dev/null 2>&1 || need+=(util-linux)         # the shared test server's watchdog
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)            # HL7's FHIR R4 schema, the FHIR bodies' checker
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: these Debian packages are missing: ${need[*]}; run as root (apt-get installs them)" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install --locked --quiet cargo-deb@3.8.0
fi

# HL7's FHIR R4 JSON Schema and its validator, pinned by tests/fhir/package-lock.json: the
# independent checker of every FHIR body (tests/fhir/check.js).
fhir=target/fhir-checker
if ! cmp -s tests/fhir/package-lock.json "$fhir/package-lock.json" 2>/dev/null; then
  rm -rf "$fhir"
  mkdir -p "$fhir"
  cp tests/fhir/package.json tests/fhir/package-lock.json "$fhir/"
  (cd "$fhir" && npm ci --silent --no-audit --no-fund)
fi

venv=target/mesh-venv
if ! cmp -s tests/mesh/requirements.txt "$venv/requirements.txt" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/mesh/requirements.txt
  cp tests/mesh/requirements.txt "$venv/requirements.txt"
fi

[ "${1:-}" = "--deps-only" ] && exit 0
cargo test --locked "$@"
# The store, ingest, health, report, daemon and operator tests again, on PostgreSQL: one
# list of tests, so no behaviour of the store is tested on one backend alone.
if [ $# -eq 0 ]; then
  CPIS_TEST_STORE=postgres cargo test --locked --test it -- \
    store:: health:: reports:: daemon:: operators:: uploads:: api:: --skip pgstore::
fi
