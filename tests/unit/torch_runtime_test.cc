// UsableCpus and ConfigureTorchThreads: the default intra-op thread count follows the
// CPUs the process may use, not LibTorch's physical-core guess.
#include "model_store/torch_runtime.h"

#include <gtest/gtest.h>
#include <sched.h>

namespace headway {
namespace {

// Restricts the calling thread to the first CPU in its mask while alive.
class PinnedToOneCpu {
 public:
  PinnedToOneCpu() {
    sched_getaffinity(0, sizeof(original_), &original_);
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &original_)) {
        CPU_SET(cpu, &one);
        break;
      }
    }
    sched_setaffinity(0, sizeof(one), &one);
  }
  ~PinnedToOneCpu() { sched_setaffinity(0, sizeof(original_), &original_); }

 private:
  cpu_set_t original_;
};

int AffinityCpus() {
  cpu_set_t cpus;
  sched_getaffinity(0, sizeof(cpus), &cpus);
  return CPU_COUNT(&cpus);
}

TEST(TorchRuntimeTest, UsableCpusFollowsTheAffinityMask) {
  EXPECT_GE(UsableCpus(), 1);
  EXPECT_LE(UsableCpus(), AffinityCpus());
  {
    PinnedToOneCpu pinned;
    EXPECT_EQ(UsableCpus(), 1);
  }
  EXPECT_LE(UsableCpus(), AffinityCpus());
}

TEST(TorchRuntimeTest, ZeroThreadsMeansOnePerUsableCpu) {
  ConfigureTorchThreads(0);
  EXPECT_EQ(TorchThreads(), UsableCpus());
  ConfigureTorchThreads(1);
  EXPECT_EQ(TorchThreads(), 1);
  ConfigureTorchThreads(3);
  EXPECT_EQ(TorchThreads(), 3);
}

}  // namespace
}  // namespace headway
