#include "tests/support/checkpoint_fixtures.h"

#include <gtest/gtest.h>

#include <fstream>

namespace headway::testing {

std::filesystem::path CheckpointDir() { return HEADWAY_CHECKPOINT_DIR; }

std::filesystem::path ArchitectureFixture::File(const std::string& suffix) const {
  return CheckpointDir() / (arch + "_" + suffix);
}

std::vector<float> ArchitectureFixture::Input() const {
  return ReadFloats(File("input.f32"));
}
std::vector<float> ArchitectureFixture::Features() const {
  return ReadFloats(File("features.f32"));
}
std::vector<float> ArchitectureFixture::Logits() const {
  return ReadFloats(File("logits.f32"));
}

std::vector<ArchitectureFixture> Architectures() {
  // As make_checkpoints.py splits them: the last linear layer is the head.
  return {{"resnet18", 512, 1000, "fc."},
          {"mobilenet_v3_small", 1024, 1000, "classifier.3."}};
}

std::vector<float> ReadFloats(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::vector<float> values(std::filesystem::file_size(path) / sizeof(float));
  in.read(reinterpret_cast<char*>(values.data()), values.size() * sizeof(float));
  return values;
}

}  // namespace headway::testing
