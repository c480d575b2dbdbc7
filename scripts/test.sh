#!/usr/bin/env bash
# Runs every test against real services: starts PostgreSQL and Redis (installing them if
# needed), then the whole workspace's tests. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo test --workspace --locked "$@"
