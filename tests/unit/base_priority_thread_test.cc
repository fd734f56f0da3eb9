// StartAtBasePriority: a thread started from a low-priority thread runs at the
// process's base priority (Linux threads inherit their creator's nice value).
// LowerThisThreadsPriority: nice, and the shortest time slice where the kernel has them.
#include "model_store/base_priority_thread.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace headway {
namespace {

int NiceOfThisThread() { return getpriority(PRIO_PROCESS, 0); }

// The calling thread's time slice in ns, where the kernel shows it (se.slice in
// /proc/thread-self/sched: EEVDF kernels with scheduler statistics).
std::optional<int64_t> SliceOfThisThread() {
  std::ifstream sched("/proc/thread-self/sched");
  std::string line;
  while (std::getline(sched, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, ':');
    int64_t slice = 0;
    if (fields.size() == 2 && absl::StripAsciiWhitespace(fields[0]) == "se.slice" &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(fields[1]), &slice)) {
      return slice;
    }
  }
  return std::nullopt;
}

// Linux 6.12 or later: a fair-class thread may ask for its own time slice.
bool KernelHasCustomSlices() {
  utsname name;
  if (uname(&name) != 0) return false;
  std::vector<std::string> parts = absl::StrSplit(name.release, absl::MaxSplits('.', 2));
  int major = 0, minor = 0;
  return parts.size() >= 2 && absl::SimpleAtoi(parts[0], &major) &&
         absl::SimpleAtoi(parts[1], &minor) && (major > 6 || (major == 6 && minor >= 12));
}

TEST(BasePriorityThreadTest, ABackgroundThreadIsNicedAndAsksForTheShortestSlice) {
  const int base = NiceOfThisThread();
  if (base >= 19) GTEST_SKIP() << "the tests already run at the lowest priority";
  const int lower = std::min(base + 5, 19);
  int niced = 0;
  std::optional<int64_t> slice;
  std::thread background([&] {
    LowerThisThreadsPriority(lower);
    niced = NiceOfThisThread();
    slice = SliceOfThisThread();
  });
  background.join();
  EXPECT_EQ(niced, lower);
  if (!slice.has_value() || !KernelHasCustomSlices()) {
    GTEST_SKIP() << "this kernel shows no time slices or grants no custom ones";
  }
  EXPECT_EQ(*slice, 100'000);
}

TEST(BasePriorityThreadTest, AThreadStartedFromANicedThreadRunsAtTheBasePriority) {
  const int base = NiceOfThisThread();
  if (base >= 19) GTEST_SKIP() << "the tests already run at the lowest priority";
  const int lower = std::min(base + 5, 19);
  StartBasePriorityThreads();
  int niced = 0, started_nice = 0, plain_nice = 0;
  std::thread background([&] {
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), lower);
    niced = NiceOfThisThread();
    std::thread started = StartAtBasePriority([&] { started_nice = NiceOfThisThread(); });
    started.join();
    std::thread plain([&] { plain_nice = NiceOfThisThread(); });
    plain.join();
  });
  background.join();
  ASSERT_EQ(niced, lower);
  EXPECT_EQ(plain_nice, lower);  // what a plain std::thread inherits
  EXPECT_EQ(started_nice, base);
}

TEST(BasePriorityThreadTest, AThreadStartedAtTheBasePriorityStartsDirectly) {
  StartBasePriorityThreads();  // a second call changes nothing
  bool ran = false;
  std::thread started = StartAtBasePriority([&] { ran = true; });
  started.join();
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace headway
