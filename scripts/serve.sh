#!/usr/bin/env bash
# Builds what serving needs (installing the Debian packages for it, as root; without
# root it names the missing ones) and serves the bundled model store (models/) on
# port 50051. Flags go to headway_server, e.g. scripts/serve.sh --port=8500 (--help).
set -euo pipefail
cd "$(dirname "$0")/.."
HEADWAY_BUILD_SET=serve scripts/build.sh >&2
exec "${HEADWAY_BUILD_DIR:-build}/server/headway_server" --model_store=models "$@"
