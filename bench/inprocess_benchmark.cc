// headway_bench_inprocess: the in-process limit of a model: its backbone and default
// head run directly on LibTorch, batch after batch, with no gRPC, no queue and no
// decoding, on as many threads as the server's batcher runs forward passes (the
// config's model_workers). Prints images per second, the figure served throughput is
// compared with.
#include <cmath>
#include <filesystem>
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
#include "model_store/preprocessor.h"
#include "model_store/serving_plan.h"
#include "model_store/store/model_files.h"
#include "model_store/torch_runtime.h"
#include "version/build_type_defaults.h"
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
ABSL_FLAG(std::string, compare_precision, "",
          "BF16 or FP16: measure the model in FP32 and in this precision, one after "
          "the other in this run, and print both rates, their ratio and the top-1 "
          "agreement of the default head on --agreement_images.");
ABSL_FLAG(std::vector<std::string>, agreement_images, {},
          "Image files or folders (every file inside) for --compare_precision's top-1 "
          "agreement, preprocessed as the model's config says.");
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

struct LoadedModel {
  std::unique_ptr<Backbone> backbone;
  std::shared_ptr<const Head> head;
  BackboneSpec spec;
};

// The model's backbone (in `precision`) and default head.
absl::StatusOr<LoadedModel> LoadModel(const std::filesystem::path& dir,
                                      const v1::ModelConfig& config,
                                      v1::ModelConfig::Precision precision) {
  absl::StatusOr<BackboneSpec> read = ReadBackboneSpec(dir, config.backbone());
  if (!read.ok()) return read.status();
  LoadedModel loaded;
  loaded.spec = *std::move(read);
  loaded.spec.input_shape = {config.input().channels(), config.input().height(),
                             config.input().width()};
  loaded.spec.optimize = config.has_optimize() ? config.optimize() : true;  // as served
  loaded.spec.precision = precision;
  absl::StatusOr<std::unique_ptr<Backbone>> backbone = Backbone::Load(loaded.spec);
  if (!backbone.ok()) return backbone.status();
  loaded.backbone = *std::move(backbone);
  const v1::HeadConfig* head_config = &config.heads(0);
  for (const v1::HeadConfig& h : config.heads()) {
    if (h.name() == config.default_head()) head_config = &h;
  }
  HeadSpec head_spec;
  head_spec.name = head_config->name();
  absl::StatusOr<std::string> checkpoint = ReadFileToString(dir / head_config->file());
  if (!checkpoint.ok()) return checkpoint.status();
  head_spec.checkpoint = *std::move(checkpoint);
  head_spec.key_prefix = head_config->key_prefix();
  head_spec.feature_dim = loaded.backbone->feature_dim();
  absl::StatusOr<std::shared_ptr<const Head>> head = Head::Load(head_spec);
  if (!head.ok()) return head.status();
  loaded.head = *std::move(head);
  return loaded;
}

// Images per second of `workers` threads running passes of `batch` inputs, each
// worker's rate over the passes it ran from the start, summed.
double MeasureRate(const LoadedModel& model, int batch, int workers) {
  const absl::Time start = absl::Now() + absl::GetFlag(FLAGS_warmup);
  const absl::Time stop = start + absl::GetFlag(FLAGS_duration);
  std::vector<WorkerCount> counts(workers);
  std::vector<std::thread> threads;
  for (WorkerCount& count : counts) {
    threads.emplace_back([&] {
      count = RunForwardPasses(*model.backbone, *model.head, model.spec.input_shape,
                               batch, start, stop);
    });
  }
  for (std::thread& thread : threads) thread.join();
  double images_per_second = 0;
  for (const WorkerCount& count : counts) {
    if (count.images == 0) continue;
    images_per_second +=
        count.images / absl::ToDoubleSeconds(count.last_done - count.first_went);
  }
  return images_per_second;
}

// The files named by --agreement_images (folders give every file inside, sorted).
std::vector<std::filesystem::path> AgreementFiles() {
  std::vector<std::filesystem::path> files;
  for (const std::string& name : absl::GetFlag(FLAGS_agreement_images)) {
    if (!std::filesystem::is_directory(name)) {
      files.emplace_back(name);
      continue;
    }
    std::vector<std::filesystem::path> inside;
    for (const auto& entry : std::filesystem::directory_iterator(name)) {
      if (entry.is_regular_file()) inside.push_back(entry.path());
    }
    std::sort(inside.begin(), inside.end());
    files.insert(files.end(), inside.begin(), inside.end());
  }
  return files;
}

// The share of images whose top-1 class is the same in both models; images that do
// not decode are skipped (and counted out).
absl::StatusOr<std::pair<double, int>> Top1Agreement(const v1::ModelConfig& config,
                                                     const LoadedModel& full,
                                                     const LoadedModel& reduced) {
  absl::StatusOr<std::unique_ptr<Preprocessor>> preprocessor =
      Preprocessor::Create(config.input());
  if (!preprocessor.ok()) return preprocessor.status();
  c10::InferenceMode inference;
  int compared = 0;
  int same = 0;
  for (const std::filesystem::path& file : AgreementFiles()) {
    absl::StatusOr<std::string> bytes = ReadFileToString(file);
    if (!bytes.ok()) continue;
    InputView view;
    view.data = *bytes;
    absl::StatusOr<at::Tensor> input = (*preprocessor)->Process(view);
    if (!input.ok()) continue;
    const at::Tensor batch = input->unsqueeze(0);
    const auto top1 = [&](const LoadedModel& model) {
      return (*model.head->Forward(*model.backbone->Forward(batch)))
          .argmax(1)
          .item<int64_t>();
    };
    same += top1(full) == top1(reduced);
    ++compared;
  }
  return std::make_pair(compared > 0 ? static_cast<double>(same) / compared : -1.0,
                        compared);
}

int ComparePrecision(const std::filesystem::path& dir, const v1::ModelConfig& config,
                     int batch, int workers) {
  const std::string name = absl::GetFlag(FLAGS_compare_precision);
  v1::ModelConfig::Precision precision;
  if (!v1::ModelConfig::Precision_Parse(name, &precision) ||
      precision == v1::ModelConfig::PRECISION_UNSPECIFIED) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--compare_precision must be BF16 or FP16, not \"", name, "\"")));
  }
  absl::StatusOr<LoadedModel> full = LoadModel(dir, config, v1::ModelConfig::FP32);
  if (!full.ok()) return Fail(full.status());
  absl::StatusOr<LoadedModel> reduced = LoadModel(dir, config, precision);
  if (!reduced.ok()) return Fail(reduced.status());
  absl::StatusOr<std::pair<double, int>> agreement =
      Top1Agreement(config, *full, *reduced);
  if (!agreement.ok()) return Fail(agreement.status());
  const double full_rate = MeasureRate(*full, batch, workers);
  const double reduced_rate = MeasureRate(*reduced, batch, workers);
  std::cout << absl::StrFormat(
      "{\"model\": \"%s\", \"batch\": %d, \"workers\": %d, \"precision\": \"%s\", "
      "\"fp32_images_per_second\": %.2f, \"reduced_images_per_second\": %.2f, "
      "\"speedup\": %.3f, \"agreement_images\": %d, \"top1_agreement\": %.4f, "
      "\"note\": \"%s\", \"fp32_optimized\": %s, \"reduced_optimized\": %s}\n",
      config.name(), batch, workers, name, full_rate, reduced_rate,
      reduced_rate / full_rate, agreement->second, agreement->first,
      reduced->backbone->load_info().precision_note,
      full->backbone->load_info().optimized ? "true" : "false",
      reduced->backbone->load_info().optimized ? "true" : "false");
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
  // Measured on threads of their own, as the server's batcher runs forward passes (on
  // this machine LibTorch runs a small model several times slower on the main thread).
  const int batch = absl::GetFlag(FLAGS_batch);
  const int workers =
      absl::GetFlag(FLAGS_workers) > 0
          ? absl::GetFlag(FLAGS_workers)
          : PlanServing(*config, /*on_cpu=*/true, UsableCpus(), TorchThreads(), {})
                .workers;
  if (!absl::GetFlag(FLAGS_compare_precision).empty()) {
    return ComparePrecision(dir, *config, batch, workers);
  }
  absl::StatusOr<LoadedModel> model = LoadModel(dir, *config, config->precision());
  if (!model.ok()) return Fail(model.status());
  const double images_per_second = MeasureRate(*model, batch, workers);
  std::cout << absl::StrFormat(
      "{\"model\": \"%s\", \"batch\": %d, \"workers\": %d, \"torch_threads\": %d, "
      "\"seconds\": %.3f, \"images_per_second\": %.2f, \"optimized\": %s}\n",
      config->name(), batch, workers, TorchThreads(),
      absl::ToDoubleSeconds(absl::GetFlag(FLAGS_duration)), images_per_second,
      model->backbone->load_info().optimized ? "true" : "false");
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
  headway::ApplyBuildTypeDefaults();
  return headway::Main();
}
