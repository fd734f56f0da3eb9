#!/usr/bin/env bash
# Builds Headway and runs the whole test suite under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir "${HEADWAY_BUILD_DIR:-build}" --output-on-failure -j2 --timeout 600
