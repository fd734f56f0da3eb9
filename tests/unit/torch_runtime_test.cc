// UsableCpus and ConfigureTorchThreads: the default intra-op thread count follows the
// CPUs the process may use, not LibTorch's physical-core guess.
#include "model_store/torch_runtime.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

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

TEST(TorchRuntimeTest, NativeBf16IsReadFromTheCpuFlags) {
  EXPECT_TRUE(CpuInfoHasNativeBf16(
      "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"));
  EXPECT_TRUE(CpuInfoHasNativeBf16("flags\t\t: fpu amx_bf16 amx_tile\n"));
  EXPECT_FALSE(CpuInfoHasNativeBf16("flags\t\t: fpu avx2 avx512f avx512_vnni\n"));
  EXPECT_FALSE(CpuInfoHasNativeBf16("flags\t\t: fpu avx512_bf16x\n"));
  EXPECT_FALSE(CpuInfoHasNativeBf16(""));
}

TEST(TorchRuntimeTest, ZeroThreadsMeansOnePerUsableCpu) {
  ConfigureTorchThreads(0);
  EXPECT_EQ(TorchThreads(), UsableCpus());
  ConfigureTorchThreads(1);
  EXPECT_EQ(TorchThreads(), 1);
  ConfigureTorchThreads(3);
  EXPECT_EQ(TorchThreads(), 3);
}

TEST(TorchWarningsTest, EachPlaceIsPassedOnOncePerIntervalWithItsCount) {
  std::vector<std::pair<std::string, int64_t>> passed;
  RouteTorchWarnings(
      [&](absl::string_view where, absl::string_view message, int64_t repeats) {
        passed.emplace_back(absl::StrCat(where, " ", message), repeats);
      },
      absl::Milliseconds(300));
  // Resize.cpp warns each time an out= tensor of another shape is resized.
  at::Tensor out = torch::zeros({3});
  for (int i = 0; i < 50; ++i) {
    out = torch::zeros({3});
    at::cat_out(out, {torch::ones({2}), torch::ones({2})});
  }
  ASSERT_EQ(passed.size(), 1u);
  EXPECT_NE(passed[0].first.find("Resize.cpp"), std::string::npos) << passed[0].first;
  EXPECT_NE(passed[0].first.find("was resized"), std::string::npos) << passed[0].first;
  absl::SleepFor(absl::Milliseconds(400));
  out = torch::zeros({3});
  at::cat_out(out, {torch::ones({2}), torch::ones({2})});
  ASSERT_EQ(passed.size(), 2u);
  EXPECT_EQ(passed[1].second, 49);
}

}  // namespace
}  // namespace headway
