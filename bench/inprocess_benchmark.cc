// headway_bench_inprocess: the in-process limit of a model: its backbone and default
// head run directly on LibTorch, batch after batch, with no gRPC, no queue and no
// decoding, on as many threads as the server's batcher runs forward passes (the
// config's model_workers). Prints images per second, the figure served throughput is
// compared with.
#include <cmath>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "model_store/backbone.h"
#include "model_store/head.h"
#include "model_store/host_allocator.h"
#include "model_store/model_config.h"
#include "model_store/serving_plan.h"
#include "model_store/torch_runtime.h"
#include "version/version.h"

ABSL_FLAG(std::string, model_dir, "models/digits", "A model folder (with config.pbtxt).");
ABSL_FLAG(int, batch, 1, "Inputs per forward pass.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(8), "Measured time.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(2), "Time run first and not measured.");
ABSL_FLAG(int, torch_threads, 0,
          "LibTorch intra-op threads; 0 means one per CPU, as the server's default.");
ABSL_FLAG(int64_t, malloc_retain_mb, 256,
          "Freed memory glibc keeps mapped per arena, in MiB, as the server's flag; 0 "
          "keeps glibc's defaults.");
ABSL_FLAG(int, matmul_size, 0,
          "Instead of a model: measure float32 matrix multiplication (N x N by N x N) on "
          "the same workers and threads, in GFLOP/s, two ways: at::mm (the BLAS "
          "LibTorch's linear layers use) and as a 1x1 convolution in oneDNN (which runs "
          "the convolutions of a frozen, optimized network like ResNet-18).");
ABSL_FLAG(int, workers, 0,
          "Threads running forward passes side by side; 0 takes the config's "
          "model_workers, or the server's default (one per CPU).");

namespace headway {
namespace {

int Fail(const absl::Status& status) {
  std::cerr << "headway_bench_inprocess: " << status << "\n";
  return 1;
}

struct WorkerCount {
  int64_t images = 0;     // computed by passes that began at or after the start
  absl::Time first_went;  // when the first of them began (the warm-up's last pass
                          // runs past the start)
  absl::Time last_done;   // when the last of them finished
};

// Runs forward passes on this thread, warming up until `start`, measuring until
// `stop`.
WorkerCount RunForwardPasses(const Backbone& backbone, const Head& head,
                             const std::vector<int64_t>& input_shape, int batch,
                             absl::Time start, absl::Time stop);

// Runs N x N matrix products on this thread (as a 1x1 convolution when `as_conv`),
// warming up until `start`, measuring until `stop`; `images` counts products.
WorkerCount RunMatmuls(int64_t n, bool as_conv, absl::Time start, absl::Time stop);

// GFLOP/s of N x N products summed over `workers` threads.
double MatmulGflops(int64_t n, bool as_conv, int workers) {
  const absl::Time start = absl::Now() + absl::GetFlag(FLAGS_warmup);
  const absl::Time stop = start + absl::GetFlag(FLAGS_duration);
  std::vector<WorkerCount> counts(workers);
  std::vector<std::thread> threads;
  for (WorkerCount& count : counts) {
    threads.emplace_back([&] { count = RunMatmuls(n, as_conv, start, stop); });
  }
  for (std::thread& thread : threads) thread.join();
  double flops_per_second = 0;
  for (const WorkerCount& count : counts) {
    if (count.images == 0) continue;
    flops_per_second += 2.0 * n * n * n * count.images /
                        absl::ToDoubleSeconds(count.last_done - count.first_went);
  }
  return flops_per_second / 1e9;
}

int MatmulMain(int workers) {
  const int64_t n = absl::GetFlag(FLAGS_matmul_size);
  const double mm = MatmulGflops(n, /*as_conv=*/false, workers);
  const double conv = MatmulGflops(n, /*as_conv=*/true, workers);
  std::cout << absl::StrFormat(
      "{\"matmul_size\": %d, \"workers\": %d, \"torch_threads\": %d, "
      "\"gflops_mm\": %.1f, \"gflops_conv1x1\": %.1f}\n",
      n, workers, TorchThreads(), mm, conv);
  return 0;
}

int Main() {
  const int64_t retain_mb = absl::GetFlag(FLAGS_malloc_retain_mb);
  if (retain_mb < 0) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--malloc_retain_mb must be 0 or more, not ", retain_mb)));
  }
  if (absl::Status status = RetainFreedTensorMemory(retain_mb << 20); !status.ok()) {
    std::cerr << "headway_bench_inprocess: " << status << "\n";
  }
  ConfigureTorchThreads(absl::GetFlag(FLAGS_torch_threads));
  if (absl::GetFlag(FLAGS_matmul_size) > 0) {
    return MatmulMain(absl::GetFlag(FLAGS_workers) > 0 ? absl::GetFlag(FLAGS_workers)
                                                       : UsableCpus());
  }
  const std::filesystem::path dir = absl::GetFlag(FLAGS_model_dir);
  absl::StatusOr<v1::ModelConfig> config = ReadModelConfig(dir);
  if (!config.ok()) return Fail(config.status());
  absl::StatusOr<BackboneSpec> read = ReadBackboneSpec(dir, config->backbone());
  if (!read.ok()) return Fail(read.status());
  BackboneSpec spec = *std::move(read);
  spec.input_shape = {config->input().channels(), config->input().height(),
                      config->input().width()};
  spec.optimize = config->optimize();
  absl::StatusOr<std::unique_ptr<Backbone>> backbone = Backbone::Load(spec);
  if (!backbone.ok()) return Fail(backbone.status());
  const v1::HeadConfig* head_config = &config->heads(0);
  for (const v1::HeadConfig& h : config->heads()) {
    if (h.name() == config->default_head()) head_config = &h;
  }
  HeadSpec head_spec;
  head_spec.name = head_config->name();
  head_spec.checkpoint = *ReadFileToString(dir / head_config->file());
  head_spec.key_prefix = head_config->key_prefix();
  head_spec.feature_dim = (*backbone)->feature_dim();
  absl::StatusOr<std::shared_ptr<const Head>> head = Head::Load(head_spec);
  if (!head.ok()) return Fail(head.status());

  // Measured on threads of their own, as the server's batcher runs forward passes (on
  // this machine LibTorch runs a small model several times slower on the main thread).
  const int batch = absl::GetFlag(FLAGS_batch);
  const int workers =
      absl::GetFlag(FLAGS_workers) > 0
          ? absl::GetFlag(FLAGS_workers)
          : PlanServing(*config, /*on_cpu=*/true, UsableCpus(), TorchThreads(), {})
                .workers;
  const absl::Time start = absl::Now() + absl::GetFlag(FLAGS_warmup);
  const absl::Time stop = start + absl::GetFlag(FLAGS_duration);
  std::vector<WorkerCount> counts(workers);
  std::vector<std::thread> threads;
  for (WorkerCount& count : counts) {
    threads.emplace_back([&] {
      count = RunForwardPasses(**backbone, **head, spec.input_shape, batch, start, stop);
    });
  }
  for (std::thread& thread : threads) thread.join();
  // Each worker's rate over the passes it ran from the start, summed.
  double images_per_second = 0;
  int64_t images = 0;
  for (const WorkerCount& count : counts) {
    images += count.images;
    if (count.images == 0) continue;
    images_per_second +=
        count.images / absl::ToDoubleSeconds(count.last_done - count.first_went);
  }
  const double seconds = absl::ToDoubleSeconds(stop - start);
  std::cout << absl::StrFormat(
      "{\"model\": \"%s\", \"batch\": %d, \"workers\": %d, \"torch_threads\": %d, "
      "\"images\": %d, \"seconds\": %.3f, \"images_per_second\": %.2f, "
      "\"optimized\": %s}\n",
      config->name(), batch, workers, TorchThreads(), images, seconds, images_per_second,
      (*backbone)->load_info().optimized ? "true" : "false");
  return 0;
}

WorkerCount RunForwardPasses(const Backbone& backbone, const Head& head,
                             const std::vector<int64_t>& input_shape, int batch,
                             absl::Time start, absl::Time stop) {
  c10::InferenceMode inference;
  const at::Tensor inputs =
      torch::randn({batch, input_shape[0], input_shape[1], input_shape[2]});
  while (absl::Now() < start) (void)head.Forward(*backbone.Forward(inputs));
  WorkerCount count;
  count.first_went = absl::Now();
  count.last_done = count.first_went;
  while (absl::Now() < stop) {
    // The passes share the CPUs as the server's do: one pass alone gets them all.
    CpuPassScope threads(TorchThreads());
    const at::Tensor logits = *head.Forward(*backbone.Forward(inputs));
    (void)at::softmax(logits, 1).topk(1, 1);
    count.images += batch;
    count.last_done = absl::Now();
  }
  return count;
}

WorkerCount RunMatmuls(int64_t n, bool as_conv, absl::Time start, absl::Time stop) {
  c10::InferenceMode inference;
  // As a convolution: n output channels from n input channels over n pixels.
  const int64_t side = static_cast<int64_t>(std::lround(std::sqrt(n)));
  const at::Tensor a =
      as_conv ? torch::randn({1, n, side, n / side}) : torch::randn({n, n});
  const at::Tensor b = as_conv ? torch::randn({n, n, 1, 1}) : torch::randn({n, n});
  at::Tensor product = torch::empty({n, n});
  const auto multiply = [&] {
    CpuPassScope threads(TorchThreads());
    if (as_conv) {
      // oneDNN's convolution, as a frozen, optimized graph runs ResNet's.
      product = at::mkldnn_convolution(a, b, c10::nullopt, {0, 0}, {1, 1}, {1, 1}, 1);
    } else {
      at::mm_out(product, a, b);
    }
  };
  while (absl::Now() < start) multiply();
  WorkerCount count;
  count.first_went = absl::Now();
  count.last_done = count.first_went;
  while (absl::Now() < stop) {
    multiply();
    ++count.images;
    count.last_done = absl::Now();
  }
  return count;
}

}  // namespace
}  // namespace headway

int main(int argc, char** argv) {
  headway::SetVersionFlag("headway_bench_inprocess");
  absl::SetProgramUsageMessage(
      "In-process throughput of a model's backbone + default head.\n"
      "Usage: headway_bench_inprocess --model_dir=DIR [--batch=8] [--duration=8s]");
  absl::ParseCommandLine(argc, argv);
  return headway::Main();
}
