#include "model_store/torch_runtime.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace headway {
namespace {

// The threads CPU passes share; 0 until ConfigureTorchThreads.
std::atomic<int> configured_threads{0};
// CPU passes running now, in this process.
std::atomic<int> running_passes{0};

// CPUs allowed by a container's CPU quota (cgroup v2 cpu.max, or v1's cfs quota and
// period), rounded up; 0 when there is no quota.
int QuotaCpus() {
  double quota = -1;
  double period = 0;
  std::ifstream v2("/sys/fs/cgroup/cpu.max");
  std::string max;
  if (v2 >> max >> period) {
    if (!absl::SimpleAtod(max, &quota)) return 0;  // "max": no quota
  } else {
    std::ifstream("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") >> quota;
    std::ifstream("/sys/fs/cgroup/cpu/cpu.cfs_period_us") >> period;
  }
  if (quota <= 0 || period <= 0) return 0;
  return static_cast<int>(std::ceil(quota / period));
}

// Passes each place's warnings on at most once per interval, with a count.
class RateLimitedWarnings final : public c10::WarningHandler {
 public:
  RateLimitedWarnings(TorchWarningSink sink, absl::Duration interval)
      : sink_(std::move(sink)), interval_(interval) {}

  void process(const c10::SourceLocation& location, const std::string& message,
               bool /*verbatim*/) override {
    const std::string where = absl::StrCat(location.file, ":", location.line);
    int64_t repeats = 0;
    {
      absl::MutexLock lock(&mu_);
      Place& place = places_[where];
      const absl::Time now = absl::Now();
      if (now - place.passed_on < interval_) {
        ++place.left_out;
        return;
      }
      repeats = place.left_out;
      place.left_out = 0;
      place.passed_on = now;
    }
    sink_(where, message, repeats);
  }

 private:
  struct Place {
    absl::Time passed_on = absl::InfinitePast();
    int64_t left_out = 0;
  };
  const TorchWarningSink sink_;
  const absl::Duration interval_;
  absl::Mutex mu_;
  // Bounded: the places in LibTorch's code that warn.
  std::map<std::string, Place> places_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

void RouteTorchWarnings(TorchWarningSink sink, absl::Duration interval) {
  static RateLimitedWarnings* handler = nullptr;
  if (handler != nullptr) return;
  handler = new RateLimitedWarnings(std::move(sink), interval);
  c10::Warning::set_warning_handler(handler);
}

int UsableCpus() {
  cpu_set_t cpus;
  int usable = sched_getaffinity(0, sizeof(cpus), &cpus) == 0
                   ? CPU_COUNT(&cpus)
                   : static_cast<int>(std::thread::hardware_concurrency());
  const int quota = QuotaCpus();
  if (quota > 0) usable = std::min(usable, quota);
  return std::max(1, usable);
}

void ConfigureTorchThreads(int intra_op_threads) {
  const int threads = intra_op_threads > 0 ? intra_op_threads : UsableCpus();
  configured_threads.store(threads);
  at::set_num_threads(threads);
}

int TorchThreads() {
  const int threads = configured_threads.load();
  return threads > 0 ? threads : UsableCpus();
}

void SetThreadsOfThisThread(int threads) {
  // LibTorch sets a thread's count from its global one the first time the thread runs
  // a parallel region; done first, that cannot undo the count set here.
  at::internal::lazy_init_num_threads();
  omp_set_num_threads(std::max(1, threads));
}

int ThreadsOfThisThread() {
  at::internal::lazy_init_num_threads();
  return omp_get_max_threads();
}

CpuPassScope::CpuPassScope(int most) {
  const int running = running_passes.fetch_add(1) + 1;
  threads_ = std::clamp(TorchThreads() / running, 1, std::max(1, most));
  SetThreadsOfThisThread(threads_);
}

CpuPassScope::~CpuPassScope() { running_passes.fetch_sub(1); }

bool CpuInfoHasNativeBf16(absl::string_view cpuinfo) {
  for (absl::string_view line : absl::StrSplit(cpuinfo, '\n')) {
    if (!absl::StartsWith(line, "flags")) continue;
    for (absl::string_view flag : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      if (flag == "avx512_bf16" || flag == "amx_bf16") return true;
    }
    return false;  // every CPU lists the same flags: the first line says
  }
  return false;
}

bool CpuHasNativeBf16() {
  std::ifstream file("/proc/cpuinfo");
  const std::string cpuinfo((std::istreambuf_iterator<char>(file)),
                            std::istreambuf_iterator<char>());
  return CpuInfoHasNativeBf16(cpuinfo);
}

}  // namespace headway
