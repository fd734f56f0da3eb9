#!/usr/bin/env bash
# Installs missing Debian packages, then configures and builds Headway into build/
# (or $HEADWAY_BUILD_DIR). Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build_dir=${HEADWAY_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja "$@"
cmake --build "$build_dir"
