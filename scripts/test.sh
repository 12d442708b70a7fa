#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Run from outside the source tree so the installed package is the one tested.
cd tests && ${PYTHON:-python3} -m pytest -q -p no:cacheprovider "$@" .
