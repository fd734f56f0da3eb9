#!/usr/bin/env bash
# Headway's throughput benchmark, all in one run on this machine:
#  - the in-process limit (headway_bench_inprocess: backbone + head on LibTorch),
#    before the first and after every concurrency's served runs of a group: the
#    median of the group's runs is its reference, and their spread shows how much the
#    machine drifted;
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

inprocess() {  # name model batch
  "$build/bench/headway_bench_inprocess" --model_dir="$work/store/$2" --batch="$3" \
    --torch_threads=1 --duration="${seconds}s" --warmup=2s >"$work/results/inprocess-$1.json"
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

# In-process runs of each group's reference (its batch size, on the batched model's
# files) come before the group and after each concurrency's served runs (tensor and
# image), and the served runs are compared with their median. This shared machine
# drifts by 10-20% within minutes, and a neighbour's burst can take 25% off one run:
# the median of runs spread over the group's time holds against both. Each group adds
# a line to groups.txt, from which the report below is made.
group() {  # model mode reference-batch tensor-shape image-kind image-files concurrencies...
  local model=$1 mode=$2 batch=$3 tensor_shape=$4 image_kind=$5 images=$6
  shift 6
  echo "$model $mode $batch $image_kind $*" >>"$work/results/groups.txt"
  local runs=0
  inprocess "$model-$mode-$runs" "${model}_batched" "$batch"
  for c in "$@"; do
    served "${model}_${mode}-tensor-$c" "${model}_$mode" "$c" --tensor_shape="$tensor_shape"
    served "${model}_${mode}-$image_kind-$c" "${model}_$mode" "$c" --images="$images"
    runs=$((runs + 1))
    inprocess "$model-$mode-$runs" "${model}_batched" "$batch"
  done
}

echo "measuring (about $(((seconds + 2) * 53 / 60 + 1)) minutes)..." >&2
jpegs=$(ls "$work"/jpeg/*.jpg | paste -sd,)
pngs=$(ls "$work"/png/*.png | paste -sd,)
# Concurrency 32 = twice model_workers x max_batch_size: a full batch waits while both
# passes run.
group resnet18 batched 8 3,224,224 jpeg "$jpegs" 1 4 16 32
group resnet18 unbatched 1 3,224,224 jpeg "$jpegs" 1 4 16 32
group digits batched 32 1,20,20 png "$pngs" 1 16 64 256
group digits unbatched 1 1,20,20 png "$pngs" 1 16 64 256
"$build/client/headway_loadgen" --target="$target" --rpc=health --concurrency=64 \
  --duration="${seconds}s" --warmup=2s --progress=false \
  --json_out="$work/results/served-empty-rpc.json" >/dev/null

/usr/bin/python3 - "$work/results" "$seconds" <<'PY'
import json, os, statistics, sys
results, seconds = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(os.path.join(results, name + ".json")))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
# (model, mode, reference batch, image kind, concurrencies, in-process runs), as run.
groups = []
for line in open(os.path.join(results, "groups.txt")):
    model, mode, batch, image, *concurrencies = line.split()
    runs = [load(f"inprocess-{model}-{mode}-{i}") for i in range(len(concurrencies) + 1)]
    groups.append((model, mode, int(batch), image, [int(c) for c in concurrencies], runs))
print(f"Machine: {os.cpu_count()} cores, {cpu}; {seconds} s per run after 2 s warm-up; "
      f"each model runs {groups[0][5][0]['workers']} backbone passes side by side, one "
      f"LibTorch thread each.\n")
def mean_batch(name):
    n0, s0, n1, s1 = map(float, open(os.path.join(results, f"batches-{name}.txt")).read().split())
    return (s1 - s0) / (n1 - n0) if n1 > n0 else 0.0
print("| model | input | batching | concurrency | served inputs/s | in-process inputs/s | served/in-process | mean batch | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
best = {}
for model, mode, batch, image, concurrencies, runs in groups:
    reference = statistics.median(r["images_per_second"] for r in runs)
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
                  f"{r['inputs_per_second']:.1f} | {reference:.1f} (batch {batch}) | "
                  f"{ratio:.2f} | {mean_batch(name):.1f} | {lat['p50']:.1f} | {lat['p90']:.1f} | "
                  f"{lat['p99']:.1f} | {lat['p99.9']:.1f} | {errors} |")
print("\nBest served/in-process per model, input and batching: " + "; ".join(
    f"{m} {k} batching {'on' if b == 'batched' else 'off'} {r:.2f} (c={c})"
    for (m, k, b), (r, c) in best.items()) + ".")
empty = load("served-empty-rpc")
print(f"\nEmpty RPC (gRPC health Check, concurrency 64): {empty['throughput']:.0f} requests/s, "
      f"p50 {empty['latency_ms']['p50']:.2f} ms.")
for model, mode, batch, _, _, runs in groups:
    rates = ", ".join(f"{r['images_per_second']:.1f}" for r in runs)
    print(f"In-process {model} batch {batch}, between the batching-"
          f"{'on' if mode == 'batched' else 'off'} runs: {rates} images/s "
          f"(optimized graph: {runs[0]['optimized']}).")
PY
