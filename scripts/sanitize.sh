#!/usr/bin/env bash
# Builds Headway with a sanitizer and runs the whole test suite under it.
#   scripts/sanitize.sh address   # AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/sanitize.sh thread    # ThreadSanitizer
# Builds into build-address/ or build-thread/ (about as long as a normal build). The
# end-to-end tests start the sanitized server binary, so its findings fail them too.
# Extra arguments go to ctest (for example -R Batcher).
#
# ThreadSanitizer caveat: Debian's abseil is not built with it, so TSan cannot see
# absl::Mutex's synchronisation and reports every absl::Mutex-guarded access in
# Headway (the batcher queue, the retirer, the worker pool) as a race. A clean TSan
# run needs abseil built with -fsanitize=thread; the ASan+UBSan run has no such gap.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/sanitize.sh address|thread [ctest args]}
shift
build_dir=build-$kind
export HEADWAY_BUILD_DIR=$build_dir
scripts/build.sh -DHEADWAY_SANITIZE="$kind" -DCMAKE_BUILD_TYPE=RelWithDebInfo

suppressions=$PWD/scripts/sanitizers
# Debian's LibTorch, gRPC and OpenCV are not instrumented: only Headway's code is
# checked. LibTorch's allocator and gRPC keep some memory until exit on purpose.
export ASAN_OPTIONS=detect_leaks=1:detect_container_overflow=0:abort_on_error=0
export LSAN_OPTIONS=suppressions=$suppressions/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$suppressions/ubsan.supp
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$suppressions/tsan.supp
ctest --test-dir "$build_dir" --output-on-failure -j2 --timeout 1200 "$@"
