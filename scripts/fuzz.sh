#!/usr/bin/env bash
# Builds Headway's libFuzzer targets with clang (AddressSanitizer and
# UndefinedBehaviorSanitizer on) and runs each for a bounded time from its seed corpus.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# New inputs land in build-fuzz/corpus/<target>/; crashes in build-fuzz/crashes/.
# Exits non-zero when any target finds a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! command -v clang++-14 >/dev/null || [ ! -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz: needs clang-14 and libfuzzer-14-dev; run as root to install them" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    clang-14 libfuzzer-14-dev >/dev/null
fi
build_dir=build-fuzz
CC=clang-14 CXX=clang++-14 HEADWAY_BUILD_DIR=$build_dir scripts/build.sh \
  -DHEADWAY_FUZZ=ON -DHEADWAY_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo

# Seed corpora: the bundled model's files and images, and requests encoded by protoc.
seeds=$build_dir/seeds
rm -rf "$seeds" && mkdir -p "$seeds"/{fuzz_request,fuzz_preprocess,fuzz_model_config,fuzz_checkpoint,fuzz_http_json}
cp models/digits/config.pbtxt fuzz/seeds/model_config/* "$seeds/fuzz_model_config/"
cp models/digits/heads/*.pt tests/data/*.pt fuzz/seeds/checkpoints/*.pt "$seeds/fuzz_checkpoint/"
cp fuzz/seeds/images/* "$seeds/fuzz_preprocess/"
cp fuzz/seeds/http_json/* "$seeds/fuzz_http_json/"
for request in fuzz/seeds/requests/*.textproto; do
  protoc --proto_path=proto --encode=headway.v1.ClassifyRequest headway/v1/inference.proto \
    <"$request" >"$seeds/fuzz_request/$(basename "$request" .textproto).bin"
done

mkdir -p "$build_dir/crashes"
export ASAN_OPTIONS=detect_leaks=0:detect_container_overflow=0
failed=0
for target in fuzz_request fuzz_preprocess fuzz_model_config fuzz_checkpoint fuzz_http_json; do
  corpus=$build_dir/corpus/$target
  mkdir -p "$corpus"
  echo "== $target: ${seconds}s"
  if ! "$build_dir/fuzz/$target" -max_total_time="$seconds" -rss_limit_mb=4096 \
      -timeout=20 -artifact_prefix="$build_dir/crashes/$target-" -print_final_stats=1 \
      "$corpus" "$seeds/$target" 2>"$build_dir/$target.log"; then
    echo "   FOUND A CRASH (see $build_dir/$target.log and $build_dir/crashes/)"
    failed=1
  fi
  grep -E "^stat::(number_of_executed_units|new_units_added)|^#[0-9]+.*DONE" \
    "$build_dir/$target.log" | sed 's/^/   /' || true
done
exit $failed
