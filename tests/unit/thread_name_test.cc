// Tests NameThisThread: the name shows in /proc, cut to Linux's 15 characters.
#include "model_store/thread_name.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <thread>

namespace headway {
namespace {

// Names a new thread `name` and returns what /proc shows for it.
std::string NameShownAfterNaming(const std::string& name) {
  std::string shown;
  std::thread([&] {
    NameThisThread(name);
    std::ifstream comm("/proc/thread-self/comm");
    std::getline(comm, shown);
  }).join();
  return shown;
}

TEST(ThreadNameTest, ANamedThreadShowsItsNameInProc) {
  EXPECT_EQ(NameShownAfterNaming("hw-manage"), "hw-manage");
}

TEST(ThreadNameTest, ALongNameIsCutToFifteenCharacters) {
  EXPECT_EQ(NameShownAfterNaming("hw-a-name-longer-than-linux-keeps"), "hw-a-name-longe");
}

}  // namespace
}  // namespace headway
