#!/usr/bin/env bash
# Smoke test of the Docker deployment: builds the CPU image and the compose stack
# (server + Prometheus) on the host network, classifies a digit with the CLI in the
# image and over HTTP, swaps a head as an admin through the mounted model store, runs
# the load-test service, checks that Prometheus has scraped the server, checks that the
# image's health check follows other ports and TLS, and tears everything down.
#   deploy/smoke-test.sh            (as root on a Headway build machine; uses
#                                    ../shared/tools/docker-up.sh when it exists)
# Needs ports 50051, 50061, 8000, 8002, 8012 and 9090 free on the host.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

if [ -x "$root/../shared/tools/docker-up.sh" ]; then
  (cd "$root" && ../shared/tools/docker-up.sh)
fi
if docker compose version >/dev/null 2>&1; then
  compose() { docker compose -p headway-smoke -f docker-compose.yml -f docker-compose.host.yml "$@"; }
else
  compose() { docker-compose -p headway-smoke -f docker-compose.yml -f docker-compose.host.yml "$@"; }
fi
work=$(mktemp -d)
created_token=0
if [ ! -s admin.token ]; then
  head -c 32 /dev/urandom | base64 >admin.token
  created_token=1
fi
cleanup() {
  compose --profile loadtest down -v --remove-orphans >/dev/null 2>&1 || true
  docker rm -f headway-smoke-tls >/dev/null 2>&1 || true
  [ "$created_token" = 1 ] && rm -f admin.token
  rm -rf "$work"
}
trap cleanup EXIT

step() { echo "== $*"; }

# An image imported from a debootstrap folder can have a root folder only root may
# enter, which stops every non-root container; make a runtime base with a normal one.
runtime_base=debian:bookworm-slim
if docker image inspect headway-runtime-base:bookworm-slim >/dev/null 2>&1; then
  runtime_base=headway-runtime-base:bookworm-slim
elif [ "$(docker run --rm --entrypoint /usr/bin/stat "$runtime_base" -c %a /)" != 755 ]; then
  step "make a runtime base image with a readable root folder"
  rootfs=$work/rootfs
  mkdir -m 755 "$rootfs"
  container=$(docker create "$runtime_base" /bin/true)
  docker export "$container" | tar -x -C "$rootfs"
  docker rm "$container" >/dev/null
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - headway-runtime-base:bookworm-slim >/dev/null
  rm -rf "$rootfs"
  runtime_base=headway-runtime-base:bookworm-slim
fi
export HEADWAY_RUNTIME_BASE=$runtime_base

step "build the CPU image and Prometheus's"
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
docker build --network host -q --build-arg RUNTIME_BASE="$runtime_base" \
  --build-arg HEADWAY_REVISION="$revision" -t headway:cpu "$root" >/dev/null
version=$(sed -n 's/^project(headway VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
labels=$(docker inspect -f '{{index .Config.Labels "org.opencontainers.image.version"}} {{index .Config.Labels "org.opencontainers.image.revision"}}' headway:cpu)
echo "image labels: version and revision $labels"
[ "$labels" = "$version $revision" ]
compose build prometheus >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^headway(-prometheus)?:'

step "start server and Prometheus"
compose up -d headway prometheus
for i in $(seq 1 120); do
  status=$(docker inspect -f '{{.State.Health.Status}}' headway-smoke_headway_1 2>/dev/null ||
    docker inspect -f '{{.State.Health.Status}}' headway-smoke-headway-1)
  [ "$status" = healthy ] && break
  sleep 1
done
echo "container health: $status (after ${i}s)"
[ "$status" = healthy ]

cli() {
  docker run --rm --network host -v "$work:/data" -v "$root/deploy/admin.token:/admin.token:ro" \
    --entrypoint headway headway:cpu --target=127.0.0.1:50051 "$@"
}

step "classify a handwritten 4 with the CLI in the image"
/usr/bin/python3 - "$work/four.png" <<'PY'
import sys, cv2
digits = cv2.imread("/usr/share/doc/opencv-doc/examples/data/digits.png", cv2.IMREAD_GRAYSCALE)
cv2.imwrite(sys.argv[1], digits[400:420, 0:20])  # rows 20-24 of the sheet hold 4s
PY
chmod a+rx "$work" && chmod a+r "$work/four.png"
classified=$(cli classify --top_k=2 /data/four.png)
echo "$classified"
grep -q ": 4 (" <<<"$classified"

step "the same digit over HTTP/JSON, and the image's version"
curl -sf http://127.0.0.1:8000/v2/health/ready
echo
http_answer=$(curl -sf http://127.0.0.1:8000/v1/models/digits:classify \
  -H 'Content-Type: application/json' \
  -d "{\"inputs\": [{\"image\": \"$(base64 -w0 "$work/four.png")\"}], \"top_k\": 1}")
echo "$http_answer"
grep -q '"label":"4"' <<<"$http_answer"
version_line=$(cli --version)
echo "$version_line"
grep -q "commit ${revision:0:12}," <<<"$version_line"

step "swap in the parity head as an admin, from the mounted store"
if cli swap-head --model=digits --head=digit --file=heads/parity.pt \
    --labels_file=heads/parity.labels 2>&1; then
  echo "refused expected without a token" && exit 1
fi
cli --admin_token_file=/admin.token swap-head --model=digits --head=digit \
  --file=heads/parity.pt --labels_file=heads/parity.labels
cli classify --top_k=1 /data/four.png

step "load-test service"
compose --profile loadtest run --rm loadgen | tail -n 12

step "Prometheus scraped the server"
for _ in $(seq 1 60); do
  answer=$(curl -s 'http://127.0.0.1:9090/api/v1/query?query=headway_requests_total' || true)
  grep -q '"model":"digits"' <<<"$answer" && break
  sleep 1
done
/usr/bin/python3 -c '
import json, sys
series = json.loads(sys.argv[1])["data"]["result"]
for s in series:
    m = s["metric"]
    print("  %s %s rpc=%s head=%s code=%s: %s" % (
        m["job"], m["instance"], m["rpc"], m["head"], m["code"], s["value"][1]))
assert any(s["metric"].get("model") == "digits" for s in series), "no headway series"
' "$answer"

step "the image's health check follows the flags: a second server on other ports, with TLS"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
chmod a+r "$work/tls.key" "$work/tls.crt"
docker run -d --name headway-smoke-tls --network host -v "$work:/data:ro" headway:cpu \
  --port=50061 --http_port=0 --metrics_address=127.0.0.1:8012 \
  --tls_cert_file=/data/tls.crt --tls_key_file=/data/tls.key >/dev/null
for i in $(seq 1 120); do
  status=$(docker inspect -f '{{.State.Health.Status}}' headway-smoke-tls)
  [ "$status" = healthy ] && break
  sleep 1
done
echo "TLS server on :50061, container health: $status (after ${i}s)"
docker rm -f headway-smoke-tls >/dev/null
[ "$status" = healthy ]

step "tear down"
compose --profile loadtest down -v --remove-orphans
trap - EXIT
cleanup
echo "smoke test passed"
