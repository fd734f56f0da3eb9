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
# About half an hour on 2 cores.
set -euo pipefail
# Debian's providers (debian/rules); no tests.
exec "$(dirname "$0")/build-tsan-library.sh" "${1:?usage: build-tsan-grpc.sh OUT_DIR}" \
  grpc libgrpc29 libgrpc++.so.1.51 grpc++ \
  -DgRPC_ABSL_PROVIDER=package -DgRPC_CARES_PROVIDER=package \
  -DgRPC_PROTOBUF_PROVIDER=package -DgRPC_RE2_PROVIDER=package \
  -DgRPC_SSL_PROVIDER=package -DgRPC_ZLIB_PROVIDER=package \
  -DgRPC_BACKWARDS_COMPATIBILITY_MODE=OFF -DgRPC_BUILD_TESTS=OFF \
  -DgRPC_BUILD_CSHARP_EXT=OFF \
  -DProtobuf_PROTOC_LIBRARY="$(ls /usr/lib/*/libprotoc.so.* | head -1)"
