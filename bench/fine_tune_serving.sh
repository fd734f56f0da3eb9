#!/bin/bash
# Serving latency without and during a fine-tuning job, in one run on one server.
#
# Starts headway_server over a copy of the bundled model store with an ImageFolder of
# 1000 digits inside it, measures Classify of the digits model with the load generator
# (closed loop, --concurrency callers, --duration), then starts a job that trains every
# layer for many epochs (--detach) and measures again while it runs, cancels it, and
# prints both rows and their ratios, with the job's training rate.
#
# Usage: bench/fine_tune_serving.sh [BUILD_DIR] [CONCURRENCY] [DURATION]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
concurrency=${2:-4}
duration=${3:-10s}
work=$(mktemp -d /tmp/headway-fine-tune-serving-XXXXXX)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" || true
  rm -rf "$work"
}
trap cleanup EXIT

cp -r "$root/models" "$work/store"
/usr/bin/python3 - "$work/store/examples" <<'PY'
import pathlib, sys
import cv2
sheet = cv2.imread("/usr/share/doc/opencv-doc/examples/data/digits.png", cv2.IMREAD_GRAYSCALE)
out = pathlib.Path(sys.argv[1])
for digit in range(10):
    (out / str(digit)).mkdir(parents=True)
    for i in range(100):
        cell = digit * 500 + i
        r, c = divmod(cell, 100)
        cv2.imwrite(str(out / str(digit) / f"{i}.png"), sheet[r*20:(r+1)*20, c*20:(c+1)*20])
PY
echo "bench-token" > "$work/token"
"$build/server/headway_server" --host=127.0.0.1 --port=0 --port_file="$work/port" \
  --metrics_address= --http_port=0 --model_store="$work/store" \
  --admin_token_file="$work/token" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
  grep -q "event=serving" "$work/server.log" && break
  sleep 0.1
done
target=127.0.0.1:$(cat "$work/port")
cli=("$build/client/headway" "--target=$target" "--admin_token_file=$work/token")
load() {
  "$build/client/headway_loadgen" --target="$target" --model=digits \
    --images="$root/examples/images/seven.png" --concurrency="$concurrency" \
    --duration="$duration" --warmup=2s --progress=false --json_out="$1" > /dev/null
}

grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /CPU: /'
echo "CPUs: $(nproc); Classify digits, $concurrency closed-loop callers, $duration each"
load "$work/without.json"
job=$("${cli[@]}" --json finetune --model=digits --train_all --epochs=1000 \
  --examples_dir=examples --output_model=never --detach |
  /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
sleep 1
load "$work/during.json"
"${cli[@]}" --json job "$job" > "$work/job.json"
"${cli[@]}" cancel-job "$job" > /dev/null
/usr/bin/python3 - "$work" <<'PY'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
without, during = (json.loads((work / f).read_text()) for f in ("without.json", "during.json"))
job = json.loads((work / "job.json").read_text())
print("| serving | requests/s | p50 ms | p99 ms | errors |")
print("|---|---:|---:|---:|---:|")
for name, run in (("without a job", without), ("during a job", during)):
    lat = run["latency_ms"]
    print(f"| {name} | {run['throughput']:.0f} | {lat['p50']:.2f} | {lat['p99']:.2f} | "
          f"{sum(run['errors'].values())} |")
print(f"during / without: throughput {during['throughput'] / without['throughput']:.2f}, "
      f"p50 {during['latency_ms']['p50'] / without['latency_ms']['p50']:.2f}, "
      f"p99 {during['latency_ms']['p99'] / without['latency_ms']['p99']:.2f}")
print(f"the job (every layer, 1 thread): {float(job['examples_per_second']):.0f} "
      f"examples/s, epoch {job['epoch']} when measured")
PY
