// RunFineTuneJob: a fine-tuning job's work in the model store, from labelled examples
// to a new model folder.
//  1. The examples: inputs from the request, or an ImageFolder directory inside the
//     store (<dir>/<class>/<image>, sorted), preprocessed with the source model's
//     input spec on the CPU.
//  2. A fresh copy of the source model's backbone (read from its folder again, never
//     the serving instance), fine-tuned by FineTuneBackbone.
//  3. The new folder, written as <store>/.<output>.<job>.tmp (a name the store never
//     serves), every file fsynced, then renamed to <store>/<output> and the store
//     folder synced. A kill at any moment leaves no folder under the output's name or
//     the whole one; CleanFineTuneLeftovers removes what a killed job left.
//     The folder holds:
//       architecture.pt   the source's TorchScript architecture (copied)
//       finetuned.pt      the training checkpoint (fine_tuning.h)
//       heads/<head>.labels
//       config.pbtxt      backbone TRAINING_CHECKPOINT finetuned.pt into
//                         architecture.pt (ignore_prefixes "head."), one head from
//                         finetuned.pt (key_prefix "head."), the source's input spec,
//                         device, batching and limits
//
// Thread-safe for distinct jobs; blocks for the whole run on the calling thread.
#ifndef HEADWAY_MODEL_STORE_FINE_TUNE_JOB_H_
#define HEADWAY_MODEL_STORE_FINE_TUNE_JOB_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model_store/fine_tune_options.h"
#include "model_store/input.h"

namespace headway {

struct FineTuneJobSpec {
  std::filesystem::path model_store;
  std::string job_id;  // letters, digits, '-'
  std::string source_model;
  // The examples: `inputs` (whose bytes outlive the run) with their `labels`, or
  // `examples_dir`, relative to the store.
  std::vector<InputView> inputs;
  std::vector<std::string> labels;
  std::string examples_dir;
  // In index order; empty: the labels' (sub-folders') names, sorted.
  std::vector<std::string> classes;
  int64_t max_examples = 100000;
  InputLimits limits;
  FineTuneOptions options;
  std::string output_model;
  std::string head;
};

struct FineTuneJobOutput {
  FineTuneResult training;  // its checkpoint bytes cleared once written
  std::vector<std::string> classes;
  std::string checkpoint;  // relative to the store
};

// The checks a job passes before it is queued, without reading examples: valid
// names, a source model in the store, an output name the store does not hold
// (ALREADY_EXISTS), one kind of examples, counts that match, at most max_examples.
absl::Status CheckFineTuneJob(const FineTuneJobSpec& spec);

// Runs the job. `on_progress` as FineTuneBackbone's (false cancels: CANCELLED, and
// nothing is written). Errors: CheckFineTuneJob's; INVALID_ARGUMENT naming the
// example, the class or the setting at fault; FAILED_PRECONDITION for a store that
// cannot be written.
absl::StatusOr<FineTuneJobOutput> RunFineTuneJob(
    const FineTuneJobSpec& spec,
    const std::function<bool(const FineTuneProgress&)>& on_progress);

// Removes the temporary folders of jobs that a kill interrupted, those last modified
// more than `age` ago (a job writes its folder within seconds; another replica's job
// may be writing one now); returns how many.
int CleanFineTuneLeftovers(const std::filesystem::path& model_store,
                           std::filesystem::file_time_type::duration age);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_FINE_TUNE_JOB_H_
