#!/usr/bin/env bash
# Headway's throughput benchmark, all in one run on this machine:
#  - the in-process limit (headway_bench_inprocess: backbone + head on LibTorch);
#  - served throughput through headway_loadgen at several concurrencies, with dynamic
#    batching on and off, with tensor and with encoded-image inputs;
#  - for ResNet-18 at 224x224 and for the small digits model;
#  - the requests/s of an empty RPC (gRPC health) on the same machine.
# Prints a markdown table with served/in-process ratios and latency percentiles.
# Usage: bench/run_benchmarks.sh [SECONDS_PER_RUN]   (default 8)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
build=${HEADWAY_BUILD_DIR:-build}
scripts/build.sh >/dev/null
work=$build/bench-run
rm -rf "$work" && mkdir -p "$work/results"
/usr/bin/python3 bench/make_bench_models.py "$work"

# One intra-op thread per pass and one pass per CPU (each model's model_workers): on
# these machines that served more than a single pass spread over all CPUs.
"$build/server/headway_server" --host=127.0.0.1 --port=0 --port_file="$work/port" \
  --torch_threads=1 --metrics_address=127.0.0.1:0 --model_store="$work/store" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do [ -s "$work/port" ] && break; sleep 0.1; done
target=127.0.0.1:$(cat "$work/port")
# The port is open while the models load; health says SERVING once they are warm.
for _ in $(seq 1 600); do
  "$build/client/headway" --target="$target" health >/dev/null 2>&1 && break
  sleep 0.1
done

inprocess() {  # model batch
  "$build/bench/headway_bench_inprocess" --model_dir="$work/store/$1" --batch="$2" \
    --torch_threads=1 --duration="${seconds}s" --warmup=2s >"$work/results/inprocess-$1-$2.json"
}
served() {  # name model concurrency input-flags...
  local name=$1 model=$2 concurrency=$3
  shift 3
  "$build/client/headway_loadgen" --target="$target" --model="$model" \
    --concurrency="$concurrency" --duration="${seconds}s" --warmup=2s --progress=false \
    --json_out="$work/results/served-$name.json" "$@" >/dev/null || true
}

echo "measuring (about $((seconds * 30 / 60 + 2)) minutes)..." >&2
for batch in 1 8; do inprocess resnet18_batched $batch; done
for batch in 1 32; do inprocess digits_batched $batch; done
jpegs=$(ls "$work"/jpeg/*.jpg | paste -sd,)
pngs=$(ls "$work"/png/*.png | paste -sd,)
for mode in batched unbatched; do
  for c in 1 4 16; do
    served "resnet18_${mode}-tensor-$c" "resnet18_$mode" $c --tensor_shape=3,224,224
    served "resnet18_${mode}-jpeg-$c" "resnet18_$mode" $c --images="$jpegs"
  done
  for c in 1 16 64; do
    served "digits_${mode}-tensor-$c" "digits_$mode" $c --tensor_shape=1,20,20
    served "digits_${mode}-png-$c" "digits_$mode" $c --images="$pngs"
  done
done
"$build/client/headway_loadgen" --target="$target" --rpc=health --concurrency=64 \
  --duration="${seconds}s" --warmup=2s --progress=false \
  --json_out="$work/results/served-empty-rpc.json" >/dev/null

/usr/bin/python3 - "$work/results" "$seconds" <<'PY'
import json, os, platform, subprocess, sys
results, seconds = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(os.path.join(results, name + ".json")))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
workers = load("inprocess-resnet18_batched-8")["workers"]
print(f"Machine: {os.cpu_count()} cores, {cpu}; {seconds} s per run after 2 s warm-up; "
      f"each model runs {workers} backbone passes side by side, one LibTorch thread each.\n")
print("| model | input | batching | concurrency | served inputs/s | in-process inputs/s | served/in-process | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for model, big, concurrencies, image in (("resnet18", 8, (1, 4, 16), "jpeg"), ("digits", 32, (1, 16, 64), "png")):
    limit = {b: load(f"inprocess-{model}_batched-{b}")["images_per_second"] for b in (1, big)}
    for mode in ("batched", "unbatched"):
        reference = limit[big] if mode == "batched" else limit[1]
        for kind in ("tensor", image):
            for c in concurrencies:
                r = load(f"served-{model}_{mode}-{kind}-{c}")
                lat = r["latency_ms"]
                errors = sum(r["errors"].values())
                print(f"| {model} | {kind} | {'on' if mode == 'batched' else 'off'} | {c} | "
                      f"{r['inputs_per_second']:.1f} | {reference:.1f} (batch {big if mode == 'batched' else 1}) | "
                      f"{r['inputs_per_second'] / reference:.2f} | {lat['p50']:.1f} | {lat['p90']:.1f} | "
                      f"{lat['p99']:.1f} | {lat['p99.9']:.1f} | {errors} |")
empty = load("served-empty-rpc")
print(f"\nEmpty RPC (gRPC health Check, concurrency 64): {empty['throughput']:.0f} requests/s, "
      f"p50 {empty['latency_ms']['p50']:.2f} ms.")
for model, big in (("resnet18", 8), ("digits", 32)):
    for b in (1, big):
        r = load(f"inprocess-{model}_batched-{b}")
        print(f"In-process {model} batch {b}: {r['images_per_second']:.1f} images/s (optimized graph: {r['optimized']}).")
PY
