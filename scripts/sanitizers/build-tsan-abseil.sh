#!/usr/bin/env bash
# Builds Debian's own abseil (the exact source of the installed libabsl20220623,
# with Debian's patches) as shared libraries instrumented with ThreadSanitizer.
#   scripts/sanitizers/build-tsan-abseil.sh OUT_DIR
# Prints OUT_DIR/lib when done. The libraries keep Debian's SONAMEs and inline
# namespace, so putting OUT_DIR/lib first on LD_LIBRARY_PATH swaps them in for
# every user of abseil in the process: Headway, gRPC and protobuf alike. TSan then
# sees absl::Mutex and absl::CondVar, which Debian's uninstrumented build hides.
# A few minutes on 2 cores.
set -euo pipefail
exec "$(dirname "$0")/build-tsan-library.sh" "${1:?usage: build-tsan-abseil.sh OUT_DIR}" \
  abseil libabsl20220623 libabsl_synchronization.so.20220623 all \
  -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_TESTING=OFF
