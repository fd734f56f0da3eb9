#include "model_store/model.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "model_store/backbone.h"
#include "model_store/batcher.h"
#include "model_store/device.h"
#include "model_store/finite_floats.h"
#include "model_store/head.h"
#include "model_store/model_config.h"
#include "model_store/preprocessor.h"
#include "model_store/retirer.h"
#include "model_store/status_macros.h"
#include "model_store/store/content_digest.h"
#include "model_store/store/model_files.h"
#include "model_store/store/zip_directory.h"
#include "model_store/torch_errors.h"
#include "model_store/torch_runtime.h"

namespace headway {

// An immutable snapshot of a model's heads.
struct Model::HeadTable {
  std::map<std::string, std::shared_ptr<const Head>, std::less<>> heads;
  std::string default_head;
};

namespace {

constexpr int kDefaultTopK = 5;

absl::Status CheckInputCount(size_t count, int limit) {
  if (count == 0) return absl::InvalidArgumentError("request has no inputs");
  if (count > static_cast<size_t>(limit)) {
    return absl::InvalidArgumentError(absl::StrCat("request has ", count,
                                                   " inputs; the limit is ", limit,
                                                   " (max_inputs_per_request)"));
  }
  return absl::OkStatus();
}

// Preprocesses every input into one batch [N, C, H, W]; errors name the input.
absl::StatusOr<at::Tensor> Preprocess(const Preprocessor& preprocessor,
                                      absl::Span<const InputView> inputs) {
  std::vector<at::Tensor> items;
  items.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    absl::StatusOr<at::Tensor> item = preprocessor.Process(inputs[i]);
    if (!item.ok()) {
      return absl::Status(item.status().code(),
                          absl::StrCat("input ", i, ": ", item.status().message()));
    }
    items.push_back(*std::move(item));
  }
  return CallTorch("batching inputs", absl::StatusCode::kInternal, [&] {
    return items.size() == 1 ? items[0].unsqueeze(0) : at::stack(items);
  });
}

// OK when every row of `rows` (one per input of a request) is finite; otherwise
// INVALID_ARGUMENT naming the first input whose `what` is not. Finite inputs can still
// overflow inside a network (values far outside what it was trained on).
// Rows of float32 on the CPU, contiguous (what the batch stages give), are read
// directly: a request's few values take less time to scan than LibTorch takes to
// dispatch the operators that would check them.
absl::Status CheckFinite(const at::Tensor& rows, absl::string_view what) {
  int64_t first = -1;
  if (rows.device().is_cpu() && rows.scalar_type() == torch::kFloat32 &&
      rows.is_contiguous() && rows.dim() >= 1) {
    const int64_t count = rows.size(0);
    const int64_t width = count > 0 ? rows.numel() / count : 0;
    const float* values = rows.data_ptr<float>();
    for (int64_t row = 0; row < count && first < 0; ++row) {
      if (!AllFiniteFloats(values + row * width, width)) first = row;
    }
  } else {
    const at::Tensor finite = at::isfinite(rows).flatten(1).all(1);
    if (!finite.all().item<bool>()) {
      first = at::argmin(finite.to(torch::kInt)).item<int64_t>();
    }
  }
  if (first < 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "input ", first, ": the model gave NaN or infinite ", what,
      " for it (its values overflow inside the network; they may be far outside the "
      "range it takes)"));
}

EmbedResult MakeEmbedResult(at::Tensor features, bool l2_normalize, int64_t version) {
  features = features.to(torch::kCPU, torch::kFloat32).contiguous();
  if (l2_normalize) {
    features = features / features.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
  }
  EmbedResult result;
  result.model_version = version;
  result.rows = features.size(0);
  result.dimension = features.size(1);
  result.data = features.data_ptr<float>();
  result.storage = std::make_shared<const at::Tensor>(std::move(features));
  return result;
}

// A classification head as a batch stage: class probabilities (the softmax of the
// logits), float32 and contiguous on the CPU, one row per input. One call serves every
// request of a batch that asked for this head.
absl::StatusOr<at::Tensor> HeadProbabilities(const Head& head,
                                             const at::Tensor& features) {
  HEADWAY_ASSIGN_OR_RETURN(const at::Tensor logits, head.Forward(features));
  return CallTorch("scoring the head's logits", absl::StatusCode::kInternal, [&] {
    return at::softmax(logits.to(torch::kFloat32), 1).to(torch::kCPU).contiguous();
  });
}

// The stage of a request that wants its features too: each row's features (float32)
// followed by its probabilities, on the CPU (SplitFeaturesAndProbabilities).
absl::StatusOr<at::Tensor> FeaturesAndProbabilities(const Head& head,
                                                    const at::Tensor& features) {
  HEADWAY_ASSIGN_OR_RETURN(const at::Tensor probabilities,
                           HeadProbabilities(head, features));
  return CallTorch("joining features and scores", absl::StatusCode::kInternal, [&] {
    return at::cat({features.to(torch::kCPU, torch::kFloat32), probabilities}, 1)
        .contiguous();
  });
}

std::pair<at::Tensor, at::Tensor> SplitFeaturesAndProbabilities(const Head& head,
                                                                const at::Tensor& rows) {
  const int64_t classes = head.num_classes();
  const int64_t features = rows.size(1) - classes;
  return {rows.narrow(1, 0, features).contiguous(),
          rows.narrow(1, features, classes).contiguous()};
}

// The top_k labels of each row of `probabilities` (HeadProbabilities' rows for one
// request), highest first; equal scores keep the lower class index first.
ClassifyResult MakeClassifyResult(const Head& head, const at::Tensor& probabilities,
                                  int top_k, int64_t version) {
  const int64_t classes = probabilities.size(1);
  const int64_t k = std::min<int64_t>(top_k == 0 ? kDefaultTopK : top_k, classes);
  ClassifyResult result;
  result.model_version = version;
  result.head = head.name();
  result.head_version = head.version();
  std::vector<int> order(classes);
  for (int64_t row = 0; row < probabilities.size(0); ++row) {
    const float* score = probabilities.data_ptr<float>() + row * classes;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
      return score[a] > score[b] || (score[a] == score[b] && a < b);
    });
    std::vector<ScoredLabel>& labels = result.results.emplace_back();
    for (int64_t j = 0; j < k; ++j) {
      labels.push_back({head.labels()[order[j]], order[j], score[order[j]]});
    }
  }
  return result;
}

// A head's checkpoint and labels, read from the files a config or request names inside
// the model's folder; an empty name reads nothing.
struct HeadFiles {
  std::string checkpoint;
  std::vector<std::string> labels;
};

// A head file's size, checked before it is read.
absl::Status CheckHeadBytes(int64_t size, int64_t max_head_bytes) {
  if (size > max_head_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("head checkpoint is ", size,
                                                   " bytes; the limit is ",
                                                   max_head_bytes, " (max_head_bytes)"));
  }
  return absl::OkStatus();
}

// A zip checkpoint (torch.save, torch.jit.save) is limited by what it unpacks to too:
// its records may be compressed, and they are allocated at their unpacked size.
// `what` names the file in errors, `flag` the limit.
absl::Status CheckUnpackedBytes(absl::string_view what, const std::string& checkpoint,
                                int64_t limit, absl::string_view flag) {
  if (static_cast<int64_t>(checkpoint.size()) > limit) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is ", checkpoint.size(),
                                                   " bytes; the limit is ", limit, " (",
                                                   flag, ")"));
  }
  if (!absl::StartsWith(checkpoint, "PK\x03\x04")) return absl::OkStatus();
  absl::StatusOr<uint64_t> unpacked = ZipUnpackedSize(checkpoint);
  if (!unpacked.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", unpacked.status().message()));
  }
  if (*unpacked > static_cast<uint64_t>(limit)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " unpacks to ", *unpacked, " bytes (", checkpoint.size(),
                     " packed); the limit is ", limit, " (", flag, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<HeadFiles> ReadHeadFiles(const std::filesystem::path& model_dir,
                                        absl::string_view file,
                                        absl::string_view labels_file,
                                        int64_t max_head_bytes) {
  HeadFiles files;
  if (!file.empty()) {
    HEADWAY_ASSIGN_OR_RETURN(const std::filesystem::path path,
                             ResolveModelFile(model_dir, file));
    std::error_code error;
    const uintmax_t size = std::filesystem::file_size(path, error);
    if (!error) HEADWAY_RETURN_IF_ERROR(CheckHeadBytes(size, max_head_bytes));
    HEADWAY_ASSIGN_OR_RETURN(files.checkpoint, ReadFileToString(path));
  }
  if (!labels_file.empty()) {
    HEADWAY_ASSIGN_OR_RETURN(const std::filesystem::path path,
                             ResolveModelFile(model_dir, labels_file));
    HEADWAY_ASSIGN_OR_RETURN(files.labels, ReadLabelsFile(path));
  }
  return files;
}

// Checks and preprocesses a request's inputs (on the calling thread) and queues them
// for the batcher as `task` (its stage and done set); task.done later gets the
// request's rows. Returns why the request was refused at once, in which case task.done
// never runs.
// The single-input pass time on one thread, for the serving plan.
PassTimes MeasurePassTimes(const Backbone& backbone) {
  PassTimes times;
  const int threads = ThreadsOfThisThread();
  absl::StatusOr<absl::Duration> one = backbone.TimeSingleInputPass(1, 3);
  if (one.ok()) times.one_thread = *one;
  SetThreadsOfThisThread(threads);
  return times;
}

absl::Status Submit(const Preprocessor& preprocessor, Batcher& batcher,
                    int max_inputs_per_request, absl::Span<const InputView> inputs,
                    RequestControl control, BatchTask task) {
  HEADWAY_RETURN_IF_ERROR(CheckInputCount(inputs.size(), max_inputs_per_request));
  HEADWAY_RETURN_IF_ERROR(batcher.CheckDeadline(control, inputs.size()));
  HEADWAY_ASSIGN_OR_RETURN(task.inputs,
                           CallTorch("preparing the inputs", absl::StatusCode::kInternal,
                                     [&] { return Preprocess(preprocessor, inputs); }));
  task.control = std::move(control);
  return batcher.Enqueue(std::move(task));
}

// Runs an async call and waits for its answer.
template <typename Result, typename Call>
absl::StatusOr<Result> Wait(Call call) {
  absl::Notification answered;
  absl::StatusOr<Result> result = absl::UnknownError("no answer");
  call([&](absl::StatusOr<Result> answer) {
    result = std::move(answer);
    answered.Notify();
  });
  answered.WaitForNotification();
  return result;
}

}  // namespace

HeadSwap HeadSwapFromConfig(const v1::HeadConfig& head, int64_t version) {
  HeadSwap swap;
  swap.head = head.name();
  swap.file = head.file();
  swap.labels_file = head.labels_file();
  swap.key_prefix = head.key_prefix();
  swap.version = version;
  swap.source = head.source();
  return swap;
}

Model::Model(const Options& options)
    : model_dir_(options.model_dir),
      config_(options.config),
      retirer_(options.retirer),
      max_inputs_per_request_(std::min(options.config.limits().max_inputs_per_request(),
                                       options.limits.max_inputs_per_request)),
      max_head_bytes_(options.max_head_bytes),
      before_head_load_(options.before_head_load) {}

Model::~Model() = default;

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const Options& options) {
  const absl::Time start = absl::Now();
  const std::filesystem::path& model_dir = options.model_dir;
  const v1::ModelConfig& config = options.config;
  std::unique_ptr<Model> model(new Model(options));
  HEADWAY_ASSIGN_OR_RETURN(
      const c10::Device device,
      ResolveDevice(options.device.empty() ? config.device() : options.device));
  model->device_name_ = DeviceName(device);
  HEADWAY_ASSIGN_OR_RETURN(model->preprocessor_,
                           Preprocessor::Create(config.input(), options.limits));
  HEADWAY_ASSIGN_OR_RETURN(BackboneSpec backbone_spec,
                           ReadBackboneSpec(model_dir, config.backbone()));
  for (const auto& [what, bytes] :
       {std::pair<std::string, const std::string*>{
            absl::StrCat("backbone ", config.backbone().file()), &backbone_spec.weights},
        {absl::StrCat("backbone architecture ", config.backbone().architecture()),
         &backbone_spec.architecture}}) {
    HEADWAY_RETURN_IF_ERROR(CheckUnpackedBytes(what, *bytes, options.max_backbone_bytes,
                                               "--max_backbone_bytes"));
  }
  backbone_spec.device = device;
  backbone_spec.input_shape = model->preprocessor_->input_shape();
  // Unset: the frozen, optimized graph on the CPU (checked against the plain module
  // at load, which serves when they differ).
  backbone_spec.optimize = config.has_optimize() ? config.optimize() : device.is_cpu();
  backbone_spec.precision = config.precision();
  backbone_spec.precision_fallback = config.precision_fallback();
  absl::StatusOr<std::unique_ptr<Backbone>> backbone = Backbone::Load(backbone_spec);
  if (!backbone.ok()) {
    return absl::Status(backbone.status().code(),
                        absl::StrCat("backbone ", config.backbone().file(), ": ",
                                     backbone.status().message()));
  }
  model->backbone_ = *std::move(backbone);
  const bool on_cpu = device.is_cpu();
  PassTimes pass_times;
  if (PlanNeedsPassTimes(config, on_cpu, TorchThreads())) {
    pass_times = MeasurePassTimes(*model->backbone_);
  }
  model->plan_ = PlanServing(config, on_cpu, UsableCpus(), TorchThreads(), pass_times);
  const v1::BatchingConfig& batching = config.batching();
  Batcher::Options batcher_options;
  batcher_options.max_batch_size = model->plan_.max_batch_size;
  batcher_options.max_queue_delay = model->plan_.max_queue_delay;
  batcher_options.adaptive = !model->plan_.wait_for_full_batch;
  batcher_options.max_queue_size =
      batching.max_queue_size() > 0 ? batching.max_queue_size() : 256;
  batcher_options.workers = model->plan_.workers;
  batcher_options.lone_pass_threads = on_cpu ? model->plan_.lone_pass_threads : 0;
  if (options.on_batch) {
    batcher_options.on_batch = [on_batch = options.on_batch, name = config.name(),
                                device = model->device_name_](const BatchRecord& record) {
      on_batch(name, device, record);
    };
  }
  Admission::Options admission;
  admission.workers = batcher_options.workers;
  admission.max_batch_size = batcher_options.max_batch_size;
  admission.flood_batch_size = model->plan_.flood_batch_size;
  admission.max_queue_size = batcher_options.max_queue_size;
  admission.max_queue_wait = absl::Microseconds(
      batching.max_queue_wait_us() > 0 ? batching.max_queue_wait_us() : 1000000);
  model->admission_ = std::make_unique<Admission>(admission);
  const Backbone* backbone_ptr = model->backbone_.get();
  model->batcher_ = std::make_unique<Batcher>(
      batcher_options,
      [backbone_ptr](const at::Tensor& inputs) -> absl::StatusOr<at::Tensor> {
        HEADWAY_ASSIGN_OR_RETURN(
            at::Tensor on_device,
            CallTorch("moving inputs to the device", absl::StatusCode::kInternal,
                      [&] { return inputs.to(backbone_ptr->device()); }));
        return backbone_ptr->Forward(on_device);
      });

  auto table = std::make_shared<HeadTable>();
  table->default_head = config.default_head();
  for (const v1::HeadConfig& head_config : config.heads()) {
    auto version = options.head_versions.find(head_config.name());
    HEADWAY_ASSIGN_OR_RETURN(
        const HeadContent content,
        model->ReadHeadContent(HeadSwapFromConfig(
            head_config, version == options.head_versions.end() ? 1 : version->second)));
    HEADWAY_ASSIGN_OR_RETURN(table->heads[head_config.name()], model->LoadHead(content));
  }
  model->load_time_ms_ = absl::ToInt64Milliseconds(absl::Now() - start);
  absl::MutexLock lock(&model->heads_mu_);
  model->heads_ = std::move(table);
  return model;
}

absl::StatusOr<std::shared_ptr<const Head>> Model::LoadHead(
    const HeadContent& content) const {
  if (before_head_load_) HEADWAY_RETURN_IF_ERROR(before_head_load_(content.name));
  HeadSpec spec;
  spec.name = content.name;
  spec.checkpoint = content.checkpoint;
  spec.key_prefix = content.key_prefix;
  spec.labels = content.labels;
  spec.device = backbone_->device();
  spec.feature_dim = backbone_->feature_dim();
  spec.version = content.version;
  spec.digest = content.digest;
  spec.source = content.source;
  return Head::Load(spec);
}

absl::StatusOr<HeadContent> Model::ReadHeadContent(const HeadSwap& swap) const {
  HEADWAY_ASSIGN_OR_RETURN(
      HeadFiles files,
      ReadHeadFiles(model_dir_, swap.file, swap.labels_file, max_head_bytes_));
  HeadContent content;
  content.name = swap.head;
  content.checkpoint = swap.file.empty() ? swap.checkpoint : std::move(files.checkpoint);
  content.labels = swap.labels_file.empty() ? swap.labels : std::move(files.labels);
  content.key_prefix = swap.key_prefix;
  content.version = swap.version;
  content.source = !swap.source.empty() ? swap.source
                   : swap.file.empty()  ? "HotSwapHead upload"
                                        : absl::StrCat("file ", swap.file);
  // Uploaded bytes and files alike, packed and unpacked, before the digest reads them.
  HEADWAY_RETURN_IF_ERROR(CheckUnpackedBytes("head checkpoint", content.checkpoint,
                                             max_head_bytes_, "max_head_bytes"));
  content.digest = HeadDigest(content.checkpoint, content.labels, content.key_prefix);
  return content;
}

std::shared_ptr<const Model::HeadTable> Model::heads() const {
  absl::MutexLock lock(&heads_mu_);
  return heads_;
}

absl::StatusOr<EmbedResult> Model::Embed(absl::Span<const InputView> inputs,
                                         bool l2_normalize) const {
  return Wait<EmbedResult>([&](auto done) {
    EmbedAsync(inputs, l2_normalize, RequestControl(), std::move(done));
  });
}

absl::StatusOr<ClassifyResult> Model::Classify(absl::Span<const InputView> inputs,
                                               absl::string_view head_name,
                                               int top_k) const {
  return Wait<ClassifyResult>([&](auto done) {
    ClassifyAsync(inputs, head_name, top_k, RequestControl(), std::move(done));
  });
}

void Model::EmbedAsync(absl::Span<const InputView> inputs, bool l2_normalize,
                       RequestControl control,
                       std::function<void(absl::StatusOr<EmbedResult>)> done) const {
  BatchTask task;
  task.done = [done, l2_normalize,
               version = config_.version()](absl::StatusOr<at::Tensor> features) {
    if (!features.ok()) return done(features.status());
    done(CallTorch("reading the embeddings", absl::StatusCode::kInternal,
                   [&]() -> absl::StatusOr<EmbedResult> {
                     HEADWAY_RETURN_IF_ERROR(CheckFinite(*features, "features"));
                     return MakeEmbedResult(*std::move(features), l2_normalize, version);
                   }));
  };
  const absl::Status submitted =
      Submit(*preprocessor_, *batcher_, max_inputs_per_request_, inputs,
             std::move(control), std::move(task));
  if (!submitted.ok()) done(submitted);
}

void Model::ClassifyAsync(
    absl::Span<const InputView> inputs, absl::string_view head_name, int top_k,
    RequestControl control,
    std::function<void(absl::StatusOr<ClassifyResult>)> done) const {
  InferOptions options;
  options.classify = true;
  options.head = std::string(head_name);
  options.top_k = top_k;
  InferAsync(inputs, options, std::move(control),
             [done = std::move(done)](absl::StatusOr<InferResult> result) {
               if (!result.ok()) return done(result.status());
               done(*std::move(result->classified));
             });
}

void Model::InferAsync(absl::Span<const InputView> inputs, const InferOptions& options,
                       RequestControl control,
                       std::function<void(absl::StatusOr<InferResult>)> done) const {
  if (!options.classify) {
    return EmbedAsync(inputs, options.l2_normalize, std::move(control),
                      [done = std::move(done)](absl::StatusOr<EmbedResult> embedded) {
                        if (!embedded.ok()) return done(embedded.status());
                        InferResult result;
                        result.embedded = *std::move(embedded);
                        done(std::move(result));
                      });
  }
  if (options.top_k < 0) {
    return done(absl::InvalidArgumentError("top_k must not be negative"));
  }
  // The one snapshot this request answers from, whatever swaps happen meanwhile.
  const std::shared_ptr<const HeadTable> table = heads();
  if (table->heads.empty()) {
    return done(absl::FailedPreconditionError(
        absl::StrCat("model \"", name(),
                     "\" has no head: it serves Embed only (HotSwapHead adds a head)")));
  }
  absl::string_view head_name = options.head;
  if (head_name.empty()) head_name = table->default_head;
  if (absl::Status valid = ValidateHeadName(head_name); !valid.ok()) return done(valid);
  auto it = table->heads.find(head_name);
  if (it == table->heads.end()) {
    std::vector<std::string> names;
    for (const auto& [name, head] : table->heads) names.push_back(name);
    return done(absl::NotFoundError(
        absl::StrCat("model \"", name(), "\" has no head \"", head_name,
                     "\"; its heads: ", absl::StrJoin(names, ", "))));
  }
  const std::shared_ptr<const Head>& head = it->second;
  BatchTask task;
  if (options.embed) {
    // Features as well: a stage of this request's rows alone (no key), so that the
    // head's shared stage stays probabilities only.
    task.stage = [head](const at::Tensor& features) {
      return FeaturesAndProbabilities(*head, features);
    };
  } else {
    // The head runs once per batch on the rows of every request that asked for it
    // (this version of it: a swapped-in head is another object).
    task.stage_key = head.get();
    task.stage = [head](const at::Tensor& features) {
      return HeadProbabilities(*head, features);
    };
  }
  task.done = [done, head, options,
               version = config_.version()](absl::StatusOr<at::Tensor> rows) {
    if (!rows.ok()) return done(rows.status());
    done(CallTorch("reading the scores", absl::StatusCode::kInternal,
                   [&]() -> absl::StatusOr<InferResult> {
                     InferResult result;
                     at::Tensor probabilities = *rows;
                     if (options.embed) {
                       at::Tensor features;
                       std::tie(features, probabilities) =
                           SplitFeaturesAndProbabilities(*head, *rows);
                       HEADWAY_RETURN_IF_ERROR(CheckFinite(features, "features"));
                       result.embedded =
                           MakeEmbedResult(features, options.l2_normalize, version);
                     }
                     HEADWAY_RETURN_IF_ERROR(CheckFinite(probabilities, "scores"));
                     result.classified =
                         MakeClassifyResult(*head, probabilities, options.top_k, version);
                     return result;
                   }));
  };
  const absl::Status submitted =
      Submit(*preprocessor_, *batcher_, max_inputs_per_request_, inputs,
             std::move(control), std::move(task));
  if (!submitted.ok()) done(submitted);
}

absl::Status Model::Admit() const {
  const Admission::Limit limit =
      admission_->Arrive({batcher_->pass_time(), batcher_->pass_inputs()}, absl::Now());
  batcher_->CapBatches(limit.flooded ? plan_.flood_batch_size : 0);
  if (limit.flooded && admission_->held() > limit.requests) {
    // The flood was seen after the deep queue filled: what waits beyond one pass's
    // worth is refused now rather than answered seconds late.
    batcher_->ShedNewest(
        admission_->flood_capacity(),
        absl::StrCat("model \"", name(),
                     "\" shed this queued request: calls arrive faster than it answers "
                     "them, and its queue was cut to one pass's worth; retry later or "
                     "on another replica"));
  }
  if (admission_->TryHold(limit.requests)) return absl::OkStatus();
  // Requests that expired while queued still count until answered: answer them, and
  // look again.
  if (batcher_->DropAbandoned() > 0 && admission_->TryHold(limit.requests)) {
    return absl::OkStatus();
  }
  batcher_->CountRefused();
  if (limit.flooded) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "model \"", name(), "\" has ", limit.requests,
        " requests in flight already, its limit while calls arrive faster than it "
        "answers them (twice model_workers x flood_batch_size: a pass running and "
        "the next forming; otherwise what it answers in batching.max_queue_wait_us, at "
        "most batching.max_queue_size waiting); retry later or on another replica"));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "model \"", name(), "\" has ", limit.requests,
      " requests in flight already, its limit (what it answers in "
      "batching.max_queue_wait_us at its recent pass time, at most "
      "batching.max_queue_size waiting); retry later or on another replica"));
}

void Model::Release(bool answered) const { admission_->Release(answered); }

BatchingStats Model::batching_stats() const { return batcher_->stats(); }

int Model::queue_depth() const { return batcher_->queue_size(); }

absl::StatusOr<std::unique_ptr<PreparedHeadChange>> Model::PrepareHeadChange(
    const HeadChange& change) const {
  const std::shared_ptr<const HeadTable> current = heads();
  auto next = std::make_shared<HeadTable>();
  next->default_head = change.complete ? change.default_head : current->default_head;
  if (!change.complete) next->heads = current->heads;
  auto prepared = std::make_unique<PreparedHeadChange>();
  for (const std::string& head : change.removals) {
    if (next->heads.count(head) == 0) {
      return absl::NotFoundError(
          absl::StrCat("model \"", name(), "\" has no head \"", head, "\""));
    }
    if (head == next->default_head) {
      return absl::FailedPreconditionError(absl::StrCat(
          "head \"", head, "\" is the default head of model \"", name(), "\""));
    }
    next->heads.erase(head);
  }
  for (const HeadSwap& swap : change.swaps) {
    if (swap.head.empty()) return absl::InvalidArgumentError("head name is empty");
    if (swap.file.empty() == swap.checkpoint.empty()) {
      return absl::InvalidArgumentError(
          "give exactly one of a head file and checkpoint bytes");
    }
    if (!swap.labels_file.empty() && !swap.labels.empty()) {
      return absl::InvalidArgumentError(
          "give labels inline or as a labels file, not both");
    }
    HEADWAY_ASSIGN_OR_RETURN(HeadContent content, ReadHeadContent(swap));
    auto serving = current->heads.find(swap.head);
    if (content.version == 0) {
      content.version =
          serving == current->heads.end() ? 1 : serving->second->version() + 1;
    }
    if (change.complete && serving != current->heads.end() &&
        serving->second->version() == content.version &&
        serving->second->digest() == content.digest) {
      next->heads[swap.head] = serving->second;  // unchanged: kept, not loaded again
      continue;
    }
    // Built and warmed up to the side; requests keep using `current` meanwhile.
    HEADWAY_ASSIGN_OR_RETURN(next->heads[swap.head], LoadHead(content));
    prepared->swapped_.push_back(std::move(content));
  }
  // The first head a model without heads gets becomes its default head.
  if (next->default_head.empty() && !change.swaps.empty()) {
    next->default_head = change.swaps.front().head;
  }
  if (!next->heads.empty() && next->heads.count(next->default_head) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("model \"", name(),
                                                      "\" would have no default head \"",
                                                      next->default_head, "\""));
  }
  for (const auto& [head_name, head] : current->heads) {
    auto kept = next->heads.find(head_name);
    if (kept == next->heads.end() || kept->second != head) {
      prepared->retired_.push_back(head);
    }
  }
  for (const auto& [head_name, head] : next->heads) {
    prepared->heads_.push_back({head_name,
                                head->version(),
                                head->num_classes(),
                                head_name == next->default_head,
                                head->digest(),
                                {},
                                head->source()});
  }
  prepared->table_ = std::move(next);
  return prepared;
}

void Model::PublishHeadChange(std::unique_ptr<PreparedHeadChange> prepared) {
  auto next = std::static_pointer_cast<const HeadTable>(prepared->table_);
  {
    absl::MutexLock lock(&heads_mu_);
    heads_ = std::move(next);
  }
  if (retirer_ != nullptr) {
    for (std::shared_ptr<const void>& head : prepared->retired_) {
      retirer_->Retire(std::move(head));
    }
  }
}

absl::StatusOr<HeadInfo> Model::SwapHead(const HeadSwap& swap) {
  absl::MutexLock swap_lock(&swap_mu_);
  HeadChange change;
  change.swaps.push_back(swap);
  HEADWAY_ASSIGN_OR_RETURN(std::unique_ptr<PreparedHeadChange> prepared,
                           PrepareHeadChange(change));
  HeadInfo info;
  for (const HeadInfo& head : prepared->heads()) {
    if (head.name == swap.head) info = head;
  }
  PublishHeadChange(std::move(prepared));
  return info;
}

absl::Status Model::RemoveHead(absl::string_view head_name) {
  absl::MutexLock swap_lock(&swap_mu_);
  HeadChange change;
  change.removals.emplace_back(head_name);
  HEADWAY_ASSIGN_OR_RETURN(std::unique_ptr<PreparedHeadChange> prepared,
                           PrepareHeadChange(change));
  PublishHeadChange(std::move(prepared));
  return absl::OkStatus();
}

bool Model::has_heads() const { return !heads()->heads.empty(); }

ModelInfo Model::Info() const {
  const std::shared_ptr<const HeadTable> table = heads();
  ModelInfo info;
  info.name = config_.name();
  info.version = config_.version();
  info.device = device_name_;
  info.state = "READY";
  info.feature_dim = backbone_->feature_dim();
  const BackboneLoadInfo& load = backbone_->load_info();
  info.backbone_format = ContentsName(load.contents);
  info.epoch = load.epoch.value_or(0);
  if (load.contents != Checkpoint::Contents::kTorchScriptModule) {
    info.load_report = load.report.Summary();
  }
  info.saved_locations.assign(load.saved_locations.begin(), load.saved_locations.end());
  info.load_time_ms = load_time_ms_;
  info.optimized = load.optimized;
  info.optimize_note = load.optimize_note;
  info.precision = load.precision;
  info.precision_note = load.precision_note;
  info.serving = plan_;
  for (const auto& [name, head] : table->heads) {
    info.heads.push_back({name, head->version(), head->num_classes(),
                          name == table->default_head, head->digest(), head->labels(),
                          head->source()});
  }
  return info;
}

}  // namespace headway
