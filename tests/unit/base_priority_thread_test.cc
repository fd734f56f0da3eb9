// StartAtBasePriority: a thread started from a low-priority thread runs at the
// process's base priority (Linux threads inherit their creator's nice value).
#include "model_store/base_priority_thread.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <thread>

namespace headway {
namespace {

int NiceOfThisThread() { return getpriority(PRIO_PROCESS, 0); }

TEST(BasePriorityThreadTest, AThreadStartedFromANicedThreadRunsAtTheBasePriority) {
  const int base = NiceOfThisThread();
  StartBasePriorityThreads();
  int niced = 0, started_nice = 0, plain_nice = 0;
  std::thread background([&] {
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), base + 5);
    niced = NiceOfThisThread();
    std::thread started = StartAtBasePriority([&] { started_nice = NiceOfThisThread(); });
    started.join();
    std::thread plain([&] { plain_nice = NiceOfThisThread(); });
    plain.join();
  });
  background.join();
  ASSERT_EQ(niced, base + 5);
  EXPECT_EQ(plain_nice, base + 5);  // what a plain std::thread inherits
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
