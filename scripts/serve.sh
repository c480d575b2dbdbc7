#!/usr/bin/env bash
# Runs Tollgate locally on a fresh Debian machine: installs and starts PostgreSQL and Redis
# if needed, builds the binaries, starts the mock upstream, and serves the gateway with
# tollgate.toml (migrations run at start-up). Ctrl-C stops everything; the ledger drains.
#
#   scripts/serve.sh                   # data plane on :8080, admin API on :8081
#   TOLLGATE_NO_MOCK=1 scripts/serve.sh   # without the mock upstream
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh

# The admin JWT secret: from the environment, or generated once and kept in .tollgate/.
mkdir -p .tollgate
if [ -z "${TOLLGATE_ADMIN_JWT_SECRET:-}" ]; then
  if [ ! -s .tollgate/jwt-secret ]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > .tollgate/jwt-secret)
  fi
  TOLLGATE_ADMIN_JWT_SECRET=$(cat .tollgate/jwt-secret)
  export TOLLGATE_ADMIN_JWT_SECRET
fi

cargo build --release --locked -p tollgate -p mock-provider -p tollctl
bin=target/release

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -z "${TOLLGATE_NO_MOCK:-}" ]; then
  "$bin/mock-provider" --listen 127.0.0.1:18080 &
  pids+=($!)
fi

cat <<MSG
tollgate: data plane http://127.0.0.1:8080/v1, admin API http://127.0.0.1:8081/admin/v1
  export PATH=\$PWD/$bin:\$PATH TOLLGATE_ADMIN_JWT_SECRET=\$(cat .tollgate/jwt-secret)
  export TOLLGATE_ADMIN_TOKEN=\$(tollctl token mint --role admin)
MSG
"$bin/tollgate" serve --config "${TOLLGATE_CONFIG:-tollgate.toml}" &
pids+=($!)
wait "${pids[-1]}"
