#!/usr/bin/env bash
# Builds Headway with a sanitizer and runs the whole test suite under it.
#   scripts/sanitize.sh address   # AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/sanitize.sh thread    # ThreadSanitizer
# Builds into build-address/ or build-thread/ (about as long as a normal build). The
# end-to-end tests start the sanitized server binary, so its findings fail them too.
# Extra arguments go to ctest (for example -R Batcher).
#
# The thread run first builds Debian's own abseil and gRPC sources with
# -fsanitize=thread into build-thread-absl/ and build-thread-grpc/ (once: a few minutes
# and about half an hour on 2 cores; scripts/sanitizers/build-tsan-*.sh) and runs the
# tests with them first on LD_LIBRARY_PATH. Debian's builds are not instrumented:
# without them TSan cannot see absl::Mutex or gRPC's hand-offs between its threads and
# reports the accesses they order as races.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/sanitize.sh address|thread [ctest args]}
shift
build_dir=build-$kind
export HEADWAY_BUILD_DIR=$build_dir
scripts/build.sh -DHEADWAY_SANITIZE="$kind" -DCMAKE_BUILD_TYPE=RelWithDebInfo

suppressions=$PWD/scripts/sanitizers
if [[ $kind == thread ]]; then
  tsan_abseil=$(scripts/sanitizers/build-tsan-abseil.sh build-thread-absl)
  tsan_grpc=$(scripts/sanitizers/build-tsan-grpc.sh build-thread-grpc)
  export LD_LIBRARY_PATH=$tsan_grpc:$tsan_abseil${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # Check the swap took: the server must load the instrumented libraries.
  libraries=$(ldd "$build_dir/server/headway_server")
  for library in "$tsan_abseil/libabsl_synchronization" "$tsan_grpc/libgrpc.so" \
    "$tsan_grpc/libgrpc++.so"; do
    [[ $libraries == *"$library"* ]] ||
      { echo "the TSan build does not load $library" >&2; exit 1; }
  done
fi
# Debian's LibTorch and OpenCV are not instrumented (nor gRPC, but under TSan): only
# Headway's code is checked in them. LibTorch's allocator and gRPC keep some memory
# until exit on purpose.
# An allocation too large to serve returns null, as glibc's does, so LibTorch throws
# and the server answers RESOURCE_EXHAUSTED (ServerFaultTest) instead of ASan aborting.
export ASAN_OPTIONS=detect_leaks=1:detect_container_overflow=0:abort_on_error=0:allocator_may_return_null=1
export LSAN_OPTIONS=suppressions=$suppressions/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$suppressions/ubsan.supp
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$suppressions/tsan.supp
ctest --test-dir "$build_dir" --output-on-failure -j2 --timeout 1200 "$@"
