#!/usr/bin/env bash
# Builds Debian's own abseil (the exact source of the installed libabsl20220623,
# with Debian's patches) as shared libraries instrumented with ThreadSanitizer.
#   scripts/sanitizers/build-tsan-abseil.sh OUT_DIR
# Prints OUT_DIR/lib when done. The libraries keep Debian's SONAMEs and inline
# namespace, so putting OUT_DIR/lib first on LD_LIBRARY_PATH swaps them in for
# every user of abseil in the process: Headway, gRPC and protobuf alike. TSan then
# sees absl::Mutex and absl::CondVar, which Debian's uninstrumented build hides.
# Needs the Debian source archive (scripts/sanitizers/debian-source.sh).
set -euo pipefail
out=$(realpath -m "${1:?usage: build-tsan-abseil.sh OUT_DIR}")
marker=$out/lib/libabsl_synchronization.so.20220623
if [[ -e $marker ]]; then
  echo "$out/lib"
  exit 0
fi

work=$out/work
rm -rf "$work" && mkdir -p "$work"
"$(dirname "$0")/debian-source.sh" abseil libabsl20220623 "$work/src"

# Debian's flags (no NDEBUG, C++17, shared), plus the sanitizer.
flags="-O1 -g -fno-omit-frame-pointer -fsanitize=thread"
cmake -S "$work/src" -B "$work/build" -G Ninja >&2 \
  -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON \
  -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_TESTING=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
  -DCMAKE_CXX_COMPILER_LAUNCHER="$(command -v ccache || true)" \
  -DCMAKE_INSTALL_PREFIX="$out" -DCMAKE_INSTALL_LIBDIR=lib
cmake --build "$work/build" >&2
cmake --install "$work/build" >&2
rm -rf "$work"
echo "$out/lib"
