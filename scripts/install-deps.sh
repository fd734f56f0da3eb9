#!/usr/bin/env bash
# Installs the Debian 12 packages Headway needs, as root (apt-get); without root it
# names what is missing and stops. Idempotent: does nothing when all are installed.
#   scripts/install-deps.sh serve   what building and serving need (scripts/serve.sh)
#   scripts/install-deps.sh         that and what the tests, benchmarks and training
#                                   scripts need (scripts/test.sh)
set -euo pipefail

# Building and serving.
serve_packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev
  # LibTorch's BLAS (linear layers) through Debian's libblas.so.3 alternative: OpenBLAS
  # instead of the reference BLAS, single-threaded as LibTorch schedules its own threads.
  libopenblas0-serial
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  # Content digests of the heads in the model store (SHA-256).
  libssl-dev
  libabsl-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  # JPEG, PNG and WebP decoded with their libraries (model_store/image_codecs.h).
  libjpeg-dev libpng-dev libwebp-dev
  prometheus-cpp-dev
  # The HTTP/JSON gateway's server (with OpenSSL for HTTPS).
  libcpp-httplib-dev
)
# The tests, benchmarks and training scripts on top.
test_packages=(
  libgtest-dev libgmock-dev
  # Operation tests: promtool and a real Prometheus server; certificates for TLS.
  prometheus openssl
  # The benchmark reads the server's batch sizes from its metrics, and draws its charts.
  curl python3-matplotlib
  # Training and exporting the bundled models, and the real data they train on.
  python3 python3-torch python3-torchvision python3-numpy python3-opencv opencv-doc
  # Python clients of the server (the Open Inference Protocol test, the Python client).
  python3-grpcio python3-protobuf
)

case "${1:-all}" in
  serve) packages=("${serve_packages[@]}") ;;
  all) packages=("${serve_packages[@]}" "${test_packages[@]}") ;;
  *)
    echo "usage: scripts/install-deps.sh [serve]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run this as root (or sudo $0 ${1:-}) to install them" >&2
  exit 1
fi
echo "install-deps: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -q --no-install-recommends "${missing[@]}"
