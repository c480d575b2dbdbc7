#!/usr/bin/env bash
# Installs (when missing) and starts PostgreSQL and Redis on 127.0.0.1 for Tollgate, and
# creates the `tollgate` role and database. Idempotent; needs root (or sudo) to install.
#
#   scripts/services.sh            # install if needed, start, create role and database
#   TOLLGATE_BROWSER=1             also install Chromium and ChromeDriver (the console's tests)
#   TOLLGATE_PG_PORT, TOLLGATE_REDIS_PORT   ports (5432, 6379)
#   TOLLGATE_PG_DATA_DIR           keep the data in a cluster `tollgate` there (e.g. a RAM disk)
#   TOLLGATE_PG_FSYNC=off          faster, for throwaway test data
#
# Afterwards: postgres://tollgate:tollgate@127.0.0.1:5432/tollgate and redis://127.0.0.1:6379
set -euo pipefail

PG_PORT=${TOLLGATE_PG_PORT:-5432}
REDIS_PORT=${TOLLGATE_REDIS_PORT:-6379}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

need_install=()
command -v pg_lsclusters >/dev/null 2>&1 || need_install+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_install+=(redis-server)
command -v psql >/dev/null 2>&1 || need_install+=(postgresql-client)
# The console's browser tests (tests/it/console.rs): headless Chromium driven by its WebDriver.
if [ -n "${TOLLGATE_BROWSER:-}" ]; then
  command -v chromium >/dev/null 2>&1 || need_install+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need_install+=(chromium-driver)
fi
if [ ${#need_install[@]} -gt 0 ]; then
  echo "services: installing ${need_install[*]}"
  as_root apt-get update -qq
  # Package scripts must not try to start services through an init system that may not exist.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_install[@]}" >/dev/null
fi

# PostgreSQL: the Debian cluster, listening on loopback only. With TOLLGATE_PG_DATA_DIR set, a
# cluster named `tollgate` keeps its data there instead (CI puts it on a RAM disk: a machine whose
# disk is nearly full would otherwise fail the large report test with "No space left on device").
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if [ -n "${TOLLGATE_PG_DATA_DIR:-}" ]; then
  # A RAM disk is empty after a reboot while the cluster's configuration stays: make it again.
  if pg_lsclusters --no-header | awk '$2=="tollgate" {found=1} END {exit !found}' &&
    ! as_root test -f "$TOLLGATE_PG_DATA_DIR/PG_VERSION"; then
    echo "services: the tollgate cluster's data directory $TOLLGATE_PG_DATA_DIR is gone; creating it again"
    as_root pg_dropcluster --stop "$version" tollgate 2>/dev/null || as_root rm -rf "/etc/postgresql/$version/tollgate"
  fi
  if ! pg_lsclusters --no-header | awk '$2=="tollgate" {found=1} END {exit !found}'; then
    as_root pg_createcluster "$version" tollgate -d "$TOLLGATE_PG_DATA_DIR" --port "$PG_PORT" >/dev/null
  fi
  cluster=$(pg_lsclusters --no-header | awk '$2=="tollgate" {print $1" "$2; exit}')
  # Another cluster already listening on the port would take the connections meant for this one.
  pg_lsclusters --no-header | awk -v p="$PG_PORT" '$2!="tollgate" && $3==p && $4 ~ /online/ {print $1" "$2}' |
    while read -r v c; do as_root pg_ctlcluster "$v" "$c" stop; done
else
  # The cluster already serving the port, if any (e.g. one CI made on the RAM disk); else the first.
  cluster=$(pg_lsclusters --no-header | awk -v p="$PG_PORT" '$3==p && $4 ~ /online/ {print $1" "$2; exit}')
  [ -n "$cluster" ] || cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
  if [ -z "$cluster" ]; then
    as_root pg_createcluster "$version" main --port "$PG_PORT" >/dev/null
    cluster="$version main"
  fi
fi
set -- $cluster
if ! pg_lsclusters --no-header | awk -v v="$1" -v c="$2" '$1==v && $2==c {print $4}' | grep -q online; then
  # A cluster that was not shut down cleanly replays its log and syncs its data directory
  # before it accepts connections, which can take longer than pg_ctl's default 60 s. WAL is
  # capped at 256 MB between checkpoints (the default, 1 GB, is a lot of a small disk).
  as_root pg_ctlcluster "$1" "$2" start -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c max_connections=500 -c max_wal_size=256MB -c fsync=${TOLLGATE_PG_FSYNC:-on}" -- -t 600
fi
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
  sleep 0.2
done
pg_isready -h 127.0.0.1 -p "$PG_PORT"

psql_admin() { as_root su postgres -c "psql -p $PG_PORT -v ON_ERROR_STOP=1 -qAt $*"; }
if [ "$(psql_admin "-c \"SELECT 1 FROM pg_roles WHERE rolname = 'tollgate'\"")" != 1 ]; then
  psql_admin "-c \"CREATE ROLE tollgate LOGIN CREATEDB PASSWORD 'tollgate'\""
fi
if [ "$(psql_admin "-c \"SELECT 1 FROM pg_database WHERE datname = 'tollgate'\"")" != 1 ]; then
  psql_admin "-c \"CREATE DATABASE tollgate OWNER tollgate\""
fi

# Redis: loopback only, no persistence (PostgreSQL is the durable record).
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --save '' --appendonly no \
    --logfile /tmp/tollgate-redis.log
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null
echo "services: postgres://tollgate:tollgate@127.0.0.1:$PG_PORT/tollgate redis://127.0.0.1:$REDIS_PORT"
