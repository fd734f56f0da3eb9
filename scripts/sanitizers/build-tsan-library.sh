#!/usr/bin/env bash
# Builds the Debian source of an installed C++ library as shared libraries
# instrumented with ThreadSanitizer, with Debian's patches and SONAMEs, so putting
# OUT_DIR/lib first on LD_LIBRARY_PATH swaps them in for the installed ones.
#   scripts/sanitizers/build-tsan-library.sh OUT_DIR SOURCE_PACKAGE BINARY_PACKAGE \
#       MARKER TARGET [CMAKE_ARGS...]
# MARKER is a library file name: when OUT_DIR/lib has it, nothing is built again.
# TARGET is the CMake target to build ("all" for everything). Prints OUT_DIR/lib.
# Used by build-tsan-abseil.sh and build-tsan-grpc.sh, which hold each library's
# CMake options; ccache keeps a rebuild short.
set -euo pipefail
usage="usage: build-tsan-library.sh OUT_DIR SOURCE_PACKAGE BINARY_PACKAGE MARKER TARGET [CMAKE_ARGS...]"
out=$(realpath -m "${1:?$usage}")
source_package=${2:?$usage}
binary_package=${3:?$usage}
marker=${4:?$usage}
target=${5:?$usage}
shift 5
if [[ -e $out/lib/$marker ]]; then
  echo "$out/lib"
  exit 0
fi

work=$out/work
rm -rf "$work" && mkdir -p "$work"
"$(dirname "$0")/debian-source.sh" "$source_package" "$binary_package" "$work/src"

# Debian's flags (no NDEBUG, C++17, shared), plus the sanitizer; -g1 keeps the line
# numbers reports need and the build shorter.
flags="-O1 -g1 -fno-omit-frame-pointer -fsanitize=thread"
launcher=$(command -v ccache || true)
cmake -S "$work/src" -B "$work/build" -G Ninja >&2 \
  -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
  -DCMAKE_C_COMPILER_LAUNCHER="$launcher" -DCMAKE_CXX_COMPILER_LAUNCHER="$launcher" \
  "$@"
cmake --build "$work/build" --target "$target" >&2
# The shared libraries and their SONAME links, wherever the build tree put them.
mkdir -p "$out/lib"
find "$work/build" -name 'lib*.so*' \( -type f -o -type l \) -exec cp -a {} "$out/lib/" \;
rm -rf "$work"
echo "$out/lib"
