#!/usr/bin/env bash
# Builds Headway with a sanitizer and runs the whole test suite under it.
#   scripts/sanitize.sh address   # AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/sanitize.sh thread    # ThreadSanitizer
# Builds into build-address/ or build-thread/ (about as long as a normal build). The
# end-to-end tests start the sanitized server binary, so its findings fail them too.
# Extra arguments go to ctest (for example -R Batcher).
#
# The thread run first builds Debian's abseil source with -fsanitize=thread into
# build-thread-absl/ (once, a few minutes; scripts/sanitizers/build-tsan-abseil.sh) and
# runs the tests with it on LD_LIBRARY_PATH: Debian's abseil is not instrumented, and
# without it TSan cannot see absl::Mutex and reports every access it guards as a race.
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
  export LD_LIBRARY_PATH=$tsan_abseil${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # Check the swap took: the server must load the instrumented abseil.
  libraries=$(ldd "$build_dir/server/headway_server")
  [[ $libraries == *"$tsan_abseil/libabsl_synchronization"* ]] ||
    { echo "the TSan build does not pick up $tsan_abseil" >&2; exit 1; }
fi
# Debian's LibTorch, gRPC and OpenCV are not instrumented: only Headway's code is
# checked. LibTorch's allocator and gRPC keep some memory until exit on purpose.
export ASAN_OPTIONS=detect_leaks=1:detect_container_overflow=0:abort_on_error=0
export LSAN_OPTIONS=suppressions=$suppressions/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$suppressions/ubsan.supp
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$suppressions/tsan.supp
ctest --test-dir "$build_dir" --output-on-failure -j2 --timeout 1200 "$@"
