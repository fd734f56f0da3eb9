#!/usr/bin/env bash
# Headway's throughput benchmark, all in one run on this machine:
#  - the in-process limit (headway_bench_inprocess: backbone + head on LibTorch),
#    before the first and after every concurrency's served runs of a group: the
#    median of the group's runs is its reference, and their spread shows how much the
#    machine drifted;
#  - served throughput through headway_loadgen at several concurrencies, with dynamic
#    batching on and off, with tensor and with encoded-image inputs;
#  - for ResNet-18 at 224x224 and for the small digits model;
#  - the "defaults" group: the same models with nothing tuned (no flags, no batching,
#    worker or thread settings in their configs) on a second server, each run beside
#    the tuned models' at the same concurrency, for defaults against the best tuned;
#  - the requests/s of an empty RPC (gRPC health) on the same machine;
#  - float32 matrix products (the physical limit), BF16 against FP32 where the CPU has
#    it natively, and the same ResNet-18 in Python PyTorch.
# Draws docs/bench/throughput.png and latency.png (served inputs/s and p50/p99 against
# concurrency, per model and batching mode).
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
  --torch_threads=1 --metrics_address=127.0.0.1:0 --http_port=0 \
  --metrics_port_file="$work/metrics_port" --model_store="$work/store" >"$work/server.log" 2>&1 &
server=$!
# The defaults: no flags beyond where to listen.
"$build/server/headway_server" --host=127.0.0.1 --port=0 --port_file="$work/defaults_port" \
  --metrics_address=127.0.0.1:0 --http_port=0 \
  --metrics_port_file="$work/defaults_metrics_port" --model_store="$work/store-defaults" \
  >"$work/server-defaults.log" 2>&1 &
defaults_server=$!
trap 'kill $server $defaults_server 2>/dev/null; wait $server $defaults_server 2>/dev/null || true' EXIT
for port_file in port defaults_port; do
  for _ in $(seq 1 600); do [ -s "$work/$port_file" ] && break; sleep 0.1; done
  # The port is open while the models load; health says SERVING once they are warm.
  for _ in $(seq 1 600); do
    "$build/client/headway" --target="127.0.0.1:$(cat "$work/$port_file")" health \
      >/dev/null 2>&1 && break
    sleep 0.1
  done
done
target=127.0.0.1:$(cat "$work/port")
defaults_target=127.0.0.1:$(cat "$work/defaults_port")

# Progress on stderr, one plain line per run: what runs, how far, time left. Runs of
# `seconds` plus 2 s of warm-up each: 4 groups of 13, 2 defaults groups of 45, the
# empty RPC, 2 matrix products, 4 precision runs, and the Python reference (about 8
# more).
total_runs=157
run_index=0
started=$SECONDS
progress() {  # what
  run_index=$((run_index + 1))
  local left=$(((total_runs - run_index + 1) * (seconds + 2)))
  printf '[%dm%02ds] run %d of about %d, ~%d min left: %s\n' $(((SECONDS - started) / 60)) \
    $(((SECONDS - started) % 60)) "$run_index" "$total_runs" $(((left + 59) / 60)) "$1" >&2
}
inprocess() {  # name model batch
  progress "in-process $2, batch $3"
  "$build/bench/headway_bench_inprocess" --model_dir="$work/store/$2" --batch="$3" \
    --torch_threads=1 --duration="${seconds}s" --warmup=2s >"$work/results/inprocess-$1.json"
}
metrics=127.0.0.1:$(cat "$work/metrics_port")
defaults_metrics=127.0.0.1:$(cat "$work/defaults_metrics_port")
serving() {  # model: "target metrics" of the server that serves it
  case $1 in
    *_defaults) echo "$defaults_target $defaults_metrics" ;;
    *) echo "$target $metrics" ;;
  esac
}
batches() {  # model: "passes inputs" so far, from the server's batch-size histogram
  curl -s "$(serving "$1" | cut -d' ' -f2)/metrics" | awk -v m="model=\"$1\"" '
    /^headway_batch_size_count/ && index($0, m) { n = $2 }
    /^headway_batch_size_sum/ && index($0, m) { s = $2 }
    END { print n + 0, s + 0 }'
}
served() {  # name model concurrency input-flags...
  local name=$1 model=$2 concurrency=$3
  progress "served $model, concurrency $concurrency, ${4%%=*}"
  shift 3
  local before
  before=$(batches "$model")
  "$build/client/headway_loadgen" --target="$(serving "$model" | cut -d' ' -f1)" --model="$model" \
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

# The defaults group: each concurrency's defaults tensor runs alternate with the tuned
# models' tensor runs at the same concurrency, `rounds` times (defaults, batching on,
# batching off, then again), so that defaults and best tuned are compared over the
# same minutes and a neighbour's burst moves one round, not the ratio's median. Round 1
# keeps the plain file names (the main table and charts read them); later rounds add
# -rN.
rounds=3
defaults_group() {  # model reference-batch tensor-shape image-kind image-files concurrencies...
  local model=$1 batch=$2 tensor_shape=$3 image_kind=$4 images=$5
  shift 5
  echo "$model defaults $batch $image_kind $*" >>"$work/results/groups.txt"
  local runs=0
  inprocess "$model-defaults-$runs" "${model}_batched" "$batch"
  for c in "$@"; do
    served "${model}_defaults-$image_kind-$c" "${model}_defaults" "$c" --images="$images"
    for round in $(seq 1 $rounds); do
      local suffix=""
      [ "$round" = 1 ] || suffix="-r$round"
      served "${model}_defaults-tensor-$c$suffix" "${model}_defaults" "$c" \
        --tensor_shape="$tensor_shape"
      for tuned in batched unbatched; do
        served "${model}_$tuned-beside-defaults-$c$suffix" "${model}_$tuned" "$c" \
          --tensor_shape="$tensor_shape"
      done
    done
    runs=$((runs + 1))
    inprocess "$model-defaults-$runs" "${model}_batched" "$batch"
  done
}

echo "measuring (about $(((seconds + 2) * total_runs / 60 + 1)) minutes)..." >&2
jpegs=$(ls "$work"/jpeg/*.jpg | paste -sd,)
pngs=$(ls "$work"/png/*.png | paste -sd,)
# Concurrency 32 = twice model_workers x max_batch_size: a full batch waits while both
# passes run.
group resnet18 batched 8 3,224,224 jpeg "$jpegs" 1 4 16 32
group resnet18 unbatched 1 3,224,224 jpeg "$jpegs" 1 4 16 32
group digits batched 32 1,20,20 png "$pngs" 1 16 64 256
group digits unbatched 1 1,20,20 png "$pngs" 1 16 64 256
defaults_group resnet18 8 3,224,224 jpeg "$jpegs" 1 4 16 32
defaults_group digits 32 1,20,20 png "$pngs" 1 16 64 256
progress "empty RPC (gRPC health), concurrency 64"
"$build/client/headway_loadgen" --target="$target" --rpc=health --concurrency=64 \
  --duration="${seconds}s" --warmup=2s --progress=false \
  --json_out="$work/results/served-empty-rpc.json" >/dev/null

# The physical limit: float32 matrix multiplication on the tuned passes' workers and
# threads, in GFLOP/s.
progress "float32 matrix products (two runs)"
run_index=$((run_index + 1))
"$build/bench/headway_bench_inprocess" --matmul_size=1024 --torch_threads=1 \
  --duration="${seconds}s" --warmup=2s >"$work/results/matmul.json"

# Reduced precision: BF16 against FP32 in-process, where the CPU has it natively, with
# the top-1 agreement of the default head on real images (opencv-doc's photos for
# ResNet-18, random weights; the bundled digits model on digits.png).
if grep -qwE "avx512_bf16|amx_bf16" /proc/cpuinfo; then
  progress "BF16 against FP32, ResNet-18 and digits (four runs)"
  run_index=$((run_index + 3))
  "$build/bench/headway_bench_inprocess" --model_dir="$work/store/resnet18_batched" \
    --compare_precision=BF16 --batch=8 --torch_threads=1 --duration="${seconds}s" \
    --warmup=2s --agreement_images=/usr/share/doc/opencv-doc/examples/data \
    >"$work/results/precision-resnet18.json"
  "$build/bench/headway_bench_inprocess" --model_dir=models/digits \
    --compare_precision=BF16 --batch=32 --torch_threads=1 --duration="${seconds}s" \
    --warmup=2s --agreement_images="$work/heldout" >"$work/results/precision-digits.json"
fi

# What a notebook user runs: the same ResNet-18 in Python PyTorch, eager and frozen.
progress "Python reference (8 settings)"
/usr/bin/python3 bench/python_reference.py "$seconds" >"$work/results/python.jsonl"

/usr/bin/python3 - "$work/results" "$seconds" "$work/server-defaults.log" docs/bench <<'PY'
import json, os, re, statistics, sys
results, seconds, defaults_log, charts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
load = lambda name: json.load(open(os.path.join(results, name + ".json")))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
vector_flags = [f for f in flags if f.startswith("avx") or f in ("fma", "amx_bf16")]
# (model, mode, reference batch, image kind, concurrencies, in-process runs), as run.
groups = []
for line in open(os.path.join(results, "groups.txt")):
    model, mode, batch, image, *concurrencies = line.split()
    runs = [load(f"inprocess-{model}-{mode}-{i}") for i in range(len(concurrencies) + 1)]
    groups.append((model, mode, int(batch), image, [int(c) for c in concurrencies], runs))
print(f"Machine: {os.cpu_count()} cores, {cpu} ({' '.join(vector_flags)}); {seconds} s per "
      f"run after 2 s warm-up. Tuned (batching on / off): each model runs "
      f"{groups[0][5][0]['workers']} backbone passes side by side, one LibTorch thread "
      f"each. Defaults: a second server with no flags serves the same models with no "
      f"batching, worker or thread settings; it chose:\n")
for line in open(defaults_log):
    if "event=model_loaded" in line:
        model = re.search(r"model=(\S+)", line).group(1)
        chosen = re.search(r'serving="([^"]*)"', line).group(1).replace("\\'", "'")
        print(f"- {model}: {chosen}")
print()
MODES = {"batched": "on", "unbatched": "off", "defaults": "defaults"}
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
            print(f"| {model} | {kind} | {MODES[mode]} | {c} | "
                  f"{r['inputs_per_second']:.1f} | {reference:.1f} (batch {batch}) | "
                  f"{ratio:.2f} | {mean_batch(name):.1f} | {lat['p50']:.1f} | {lat['p90']:.1f} | "
                  f"{lat['p99']:.1f} | {lat['p99.9']:.1f} | {errors} |")
print("\nBest served/in-process per model, input and batching: " + "; ".join(
    f"{m} {k} batching {MODES[b]} {r:.2f} (c={c})"
    for (m, k, b), (r, c) in best.items()) + ".")

print("\nDefaults against the best tuned model, tensors: at each concurrency the "
      "defaults, batching on and batching off ran in turn, in rounds; each round's ratio "
      "is defaults over the better tuned run of that round, and the table shows the "
      "median and the rounds (latency: p50 of the defaults at concurrency 1 against the "
      "tuned unbatched model's, medians):\n")
print("| model | concurrency | defaults inputs/s | tuned on | tuned off | defaults/best tuned (median) | rounds | defaults p50 ms | tuned off p50 ms | p50 ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
def rounds_of(name):
    found = [load(name)]
    while os.path.exists(os.path.join(results, f"{name}-r{len(found) + 1}.json")):
        found.append(load(f"{name}-r{len(found) + 1}"))
    return found
for model, mode, batch, image, concurrencies, runs in groups:
    if mode != "defaults":
        continue
    for c in concurrencies:
        d = rounds_of(f"served-{model}_defaults-tensor-{c}")
        on = rounds_of(f"served-{model}_batched-beside-defaults-{c}")
        off = rounds_of(f"served-{model}_unbatched-beside-defaults-{c}")
        ratios = [x["inputs_per_second"] / max(y["inputs_per_second"], z["inputs_per_second"])
                  for x, y, z in zip(d, on, off)]
        rate = lambda rs: statistics.median(r["inputs_per_second"] for r in rs)
        p50 = statistics.median(r["latency_ms"]["p50"] for r in d)
        p50_off = statistics.median(r["latency_ms"]["p50"] for r in off)
        print(f"| {model} | {c} | {rate(d):.1f} | {rate(on):.1f} | {rate(off):.1f} | "
              f"{statistics.median(ratios):.2f} | {', '.join(f'{x:.2f}' for x in ratios)} | "
              f"{p50:.1f} | {p50_off:.1f} | {p50 / p50_off:.2f} |")
python_path = os.path.join(results, "python.jsonl")
if os.path.exists(python_path):
    rows = [json.loads(line) for line in open(python_path)]
    print("\nPython reference (Debian's python3-torch, torchvision resnet18 in-process, "
          "random weights): " + "; ".join(
              f"{r['python']} {r['threads']} thread{'s' if r['threads'] > 1 else ''} "
              f"batch {r['batch']}: {r['images_per_second']:.1f}" for r in rows)
          + " images/s.")
matmul = load("matmul")
RESNET18_GFLOP = 2 * 1.82  # 1.82 G multiply-adds per 224x224 image
resnet_runs = [r for g in groups if g[0] == "resnet18" and g[1] == "batched" for r in g[5]]
if resnet_runs:
    inprocess = statistics.median(r["images_per_second"] for r in resnet_runs)
    served = max(load(f"served-resnet18_{mode}-tensor-{c}")["inputs_per_second"]
                 for g in groups if g[0] == "resnet18" for mode in [g[1]] for c in g[4])
    ceiling = matmul["gflops_conv1x1"]
    print(f"\nPhysical limit: float32 {matmul['matmul_size']}x{matmul['matmul_size']} "
          f"matrix products, {matmul['workers']} side by side with "
          f"{matmul['torch_threads']} thread each, run {ceiling:.1f} GFLOP/s as oneDNN 1x1 "
          f"convolutions (the library that runs ResNet's) and {matmul['gflops_mm']:.1f} "
          f"GFLOP/s through at::mm (the BLAS of linear layers). ResNet-18 is "
          f"{RESNET18_GFLOP:.2f} GFLOP per image: in-process at batch 8 {inprocess:.1f} "
          f"images/s is {inprocess * RESNET18_GFLOP:.1f} GFLOP/s, "
          f"{inprocess * RESNET18_GFLOP / ceiling:.2f} of the oneDNN figure; served at best "
          f"{served:.1f} images/s, {served * RESNET18_GFLOP / ceiling:.2f}.")
for model in ("resnet18", "digits"):
    path = os.path.join(results, f"precision-{model}.json")
    if not os.path.exists(path):
        print(f"\nBF16: not measured; this CPU lacks avx512_bf16 and amx_bf16.")
        break
    p = load(f"precision-{model}")
    print(f"\nBF16 against FP32, {model} in-process, batch {p['batch']}, {p['workers']} "
          f"workers: {p['fp32_images_per_second']:.1f} -> "
          f"{p['reduced_images_per_second']:.1f} images/s ({p['speedup']:.2f}x); top-1 "
          f"agreement {p['top1_agreement']:.4f} on {p['agreement_images']} images. "
          f"{p['note']}.")

# Charts: served inputs/s and latency against concurrency, tensors, per model.
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
os.makedirs(charts, exist_ok=True)
models = [m for m in ("resnet18", "digits") if any(g[0] == m for g in groups)]
figures = {"throughput": plt.subplots(1, len(models), figsize=(5.5 * len(models), 4)),
           "latency": plt.subplots(1, len(models), figsize=(5.5 * len(models), 4))}
for column, model in enumerate(models):
    throughput = figures["throughput"][1][column] if len(models) > 1 else figures["throughput"][1]
    latency = figures["latency"][1][column] if len(models) > 1 else figures["latency"][1]
    for g_model, mode, batch, image, concurrencies, runs in groups:
        if g_model != model:
            continue
        served = [load(f"served-{model}_{mode}-tensor-{c}") for c in concurrencies]
        label = f"batching {MODES[mode]}" if mode != "defaults" else "defaults (no tuning)"
        throughput.plot(concurrencies, [r["inputs_per_second"] for r in served], "o-",
                        label=label)
        for pct, style in (("p50", "o-"), ("p99", "s--")):
            latency.plot(concurrencies, [r["latency_ms"][pct] for r in served], style,
                         label=f"{label} {pct}")
        if mode == "batched":
            reference = statistics.median(r["images_per_second"] for r in runs)
            throughput.axhline(reference, color="grey", linestyle=":",
                               label=f"in-process limit (batch {batch})")
    for axes, ylabel in ((throughput, "served inputs/s"), (latency, "latency ms")):
        axes.set_xscale("log", base=2)
        axes.set_xlabel("concurrent callers")
        axes.set_ylabel(ylabel)
        axes.set_title(f"{model}, float32 tensors")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
    latency.set_yscale("log")
for name, (figure, _) in figures.items():
    figure.suptitle(f"Headway {name}: {cpu}, {os.cpu_count()} CPUs", fontsize=9)
    figure.tight_layout()
    figure.savefig(os.path.join(charts, f"{name}.png"), dpi=90)
print(f"\nCharts: {os.path.join(charts, 'throughput.png')}, "
      f"{os.path.join(charts, 'latency.png')}.")
empty = load("served-empty-rpc")
print(f"\nEmpty RPC (gRPC health Check, concurrency 64): {empty['throughput']:.0f} requests/s, "
      f"p50 {empty['latency_ms']['p50']:.2f} ms.")
for model, mode, batch, _, _, runs in groups:
    rates = ", ".join(f"{r['images_per_second']:.1f}" for r in runs)
    print(f"In-process {model} batch {batch}, between the batching-"
          f"{MODES[mode]} runs: {rates} images/s "
          f"(optimized graph: {runs[0]['optimized']}).")
PY
