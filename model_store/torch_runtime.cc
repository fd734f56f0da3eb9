#include "model_store/torch_runtime.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"

namespace headway {
namespace {

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

}  // namespace

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
  at::set_num_threads(intra_op_threads > 0 ? intra_op_threads : UsableCpus());
}

int TorchThreads() { return at::get_num_threads(); }

}  // namespace headway
