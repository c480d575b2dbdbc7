#!/usr/bin/env bash
# Runs every test against real services: starts PostgreSQL and Redis (installing them, and
# Chromium with its WebDriver for the console's tests, if needed), installs the official
# `openai` and `anthropic` Python SDKs into a virtualenv for the SDK tests, checks that the
# committed query data (.sqlx/) is current, then runs the whole workspace's tests. Extra
# arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
TOLLGATE_BROWSER=1 scripts/services.sh

venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openai, anthropic' 2>/dev/null; then
  python3 -m venv "$venv" 2>/dev/null || {
    # Debian's python3 needs its venv package; the toolchain image's python has it built in.
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq python3-venv >/dev/null; else sudo apt-get install -y -qq python3-venv >/dev/null; fi
    python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'openai>=1.40,<3' 'anthropic>=0.40,<1'
fi
export TOLLGATE_TEST_PYTHON=$PWD/$venv/bin/python

# The committed query data (.sqlx/) must be what the queries and migrations produce now:
# regenerate it against a freshly migrated scratch database and compare.
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
if ! scripts/sqlx-prepare.sh "$fresh" >/dev/null || ! diff -r .sqlx "$fresh" >/dev/null; then
  diff -r .sqlx "$fresh" || true
  echo "test: .sqlx/ does not match the queries in src/ and migrations/: run scripts/sqlx-prepare.sh and commit .sqlx/" >&2
  exit 1
fi

cargo test --workspace --locked "$@"
