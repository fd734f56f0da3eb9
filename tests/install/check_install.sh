#!/usr/bin/env bash
# What a user of the client library does: cmake --install, then a program of their own
# (examples/client) built against the installed package with find_package(Headway),
# classifying the README's example image with the installed server. Then a client-only
# build (HEADWAY_CLIENT_ONLY, with LibTorch, OpenCV and prometheus-cpp made unfindable)
# configures and builds the client library.
#   tests/install/check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d /tmp/headway-install-XXXXXX)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
echo "installed: $(cd "$work/prefix" && find bin lib include -maxdepth 3 | sort | tr '\n' ' ')"
cmake -S "$source/examples/client" -B "$work/example" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/example" >/dev/null

"$work/prefix/bin/headway_server" --model_store="$source/models" --port=0 \
  --port_file="$work/port" --metrics_address= --http_port=0 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 600); do [ -s "$work/port" ] && break; sleep 0.1; done
"$work/example/classify" "127.0.0.1:$(cat "$work/port")" digits \
  "$source/examples/images/seven.png" | tee "$work/answer"
[ "$(head -1 "$work/answer" | cut -d' ' -f1)" = 7 ]

cmake -S "$source" -B "$work/client-only" -G Ninja --no-warn-unused-cli -DHEADWAY_CLIENT_ONLY=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON -DCMAKE_DISABLE_FIND_PACKAGE_prometheus-cpp=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_OpenCV=ON >/dev/null
cmake --build "$work/client-only" --target headway_client >/dev/null
echo "client-only build: headway_client built without LibTorch"
