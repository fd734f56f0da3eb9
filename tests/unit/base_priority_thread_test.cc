// StartAtBasePriority: a thread started from a low-priority thread runs at the
// process's base priority (Linux threads inherit their creator's nice value).
#include "model_store/base_priority_thread.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

namespace headway {
namespace {

int NiceOfThisThread() { return getpriority(PRIO_PROCESS, 0); }

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
