// Model: one served model: a preprocessor, a backbone on the model's device and a
// table of named heads, built from a model folder and its ModelConfig.
//
// Thread safety: Embed, Classify and Info may run concurrently with each other and
// with SwapHead. The head table is an immutable snapshot behind a shared_ptr: a
// request copies it once and answers from it, so a swap never changes a request's
// head midway; SwapHead loads and validates the new head to the side and only then
// publishes a new table. Swaps are serialised among themselves.
#ifndef HEADWAY_MODEL_STORE_MODEL_H_
#define HEADWAY_MODEL_STORE_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "headway/v1/model_config.pb.h"
#include "model_store/batching_stats.h"
#include "model_store/input.h"
#include "model_store/request_control.h"

namespace headway {

class Backbone;
class Batcher;
class Head;
class Preprocessor;
class Retirer;

struct EmbedResult {
  int64_t model_version = 0;
  int64_t dimension = 0;
  std::vector<std::vector<float>> embeddings;  // one per input
};

struct ScoredLabel {
  std::string label;
  int index = 0;
  float score = 0;
};

struct ClassifyResult {
  int64_t model_version = 0;
  std::string head;
  int64_t head_version = 0;
  std::vector<std::vector<ScoredLabel>> results;  // one per input, best first
};

// What HotSwapHead asks for. Exactly one of `file` (relative to the model's folder)
// and `checkpoint` is set; labels come from `labels_file`, `labels`, or neither.
struct HeadSwap {
  std::string head;
  std::string file;
  std::string checkpoint;
  std::string labels_file;
  std::vector<std::string> labels;
  // For state_dict heads: where the linear layer's weight and bias keys start.
  std::string key_prefix;
};

struct HeadInfo {
  std::string name;
  int64_t version = 0;
  int64_t num_classes = 0;
  bool is_default = false;
};

struct ModelInfo {
  std::string name;
  int64_t version = 0;
  std::string device;
  std::string state;
  int64_t feature_dim = 0;
  std::vector<HeadInfo> heads;
  std::string backbone_format;  // "TorchScript module", "state_dict", ...
  int64_t epoch = 0;            // a training checkpoint's; 0 when none
  std::string load_report;      // state_dict loads: what was loaded, missing, ...
  std::vector<std::string> saved_locations;
  int64_t load_time_ms = 0;
  bool optimized = false;  // serving a frozen, inference-optimized graph
};

class Model {
 public:
  struct Options {
    std::filesystem::path model_dir;
    // From ReadModelConfig (validated, defaults filled).
    v1::ModelConfig config;
    // Overrides config.device() when set.
    std::string device;
    // Destroys swapped-out heads once their last request is done; when null they go
    // with their last reader.
    Retirer* retirer = nullptr;
    // Request sizes accepted; max_inputs_per_request caps the config's limit.
    InputLimits limits;
    // The largest head checkpoint accepted, from a file or from request bytes.
    int64_t max_head_bytes = int64_t{256} << 20;
    // Told about each forward pass; may be empty.
    BatchObserver on_batch;
  };

  // Loads the backbone and every configured head onto the device and warms them up.
  // FAILED_PRECONDITION for a CUDA device this machine lacks.
  static absl::StatusOr<std::unique_ptr<Model>> Load(const Options& options);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::string& name() const { return config_.name(); }
  // "cpu", "cuda:0", ...
  const std::string& device() const { return device_name_; }
  const std::filesystem::path& model_dir() const { return model_dir_; }

  // Backbone features, one vector per input. INVALID_ARGUMENT names the bad input's
  // index; an empty or oversized input list is INVALID_ARGUMENT too.
  absl::StatusOr<EmbedResult> Embed(absl::Span<const InputView> inputs,
                                    bool l2_normalize) const;

  // Top-k labels with softmax scores from `head` (the default head when empty);
  // NOT_FOUND for an unknown head. top_k 0 means 5; capped at the head's classes.
  absl::StatusOr<ClassifyResult> Classify(absl::Span<const InputView> inputs,
                                          absl::string_view head, int top_k) const;

  // The same, answered through `done` once a batch has run: the inputs are
  // preprocessed on the calling thread, then queued for the model's batcher (see
  // batching in the config). `done` runs on a batcher thread, or on the calling thread
  // for requests refused at once (bad input, full queue, expired deadline).
  void EmbedAsync(absl::Span<const InputView> inputs, bool l2_normalize,
                  RequestControl control,
                  std::function<void(absl::StatusOr<EmbedResult>)> done) const;
  void ClassifyAsync(absl::Span<const InputView> inputs, absl::string_view head,
                     int top_k, RequestControl control,
                     std::function<void(absl::StatusOr<ClassifyResult>)> done) const;

  // Batches run, inputs batched, requests dropped and refused so far.
  BatchingStats batching_stats() const;
  // Requests waiting for a batch now.
  int queue_depth() const;

  // Replaces the head named swap.head, or adds it when new, without touching the
  // backbone. On any error the old head keeps serving.
  absl::StatusOr<HeadInfo> SwapHead(const HeadSwap& swap);

  // Removes a head; NOT_FOUND when absent, FAILED_PRECONDITION for the default head.
  absl::Status RemoveHead(absl::string_view head);

  ModelInfo Info() const;

 private:
  struct HeadTable;

  explicit Model(const Options& options);
  absl::StatusOr<std::shared_ptr<const Head>> LoadHead(std::string name,
                                                       std::string checkpoint,
                                                       std::string key_prefix,
                                                       std::vector<std::string> labels,
                                                       int64_t version) const;
  std::shared_ptr<const HeadTable> heads() const;
  // Publishes `next` and retires what `retired` held.
  void Publish(std::shared_ptr<const HeadTable> next,
               std::shared_ptr<const Head> retired);

  const std::filesystem::path model_dir_;
  const v1::ModelConfig config_;
  Retirer* const retirer_;
  const int max_inputs_per_request_;
  const int64_t max_head_bytes_;
  std::string device_name_;
  std::unique_ptr<Preprocessor> preprocessor_;
  std::unique_ptr<Backbone> backbone_;
  std::unique_ptr<Batcher> batcher_;  // after backbone_: stops first
  int64_t load_time_ms_ = 0;

  absl::Mutex swap_mu_;  // held for a whole swap, so swaps do not interleave
  mutable absl::Mutex heads_mu_;
  std::shared_ptr<const HeadTable> heads_ ABSL_GUARDED_BY(heads_mu_);
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_MODEL_H_
