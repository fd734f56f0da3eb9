#!/usr/bin/env bash
# Builds Headway and serves the bundled model store (models/) on port 50051.
# Flags go to headway_server, e.g. scripts/serve.sh --port=8500 (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >&2
exec "${HEADWAY_BUILD_DIR:-build}/server/headway_server" --model_store=models "$@"
