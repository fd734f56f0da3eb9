#!/usr/bin/env bash
# Installs missing Debian packages, then configures and builds Headway into build/
# (or $HEADWAY_BUILD_DIR). Extra arguments go to cmake's configure step.
#   scripts/build.sh                  everything, tests included
#   HEADWAY_BUILD_SET=serve scripts/build.sh
#                                     what serving needs: the server, CLI and load
#                                     generator, from the serving packages alone
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${HEADWAY_BUILD_DIR:-build}
if [ "${HEADWAY_BUILD_SET:-all}" = serve ]; then
  scripts/install-deps.sh serve
  # Tests stay as configured before (a build dir made by test.sh keeps them); a new
  # one leaves them out, as their packages may be missing.
  tests=()
  [ -f "$build_dir/CMakeCache.txt" ] || tests=(-DHEADWAY_BUILD_TESTS=OFF)
  cmake -S . -B "$build_dir" -G Ninja "${tests[@]}" "$@"
  cmake --build "$build_dir" --target headway_server headway headway_loadgen
else
  scripts/install-deps.sh
  cmake -S . -B "$build_dir" -G Ninja -DHEADWAY_BUILD_TESTS=ON "$@"
  cmake --build "$build_dir"
fi
