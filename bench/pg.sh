# Sourced by the bench scripts: starts Debian's PostgreSQL in "$1" (a folder of the
# bench's own) on a free 127.0.0.1 port with its default durability (fsync on,
# synchronous_commit on). Defines pgbin, port, as_pg, psql, pgurl DB and pg_stop (the
# caller stops it, in its own EXIT trap).
pg_dir=$1
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$pg_dir"
[ "$(id -u)" -eq 0 ] && chown postgres "$pg_dir"
as_pg "$pgbin/initdb" -D "$pg_dir/data" -A trust -U postgres >/dev/null
as_pg "$pgbin/pg_ctl" -D "$pg_dir/data" -o "-p $port -k $pg_dir -h 127.0.0.1" -l "$pg_dir/log" -w start >/dev/null
psql() { "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -X -q -tA "$@"; }
pgurl() { echo "postgres://postgres@127.0.0.1:$port/$1"; }
pg_stop() { as_pg "$pgbin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null; }
