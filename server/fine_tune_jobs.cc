#include "server/fine_tune_jobs.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model_store/fine_tune_job.h"
#include "model_store/model_config.h"
#include "server/request_inputs.h"

namespace headway {
namespace {

constexpr absl::Duration kStepPublishInterval = absl::Milliseconds(200);

bool Ended(v1::Job::State state) {
  return state == v1::Job::SUCCEEDED || state == v1::Job::FAILED ||
         state == v1::Job::CANCELLED;
}

FineTuneOptions OptionsOf(const v1::StartFineTuneRequest& request, int threads) {
  FineTuneOptions options;
  options.train_prefixes.assign(request.train_layers().begin(),
                                request.train_layers().end());
  options.train_all = request.train_all();
  options.optimizer = request.optimizer() == v1::StartFineTuneRequest::ADAM
                          ? FineTuneOptions::Optimizer::kAdam
                          : FineTuneOptions::Optimizer::kSgd;
  options.learning_rate = request.learning_rate() != 0 ? request.learning_rate()
                          : options.optimizer == FineTuneOptions::Optimizer::kAdam ? 0.001
                                                                                   : 0.01;
  options.momentum = request.has_momentum() ? request.momentum() : 0.9;
  options.weight_decay = request.weight_decay();
  options.epochs = request.epochs() != 0 ? request.epochs() : 5;
  options.batch_size = request.batch_size() != 0 ? request.batch_size() : 32;
  options.horizontal_flip = request.horizontal_flip();
  options.seed = request.seed() != 0 ? request.seed() : 1;
  options.validation_fraction =
      request.validation_fraction() == 0 ? 0.2 : request.validation_fraction();
  options.threads = threads;
  return options;
}

}  // namespace

struct FineTuneJobs::Entry {
  v1::Job job;
  // The request the spec's input views point into.
  std::shared_ptr<const v1::StartFineTuneRequest> request;
  FineTuneJobSpec spec;
  std::atomic<bool> cancel{false};
  std::map<int64_t, WatchCallback> watchers;
  absl::Time started;
  absl::Time last_published = absl::InfinitePast();
};

FineTuneJobs::FineTuneJobs(Options options)
    : options_(std::move(options)), runner_(1, options_.niceness) {}

FineTuneJobs::~FineTuneJobs() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, entry] : jobs_) entry->cancel = true;
}

std::string FineTuneJobs::NextId() {
  return absl::StrCat("ft-",
                      absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone()),
                      "-", next_number_++);
}

absl::StatusOr<v1::Job> FineTuneJobs::Start(const v1::StartFineTuneRequest& request) {
  auto entry = std::make_shared<Entry>();
  entry->request = std::make_shared<const v1::StartFineTuneRequest>(request);
  const v1::StartFineTuneRequest& owned = *entry->request;
  absl::StatusOr<std::vector<InputView>> inputs = ToInputViews(owned.inputs());
  if (!inputs.ok()) return inputs.status();
  FineTuneJobSpec& spec = entry->spec;
  spec.model_store = options_.model_store;
  spec.source_model = owned.model();
  spec.inputs = *std::move(inputs);
  spec.labels.assign(owned.labels().begin(), owned.labels().end());
  spec.examples_dir = owned.examples_dir();
  spec.classes.assign(owned.classes().begin(), owned.classes().end());
  spec.max_examples = options_.max_examples;
  spec.limits = options_.limits;
  spec.options = OptionsOf(owned, options_.threads_per_job);
  spec.head = owned.head().empty() ? "finetuned" : owned.head();

  absl::MutexLock lock(&mu_);
  spec.job_id = NextId();
  spec.output_model = owned.output_model().empty()
                          ? absl::StrCat(owned.model(), "-", spec.job_id)
                          : owned.output_model();
  if (absl::Status checked = CheckFineTuneJob(spec); !checked.ok()) return checked;
  for (const auto& [id, other] : jobs_) {
    if (!Ended(other->job.state()) && other->spec.output_model == spec.output_model) {
      return absl::AlreadyExistsError(
          absl::StrCat("job ", id, " writes model \"", spec.output_model, "\" already"));
    }
  }
  v1::Job& job = entry->job;
  job.set_id(spec.job_id);
  job.set_state(v1::Job::QUEUED);
  job.set_model(spec.source_model);
  job.set_output_model(spec.output_model);
  job.set_epochs(spec.options.epochs);
  job.set_train_accuracy(-1);
  job.set_validation_accuracy(-1);
  *job.mutable_train_layers() = owned.train_layers();
  job.set_train_all(owned.train_all());
  job.set_created_unix_seconds(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  jobs_[spec.job_id] = entry;
  runner_.Schedule([this, entry] { Run(entry); });
  return job;
}

absl::StatusOr<v1::Job> FineTuneJobs::Get(absl::string_view id) const {
  absl::MutexLock lock(&mu_);
  auto found = jobs_.find(id);
  if (found == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job \"", EchoName(id), "\""));
  }
  return found->second->job;
}

std::vector<v1::Job> FineTuneJobs::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Job> jobs;
  for (const auto& [id, entry] : jobs_) jobs.push_back(entry->job);
  std::sort(jobs.begin(), jobs.end(), [](const v1::Job& a, const v1::Job& b) {
    return a.created_unix_seconds() > b.created_unix_seconds() ||
           (a.created_unix_seconds() == b.created_unix_seconds() && a.id() > b.id());
  });
  return jobs;
}

absl::StatusOr<v1::Job> FineTuneJobs::Cancel(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  auto found = jobs_.find(id);
  if (found == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job \"", EchoName(id), "\""));
  }
  const std::shared_ptr<Entry> held = found->second;  // Finish may drop it from jobs_
  Entry& entry = *held;
  entry.cancel = true;
  if (entry.job.state() == v1::Job::QUEUED) {  // Run will skip it
    entry.job.set_state(v1::Job::CANCELLED);
    entry.job.set_error("cancelled before it started");
    Finish(entry);
  }
  return entry.job;
}

absl::StatusOr<int64_t> FineTuneJobs::Watch(absl::string_view id,
                                            WatchCallback on_change) {
  absl::MutexLock lock(&mu_);
  auto found = jobs_.find(id);
  if (found == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job \"", EchoName(id), "\""));
  }
  const int64_t token = next_token_++;
  on_change(found->second->job);
  if (!Ended(found->second->job.state())) {
    found->second->watchers.emplace(token, std::move(on_change));
  }
  return token;
}

void FineTuneJobs::Unwatch(absl::string_view id, int64_t token) {
  absl::MutexLock lock(&mu_);
  auto found = jobs_.find(id);
  if (found != jobs_.end()) found->second->watchers.erase(token);
}

void FineTuneJobs::Publish(Entry& entry, bool force) {
  const absl::Time now = absl::Now();
  if (!force && now - entry.last_published < kStepPublishInterval) return;
  entry.last_published = now;
  for (auto& [token, on_change] : entry.watchers) on_change(entry.job);
}

void FineTuneJobs::Finish(Entry& entry) {
  Publish(entry, /*force=*/true);
  entry.watchers.clear();
  finished_.push_back(entry.job.id());
  while (static_cast<int>(finished_.size()) > options_.max_finished) {
    jobs_.erase(finished_.front());
    finished_.pop_front();
  }
}

void FineTuneJobs::Run(const std::shared_ptr<Entry>& held) {
  Entry& entry = *held;
  {
    absl::MutexLock lock(&mu_);
    if (entry.job.state() != v1::Job::QUEUED) return;  // cancelled while queued
    if (entry.cancel) {                                // the server is stopping
      entry.job.set_state(v1::Job::CANCELLED);
      entry.job.set_error("the server stopped before the job started");
      Finish(entry);
      return;
    }
    entry.job.set_state(v1::Job::RUNNING);
    entry.started = absl::Now();
    Publish(entry, /*force=*/true);
  }
  const auto on_progress = [&](const FineTuneProgress& progress) {
    absl::MutexLock lock(&mu_);
    v1::Job& job = entry.job;
    job.set_epoch(progress.epoch);
    job.set_step(progress.step);
    job.set_steps_per_epoch(progress.steps_per_epoch);
    job.set_loss(progress.loss);
    job.set_epoch_done(progress.epoch_done);
    if (progress.epoch_done) {
      job.set_train_accuracy(progress.train_accuracy);
      job.set_validation_accuracy(progress.validation_accuracy);
    }
    job.set_examples_per_second(progress.examples_per_second);
    job.set_eta_seconds(absl::ToDoubleSeconds(progress.remaining));
    job.set_elapsed_seconds(absl::ToDoubleSeconds(absl::Now() - entry.started));
    Publish(entry, progress.epoch_done);
    if (options_.on_progress) options_.on_progress(job);
    return !entry.cancel.load();
  };
  absl::StatusOr<FineTuneJobOutput> output = RunFineTuneJob(entry.spec, on_progress);
  absl::Status served = absl::OkStatus();
  if (output.ok() && entry.request->serve() && options_.serve) {
    served = options_.serve(entry.spec.output_model);
  }
  v1::Job finished;
  {
    absl::MutexLock lock(&mu_);
    v1::Job& job = entry.job;
    job.set_elapsed_seconds(absl::ToDoubleSeconds(absl::Now() - entry.started));
    job.set_eta_seconds(0);
    job.set_epoch_done(false);  // the epoch's own update said so
    if (output.ok()) {
      job.set_state(v1::Job::SUCCEEDED);
      const FineTuneResult& training = output->training;
      *job.mutable_classes() = {output->classes.begin(), output->classes.end()};
      *job.mutable_examples_per_class() = {training.examples_per_class.begin(),
                                           training.examples_per_class.end()};
      job.set_validation_examples(training.validation_examples);
      job.set_train_accuracy(training.train_accuracy);
      job.set_validation_accuracy(training.validation_accuracy);
      job.set_loss(training.final_loss);
      job.set_trained_values(training.trained_values);
      job.set_checkpoint(output->checkpoint);
      job.set_serving(entry.request->serve() && served.ok());
      if (!served.ok()) {
        job.set_error(absl::StrCat("written, but loading it failed: ", served.message()));
      }
    } else {
      job.set_state(output.status().code() == absl::StatusCode::kCancelled
                        ? v1::Job::CANCELLED
                        : v1::Job::FAILED);
      job.set_error(std::string(output.status().message()));
    }
    Finish(entry);
    finished = job;
  }
  if (options_.on_finished) options_.on_finished(finished);
}

}  // namespace headway
