#!/usr/bin/env bash
# What the ledger costs PostgreSQL, per request: starts a PostgreSQL server of its own (so
# every process of it is the ledger's work, whatever else the machine runs), records events
# through the ledger at a fixed rate (examples/ledger_cost.rs) and prints the server's CPU
# time per event. Each round gets a fresh server; the median is what bench/README.md quotes.
#
#   bench/ledger.sh                          # 3 rounds of 200,000 events at 14,000/s, 1 key
#   ROUNDS=5 KEYS=64 bench/ledger.sh         # a campaign with a key per worker
#   EVENTS=100000 RATE=5000 bench/ledger.sh
#
# Environment: ROUNDS (3), EVENTS (200000), RATE (14000 events/s: the saturated load of
# bench/run.sh), KEYS (1), PROFILE (dev: the client's build does not change what PostgreSQL
# does; `release` to match bench/run.sh), PG_BIN (the newest /usr/lib/postgresql/*/bin).
# Needs initdb and postgres; as root, the server runs as the `postgres` user.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd)
ROUNDS=${ROUNDS:-3}
PROFILE=${PROFILE:-dev}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$PG_BIN/initdb" ] || { echo "ledger bench: no initdb in '$PG_BIN' (set PG_BIN)" >&2; exit 1; }

log() { printf 'ledger bench: %s\n' "$*" >&2; }

cd "$REPO"
log "building examples/ledger_cost.rs ($PROFILE)"
cargo build -q --profile "$PROFILE" --example ledger_cost
target_dir=${CARGO_TARGET_DIR:-$REPO/target}
subdir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
BIN=$target_dir/$subdir/examples/ledger_cost

WORK=$(mktemp -d /tmp/tollgate-ledger-bench.XXXXXX)
chmod 755 "$WORK"
as_server() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PGDATA=$WORK/data
stop_server() { [ -f "$PGDATA/postmaster.pid" ] && as_server "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true; }
trap 'stop_server; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

results=()
for round in $(seq 1 "$ROUNDS"); do
  stop_server
  rm -rf "$PGDATA"
  mkdir -p "$PGDATA"
  [ "$(id -u)" != 0 ] || chown postgres "$PGDATA" "$WORK"
  as_server "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
  port=$(free_port)
  # The defaults of a packaged server (shared_buffers 128MB, fsync and synchronous_commit on),
  # on loopback only.
  as_server "$PG_BIN/pg_ctl" -D "$PGDATA" -w -l "$WORK/server.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$WORK -c shared_buffers=128MB" start >/dev/null
  line=$(DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres" PGDATA=$PGDATA "$BIN" | tee /dev/stderr | grep 'per event')
  results+=("$(sed -E 's/.* ([0-9.]+) µs per event.*/\1/' <<<"$line")")
done
stop_server
median=$(printf '%s\n' "${results[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "PostgreSQL CPU per event over $ROUNDS rounds: ${results[*]} µs; median $median µs"
