// AllFiniteFloats: whether `count` float32 values hold no NaN and no infinity, read
// from raw bytes (any alignment). Used where a request's values are checked: scanning
// a few values is cheaper than dispatching LibTorch operators to check them, and the
// loop vectorizes for large tensors. Thread-safe (reads only).
#ifndef HEADWAY_MODEL_STORE_FINITE_FLOATS_H_
#define HEADWAY_MODEL_STORE_FINITE_FLOATS_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace headway {

inline bool AllFiniteFloats(const void* data, size_t count) {
  // A float32 is NaN or infinite exactly when its eight exponent bits are all ones.
  constexpr uint32_t kExponent = 0x7f800000u;
  const unsigned char* bytes = static_cast<const unsigned char*>(data);
  uint32_t non_finite = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, bytes + i * sizeof(bits), sizeof(bits));
    non_finite |= static_cast<uint32_t>((bits & kExponent) == kExponent);
  }
  return non_finite == 0;
}

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_FINITE_FLOATS_H_
