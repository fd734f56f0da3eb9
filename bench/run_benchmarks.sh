#!/usr/bin/env bash
# Headway's throughput benchmark, all in one run on this machine:
#  - the in-process limit (headway_bench_inprocess: backbone + head on LibTorch),
#    before and after the served runs: their mean is the reference, and the gap between
#    them shows how much a shared machine drifted during the run;
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
  --torch_threads=1 --metrics_address=127.0.0.1:0 \
  --metrics_port_file="$work/metrics_port" --model_store="$work/store" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do [ -s "$work/port" ] && break; sleep 0.1; done
target=127.0.0.1:$(cat "$work/port")
# The port is open while the models load; health says SERVING once they are warm.
for _ in $(seq 1 600); do
  "$build/client/headway" --target="$target" health >/dev/null 2>&1 && break
  sleep 0.1
done

inprocess() {  # pass model batch
  "$build/bench/headway_bench_inprocess" --model_dir="$work/store/$2" --batch="$3" \
    --torch_threads=1 --duration="${seconds}s" --warmup=2s >"$work/results/inprocess-$2-$3-$1.json"
}
inprocess_all() {  # pass
  for batch in 1 8; do inprocess "$1" resnet18_batched $batch; done
  for batch in 1 32; do inprocess "$1" digits_batched $batch; done
}
metrics=127.0.0.1:$(cat "$work/metrics_port")
batches() {  # model: "passes inputs" so far, from the server's batch-size histogram
  curl -s "$metrics/metrics" | awk -v m="model=\"$1\"" '
    /^headway_batch_size_count/ && index($0, m) { n = $2 }
    /^headway_batch_size_sum/ && index($0, m) { s = $2 }
    END { print n + 0, s + 0 }'
}
served() {  # name model concurrency input-flags...
  local name=$1 model=$2 concurrency=$3
  shift 3
  local before
  before=$(batches "$model")
  "$build/client/headway_loadgen" --target="$target" --model="$model" \
    --concurrency="$concurrency" --duration="${seconds}s" --warmup=2s --progress=false \
    --json_out="$work/results/served-$name.json" "$@" >/dev/null || true
  echo "$before $(batches "$model")" >"$work/results/batches-$name.txt"
}

echo "measuring (about $((seconds * 42 / 60 + 2)) minutes)..." >&2
inprocess_all before
jpegs=$(ls "$work"/jpeg/*.jpg | paste -sd,)
pngs=$(ls "$work"/png/*.png | paste -sd,)
for mode in batched unbatched; do
  # 32 = twice model_workers x max_batch_size: a full batch waits while both passes run.
  for c in 1 4 16 32; do
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
inprocess_all after

/usr/bin/python3 - "$work/results" "$seconds" <<'PY'
import json, os, platform, subprocess, sys
results, seconds = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(os.path.join(results, name + ".json")))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
workers = load("inprocess-resnet18_batched-8-before")["workers"]
def limit_of(model, batch):
    return sum(load(f"inprocess-{model}_batched-{batch}-{p}")["images_per_second"]
               for p in ("before", "after")) / 2
print(f"Machine: {os.cpu_count()} cores, {cpu}; {seconds} s per run after 2 s warm-up; "
      f"each model runs {workers} backbone passes side by side, one LibTorch thread each.\n")
def mean_batch(name):
    n0, s0, n1, s1 = map(float, open(os.path.join(results, f"batches-{name}.txt")).read().split())
    return (s1 - s0) / (n1 - n0) if n1 > n0 else 0.0
print("| model | input | batching | concurrency | served inputs/s | in-process inputs/s | served/in-process | mean batch | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
best = {}
for model, big, concurrencies, image in (("resnet18", 8, (1, 4, 16, 32), "jpeg"), ("digits", 32, (1, 16, 64), "png")):
    limit = {b: limit_of(model, b) for b in (1, big)}
    for mode in ("batched", "unbatched"):
        reference = limit[big] if mode == "batched" else limit[1]
        for kind in ("tensor", image):
            for c in concurrencies:
                name = f"{model}_{mode}-{kind}-{c}"
                r = load("served-" + name)
                lat = r["latency_ms"]
                errors = sum(r["errors"].values())
                ratio = r["inputs_per_second"] / reference
                key = (model, kind, mode)
                best[key] = max(best.get(key, (0, 0)), (ratio, c))
                print(f"| {model} | {kind} | {'on' if mode == 'batched' else 'off'} | {c} | "
                      f"{r['inputs_per_second']:.1f} | {reference:.1f} (batch {big if mode == 'batched' else 1}) | "
                      f"{ratio:.2f} | {mean_batch(name):.1f} | {lat['p50']:.1f} | {lat['p90']:.1f} | "
                      f"{lat['p99']:.1f} | {lat['p99.9']:.1f} | {errors} |")
print("\nBest served/in-process per model, input and batching: " + "; ".join(
    f"{m} {k} batching {'on' if b == 'batched' else 'off'} {r:.2f} (c={c})"
    for (m, k, b), (r, c) in best.items()) + ".")
empty = load("served-empty-rpc")
print(f"\nEmpty RPC (gRPC health Check, concurrency 64): {empty['throughput']:.0f} requests/s, "
      f"p50 {empty['latency_ms']['p50']:.2f} ms.")
for model, big in (("resnet18", 8), ("digits", 32)):
    for b in (1, big):
        first, last = (load(f"inprocess-{model}_batched-{b}-{p}") for p in ("before", "after"))
        print(f"In-process {model} batch {b}: {first['images_per_second']:.1f} images/s before the "
              f"served runs, {last['images_per_second']:.1f} after (optimized graph: {first['optimized']}).")
PY
