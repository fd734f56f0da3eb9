// Model: one served model: a preprocessor, a backbone on the model's device and a
// table of named heads, built from a model folder and its ModelConfig.
//
// Thread safety: Embed, Classify and Info may run concurrently with each other and
// with head changes. The head table is an immutable snapshot behind a shared_ptr: a
// request copies it once and answers from it, so a swap never changes a request's
// head midway. A head change has two steps, so that one change can span several
// instances (and the store) all-or-nothing: PrepareHeadChange loads, checks and warms
// the new heads to the side and changes nothing; PublishHeadChange makes them serve
// with one pointer flip. The caller serialises changes to one model between the two
// steps (the registry does); SwapHead and RemoveHead do both under the model's own
// lock.
#ifndef HEADWAY_MODEL_STORE_MODEL_H_
#define HEADWAY_MODEL_STORE_MODEL_H_

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "headway/v1/model_config.pb.h"
#include "model_store/admission.h"
#include "model_store/batching_stats.h"
#include "model_store/input.h"
#include "model_store/request_control.h"
#include "model_store/serving_plan.h"
#include "model_store/store/persisted_heads.h"

namespace headway {

class Backbone;
class Batcher;
class Head;
class Preprocessor;
class Retirer;

// Backbone features: `rows` rows of `dimension` floats, one per input, viewed where
// they were computed (the result keeps that memory alive), so that a response copies
// them once, straight into its message.
struct EmbedResult {
  int64_t model_version = 0;
  int64_t dimension = 0;
  int64_t rows = 0;
  // Row-major, rows x dimension floats.
  absl::Span<const float> values() const {
    return absl::MakeConstSpan(data, static_cast<size_t>(rows * dimension));
  }
  absl::Span<const float> row(int64_t i) const {
    return values().subspan(static_cast<size_t>(i * dimension),
                            static_cast<size_t>(dimension));
  }
  const float* data = nullptr;
  std::shared_ptr<const void> storage;  // owns `data`
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

// What one inference asks of a model: embeddings, labels from a head, or both from one
// backbone pass.
struct InferOptions {
  bool embed = false;
  bool l2_normalize = false;  // for the embeddings
  bool classify = false;
  std::string head;  // "" for the default head
  int top_k = 0;     // as Classify's
};

struct InferResult {
  std::optional<EmbedResult> embedded;       // when asked to embed
  std::optional<ClassifyResult> classified;  // when asked to classify
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
  // The version it serves as; 0 means one more than the head's current version (1 for
  // a new head).
  int64_t version = 0;
  // Where it came from, for ListModels; empty: "file <file>" or "HotSwapHead upload".
  std::string source;
};

// The swap that loads a configured head at `version`.
HeadSwap HeadSwapFromConfig(const v1::HeadConfig& head, int64_t version);

// A change to a model's head table.
struct HeadChange {
  std::vector<HeadSwap> swaps;        // heads replaced or added
  std::vector<std::string> removals;  // heads removed (never the default head)
  // The whole table, as the store describes it: heads not in `swaps` are removed, and
  // a head whose version and content digest equal the serving one's is kept as it is
  // (not loaded again). `default_head` is then the default head.
  bool complete = false;
  std::string default_head;
};

struct HeadInfo {
  std::string name;
  int64_t version = 0;
  int64_t num_classes = 0;
  bool is_default = false;
  std::string digest;  // of the head's content (HeadDigest)
  // In class order; filled by Model::Info only.
  std::vector<std::string> labels;
  std::string source;  // where it came from (HeadSwap::source)
};

// A head change built, checked and warmed up for one model instance, not yet serving.
// Dropping it drops the new heads.
class PreparedHeadChange {
 public:
  // The content of each head added or replaced, as read and loaded.
  const std::vector<HeadContent>& swapped() const { return swapped_; }
  // The head table it would publish.
  const std::vector<HeadInfo>& heads() const { return heads_; }

 private:
  friend class Model;
  std::shared_ptr<const void> table_;  // the Model's next head table
  std::vector<std::shared_ptr<const void>> retired_;
  std::vector<HeadContent> swapped_;
  std::vector<HeadInfo> heads_;
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
  bool optimized = false;      // serving a frozen, inference-optimized graph
  std::string optimize_note;   // why not, when asked for
  std::string precision;       // "FP32", "BF16", "FP16": the backbone's, as it serves
  std::string precision_note;  // its agreement with FP32, or why not as asked
  ServingPlan serving;         // workers, batching and threads, as chosen at load
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
    // The largest backbone, as its files unpack (a zip archive's records may be
    // compressed).
    int64_t max_backbone_bytes = int64_t{16} << 30;
    // Told about each forward pass; may be empty.
    BatchObserver on_batch;
    // The store's version of each configured head (ReadStoredModel); 1 when absent.
    std::map<std::string, int64_t, std::less<>> head_versions;
    // Test seam: runs before each head load (at Load and in PrepareHeadChange); an
    // error fails that load as a device failure would. Empty in production.
    std::function<absl::Status(absl::string_view head)> before_head_load;
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
  // The configuration it was loaded from (validated, defaults filled).
  const v1::ModelConfig& config() const { return config_; }

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

  // Either or both at once, as InferOptions asks (with neither, it embeds); with
  // both, one backbone pass gives the embeddings and the labels. Errors as Embed's and
  // Classify's.
  void InferAsync(absl::Span<const InputView> inputs, const InferOptions& options,
                  RequestControl control,
                  std::function<void(absl::StatusOr<InferResult>)> done) const;

  // Admission of this instance's requests, counted from their arrival at the server
  // to their answer, so that overload is refused before any work is spent on it:
  // RESOURCE_EXHAUSTED beyond the limit in force, naming it. The limits (Admission):
  // what the workers run at once (model_workers x max_batch_size) plus a queue of at
  // most batching.max_queue_size, and at most what they answer in
  // batching.max_queue_wait_us at the recent pass time (never under two passes'
  // worth, nor under 32 requests); while calls flood in faster than they are
  // answered, twice what the workers run at once.
  // Every OK Admit needs one Release: `answered` false when the request was refused
  // after all (its deadline, a full queue), which counts toward a flood.
  // Thread-safe.
  absl::Status Admit() const;
  void Release(bool answered) const;

  // Batches run, inputs batched, requests dropped and refused so far.
  BatchingStats batching_stats() const;
  // Requests waiting for a batch now.
  int queue_depth() const;

  // Reads, loads, checks and warms up the heads `change` adds or replaces, on this
  // instance's device, beside the serving ones; changes nothing. Errors name the head:
  // NOT_FOUND for removing an absent head, FAILED_PRECONDITION for removing the
  // default head, INVALID_ARGUMENT for a head that does not load.
  absl::StatusOr<std::unique_ptr<PreparedHeadChange>> PrepareHeadChange(
      const HeadChange& change) const;

  // Makes a change prepared by this instance serve, with one pointer flip; the heads
  // it replaced are retired once their last request is done. No other change may have
  // been published on this instance since the Prepare.
  void PublishHeadChange(std::unique_ptr<PreparedHeadChange> prepared);

  // Prepare and publish one swap, serialised with other SwapHead and RemoveHead calls.
  // Replaces the head named swap.head, or adds it when new, without touching the
  // backbone. On any error the old head keeps serving.
  absl::StatusOr<HeadInfo> SwapHead(const HeadSwap& swap);

  // Removes a head; NOT_FOUND when absent, FAILED_PRECONDITION for the default head.
  absl::Status RemoveHead(absl::string_view head);

  ModelInfo Info() const;

  // Whether it has a head now (a model without one serves Embed only).
  bool has_heads() const;

 private:
  struct HeadTable;

  explicit Model(const Options& options);
  absl::StatusOr<std::shared_ptr<const Head>> LoadHead(const HeadContent& content) const;
  // Reads a swap's checkpoint and labels (from its files or the request).
  absl::StatusOr<HeadContent> ReadHeadContent(const HeadSwap& swap) const;
  std::shared_ptr<const HeadTable> heads() const;

  const std::filesystem::path model_dir_;
  const v1::ModelConfig config_;
  Retirer* const retirer_;
  const int max_inputs_per_request_;
  const int64_t max_head_bytes_;
  const std::function<absl::Status(absl::string_view)> before_head_load_;
  std::string device_name_;
  std::unique_ptr<Preprocessor> preprocessor_;
  std::unique_ptr<Backbone> backbone_;
  std::unique_ptr<Batcher> batcher_;  // after backbone_: stops first
  std::unique_ptr<Admission> admission_;
  int64_t load_time_ms_ = 0;
  ServingPlan plan_;

  absl::Mutex swap_mu_;  // held for a whole swap, so swaps do not interleave
  mutable absl::Mutex heads_mu_;
  std::shared_ptr<const HeadTable> heads_ ABSL_GUARDED_BY(heads_mu_);
};

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_MODEL_H_
