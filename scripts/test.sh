#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# llama-server with our samplers, for tests/test_llama_server.py (which then
# fails rather than skips if the server is missing).
bash scripts/build_server.sh
export LLAMA_SIMPLEX_REQUIRE_SERVER=1
# Run from outside the source tree so the installed package is the one tested.
cd tests && ${PYTHON:-python3} -m pytest -q -p no:cacheprovider "$@" .
