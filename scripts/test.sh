#!/usr/bin/env bash
# Runs every test against real services: starts PostgreSQL and Redis (installing them if
# needed), installs the official `openai` and `anthropic` Python SDKs into a virtualenv for the
# SDK tests, then runs the whole workspace's tests. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh

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

cargo test --workspace --locked "$@"
