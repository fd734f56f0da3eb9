// ChannelsFor: how many connections the load generator opens when the caller does not
// say, so that a server's per-connection stream limit does not cap the concurrency
// asked for.
#include "client/load_generator.h"

#include <gtest/gtest.h>

namespace headway {
namespace {

LoadOptions ClosedLoop(int concurrency) {
  LoadOptions options;
  options.concurrency = concurrency;
  return options;
}

TEST(ChannelsForTest, AClosedLoopGetsOneChannelPer256CallsInFlight) {
  EXPECT_EQ(ChannelsFor(ClosedLoop(1)), 1);
  EXPECT_EQ(ChannelsFor(ClosedLoop(kCallsPerChannel)), 1);
  EXPECT_EQ(ChannelsFor(ClosedLoop(kCallsPerChannel + 1)), 2);
  EXPECT_EQ(ChannelsFor(ClosedLoop(1000)), 4);
}

TEST(ChannelsForTest, AnOpenLoopIsOneClientOnOneConnection) {
  LoadOptions options = ClosedLoop(1000);
  options.rate = 50000;
  EXPECT_EQ(ChannelsFor(options), 1);
}

TEST(ChannelsForTest, ChannelsSetByTheCallerWin) {
  LoadOptions options = ClosedLoop(1000);
  options.channels = 3;
  EXPECT_EQ(ChannelsFor(options), 3);
  options.rate = 50000;
  EXPECT_EQ(ChannelsFor(options), 3);
}

}  // namespace
}  // namespace headway
