// ChannelTarget: how the client library names a target to gRPC. A list of replica
// addresses becomes gRPC's ipv4:/ipv6: list; anything else goes through unchanged; a
// list that names a host is refused with a message saying what to give instead.
#include "client/channel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace headway {
namespace {

using ::testing::HasSubstr;

TEST(ChannelTargetTest, AListOfAddressesBecomesGrpcsAddressList) {
  EXPECT_EQ(*ChannelTarget("10.0.0.5:50051,10.0.0.6:50051"),
            "ipv4:10.0.0.5:50051,10.0.0.6:50051");
  EXPECT_EQ(*ChannelTarget("127.0.0.1:1, 127.0.0.1:2"), "ipv4:127.0.0.1:1, 127.0.0.1:2");
  EXPECT_EQ(*ChannelTarget("[::1]:50051,[fe80::1]:50051"),
            "ipv6:[::1]:50051,[fe80::1]:50051");
}

TEST(ChannelTargetTest, OneAddressOrANameGoesThroughUnchanged) {
  for (const std::string target :
       {"127.0.0.1:50051", "headway:50051", "dns:///headway.default:50051",
        "ipv4:10.0.0.5:1,10.0.0.6:1", "unix:/run/headway.sock"}) {
    EXPECT_EQ(*ChannelTarget(target), target);
  }
}

TEST(ChannelTargetTest, AListNamingAHostIsRefusedSayingWhatToGive) {
  for (const std::string target :
       {"localhost:50061,localhost:50062", "10.0.0.5:1,headway-2:1", "10.0.0.5,10.0.0.6",
        "[::1]:1,10.0.0.5:1", "10.0.0.5:1,[::1]:1"}) {
    const absl::StatusOr<std::string> refused = ChannelTarget(target);
    ASSERT_FALSE(refused.ok()) << target;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("a list of replicas names each by"))
        << target;
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr("dns:///NAME:PORT"));
  }
}

}  // namespace
}  // namespace headway
