// Tests NameThisThread: the name shows in /proc, cut to Linux's 15 characters.
#include "model_store/thread_name.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <thread>

namespace headway {
namespace {

std::string NameInProc() {
  std::ifstream comm("/proc/thread-self/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

TEST(ThreadNameTest, ANamedThreadShowsItsNameInProc) {
  std::string seen;
  std::thread([&] {
    NameThisThread("hw-manage");
    seen = NameInProc();
  }).join();
  EXPECT_EQ(seen, "hw-manage");
}

TEST(ThreadNameTest, ALongNameIsCutToFifteenCharacters) {
  std::string seen;
  std::thread([&] {
    NameThisThread("hw-a-name-longer-than-linux-keeps");
    seen = NameInProc();
  }).join();
  EXPECT_EQ(seen, "hw-a-name-longe");
}

}  // namespace
}  // namespace headway
