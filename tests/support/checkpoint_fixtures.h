// The checkpoint fixtures tests/checkpoints/make_checkpoints.py writes into the build
// folder (a CTest fixture runs it first): torchvision architectures saved every way
// users save them, with PyTorch's outputs beside them.
#ifndef HEADWAY_TESTS_SUPPORT_CHECKPOINT_FIXTURES_H_
#define HEADWAY_TESTS_SUPPORT_CHECKPOINT_FIXTURES_H_

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

namespace headway::testing {

struct ArchitectureFixture {
  std::string arch;         // "resnet18", "mobilenet_v3_small"
  int64_t feature_dim = 0;  // the backbone's output width
  int64_t classes = 0;      // the head's
  std::string head_prefix;  // the head's keys in the whole model's state_dict

  // <dir>/<arch>_<suffix>
  std::filesystem::path File(const std::string& suffix) const;
  // The fixed input [2, 3, 64, 64] and PyTorch's outputs for it, flattened.
  std::vector<float> Input() const;
  std::vector<float> Features() const;
  std::vector<float> Logits() const;
};

// GoogleTest prints a parameter by its architecture's name.
inline void PrintTo(const ArchitectureFixture& fixture, std::ostream* out) {
  *out << fixture.arch;
}

std::filesystem::path CheckpointDir();

// The architectures make_checkpoints.py saves (its manifest.txt lists the same).
std::vector<ArchitectureFixture> Architectures();

// Raw little-endian float32 values of a file.
std::vector<float> ReadFloats(const std::filesystem::path& path);

}  // namespace headway::testing

#endif  // HEADWAY_TESTS_SUPPORT_CHECKPOINT_FIXTURES_H_
