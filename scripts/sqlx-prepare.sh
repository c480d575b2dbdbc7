#!/usr/bin/env bash
# Regenerates .sqlx/, the query data the `sqlx::query!` macros check the gateway's SQL against
# when they build offline (the default: .cargo/config.toml sets SQLX_OFFLINE=true). Run it after
# changing a query or a migration, and commit the result.
#
#   scripts/sqlx-prepare.sh          # rewrite .sqlx/
#   scripts/sqlx-prepare.sh DIR      # write the data into DIR instead (scripts/test.sh compares)
#
# It creates a scratch database on the test PostgreSQL (TOLLGATE_TEST_DATABASE_URL, default the
# one scripts/services.sh sets up), applies migrations/*.sql to it with psql, and type-checks the
# library with the macros online against it, which writes one file per query. The scratch
# database is dropped afterwards. This is what `cargo sqlx prepare` does, without sqlx-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=${1:-.sqlx}
mkdir -p "$out"
out=$(cd "$out" && pwd)

admin_url=${TOLLGATE_TEST_DATABASE_URL:-postgres://tollgate:tollgate@127.0.0.1:5432/tollgate}
database="tg_sqlx_prepare_$$_$(date +%s)"
url="${admin_url%/*}/$database"

psql_quiet() { psql -X -q -v ON_ERROR_STOP=1 "$@" >/dev/null; }
psql_quiet "$admin_url" -c "CREATE DATABASE $database"
trap 'psql_quiet "$admin_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)"' EXIT
for migration in migrations/*.sql; do
  # One transaction per file, as the gateway's migrator applies them.
  psql_quiet "$url" --single-transaction -f "$migration"
done

# Only the files of the queries that exist now: a removed or changed query leaves none behind.
rm -f "$out"/query-*.json
# The macros read these variables without telling cargo, so the library is rebuilt by hand.
touch "$root/src/lib.rs"
SQLX_OFFLINE=false DATABASE_URL="$url" SQLX_OFFLINE_DIR="$out" \
  cargo check --quiet --locked -p tollgate --lib
count=$(find "$out" -maxdepth 1 -name 'query-*.json' | wc -l)
echo "sqlx-prepare: wrote the data of $count queries to $out"
