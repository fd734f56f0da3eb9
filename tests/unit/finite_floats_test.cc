// Tests AllFiniteFloats: every kind of non-finite float32 is found wherever it sits,
// finite extremes pass, and the bytes need no alignment.
#include "model_store/finite_floats.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

namespace headway {
namespace {

using Limits = std::numeric_limits<float>;

TEST(FiniteFloatsTest, FiniteExtremesPass) {
  const std::vector<float> values = {
      0.0f, -0.0f, Limits::max(), Limits::lowest(), Limits::min(), Limits::denorm_min(),
      1.0f};
  EXPECT_TRUE(AllFiniteFloats(values.data(), values.size()));
  EXPECT_TRUE(AllFiniteFloats(values.data(), 0));
}

TEST(FiniteFloatsTest, EachNonFiniteValueIsFoundAtEveryPosition) {
  for (float bad : {Limits::quiet_NaN(), -Limits::quiet_NaN(), Limits::signaling_NaN(),
                    Limits::infinity(), -Limits::infinity()}) {
    for (size_t at = 0; at < 37; ++at) {
      std::vector<float> values(37, 0.5f);
      values[at] = bad;
      EXPECT_FALSE(AllFiniteFloats(values.data(), values.size())) << bad << " at " << at;
      // Only the first `at` values are read.
      EXPECT_TRUE(AllFiniteFloats(values.data(), at));
    }
  }
}

TEST(FiniteFloatsTest, UnalignedBytesAreRead) {
  std::vector<unsigned char> bytes(1 + 8 * sizeof(float));
  std::vector<float> values(8, 2.0f);
  values[7] = Limits::infinity();
  std::memcpy(bytes.data() + 1, values.data(), values.size() * sizeof(float));
  EXPECT_TRUE(AllFiniteFloats(bytes.data() + 1, 7));
  EXPECT_FALSE(AllFiniteFloats(bytes.data() + 1, 8));
}

}  // namespace
}  // namespace headway
