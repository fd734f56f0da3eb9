#!/usr/bin/env bash
# Builds Debian's own gRPC (the exact source of the installed libgrpc29 and
# libgrpc++1.51, with Debian's patches and its system abseil, protobuf, re2, c-ares
# and OpenSSL) as shared libraries instrumented with ThreadSanitizer.
#   scripts/sanitizers/build-tsan-grpc.sh OUT_DIR
# Prints OUT_DIR/lib when done. Only grpc++ and what it links are built (grpc, gpr,
# upb, address_sorting), with Debian's SONAMEs, so putting OUT_DIR/lib first on
# LD_LIBRARY_PATH swaps them in. (Debian's reflection library stays: building it needs
# gRPC's code generator, and it runs on the instrumented grpc++ beneath it.)
# TSan then sees gRPC's own locks, atomics and hand-offs between its threads, which
# Debian's uninstrumented build hides and which otherwise read as races.
# About half an hour on 2 cores; ccache keeps a rebuild short.
set -euo pipefail
out=$(realpath -m "${1:?usage: build-tsan-grpc.sh OUT_DIR}")
marker=$out/lib/libgrpc++.so.1.51
if [[ -e $marker ]]; then
  echo "$out/lib"
  exit 0
fi

work=$out/work
rm -rf "$work" && mkdir -p "$work"
"$(dirname "$0")/debian-source.sh" grpc libgrpc29 "$work/src"

# Debian's providers (debian/rules), shared, no tests, plus the
# sanitizer. -g1 keeps line numbers for reports and the build shorter.
flags="-O1 -g1 -fno-omit-frame-pointer -fsanitize=thread"
cmake -S "$work/src" -B "$work/build" -G Ninja >&2 \
  -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON \
  -DgRPC_ABSL_PROVIDER=package -DgRPC_CARES_PROVIDER=package \
  -DgRPC_PROTOBUF_PROVIDER=package -DgRPC_RE2_PROVIDER=package \
  -DgRPC_SSL_PROVIDER=package -DgRPC_ZLIB_PROVIDER=package \
  -DgRPC_BACKWARDS_COMPATIBILITY_MODE=OFF -DgRPC_BUILD_TESTS=OFF \
  -DgRPC_BUILD_CSHARP_EXT=OFF \
  -DProtobuf_PROTOC_LIBRARY="$(ls /usr/lib/*/libprotoc.so.* | head -1)" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
  -DCMAKE_C_COMPILER_LAUNCHER="$(command -v ccache || true)" \
  -DCMAKE_CXX_COMPILER_LAUNCHER="$(command -v ccache || true)"
cmake --build "$work/build" --target grpc++ >&2
mkdir -p "$out/lib"
find "$work/build" -maxdepth 1 -name 'lib*.so*' -exec cp -a {} "$out/lib/" \;
rm -rf "$work"
echo "$out/lib"
