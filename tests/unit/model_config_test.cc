#include "model_store/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <ostream>

#include "model_store/store/model_files.h"
#include "tests/support/digits_data.h"

namespace headway {
namespace {

using ::testing::HasSubstr;

constexpr char kValidConfig[] = R"pb(
  name: "m"
  backbone { file: "backbone.pt" }
  input {
    channels: 3
    height: 224
    width: 224
    mean: [ 0.485, 0.456, 0.406 ]
    std: 0.25
  }
  heads {
    name: "imagenet"
    file: "heads/imagenet.pt"
    labels_file: "heads/imagenet.labels"
  }
  heads { name: "pets" file: "heads/pets.pt" }
  default_head: "pets"
)pb";

v1::ModelConfig Parse(const char* text) {
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(text);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.value_or(v1::ModelConfig());
}

TEST(ModelConfigTest, ParsesTextFormat) {
  const v1::ModelConfig config = Parse(kValidConfig);
  EXPECT_EQ(config.name(), "m");
  EXPECT_EQ(config.input().mean_size(), 3);
  EXPECT_FLOAT_EQ(config.input().mean(1), 0.456f);
  ASSERT_EQ(config.heads_size(), 2);
  EXPECT_EQ(config.heads(1).name(), "pets");
  EXPECT_TRUE(ValidateModelConfig(config).ok()) << ValidateModelConfig(config);
}

TEST(ModelConfigTest, MalformedTextNamesTheLine) {
  const absl::StatusOr<v1::ModelConfig> config =
      ParseModelConfig("name: \"m\"\nbackbone { file: 3 \n");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("line 2"));
}

TEST(ModelConfigTest, UnknownFieldIsRejected) {
  const absl::StatusOr<v1::ModelConfig> config = ParseModelConfig("nmae: \"m\"");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("nmae"));
}

struct InvalidCase {
  const char* edit;  // text appended to kValidConfig (later fields win)
  const char* expected_message;
};

// GoogleTest prints a case by its edit, naming the case that failed.
void PrintTo(const InvalidCase& invalid, std::ostream* out) { *out << invalid.edit; }

class InvalidConfigTest : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidConfigTest, IsRejectedWithAClearMessage) {
  v1::ModelConfig config = Parse(kValidConfig);
  v1::ModelConfig edit = Parse(GetParam().edit);
  config.MergeFrom(edit);
  const absl::Status status = ValidateModelConfig(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(GetParam().expected_message));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, InvalidConfigTest,
    ::testing::Values(
        InvalidCase{"input { channels: 2 }", "channels must be 1 or 3"},
        InvalidCase{"input { height: -1 }", "height"},
        InvalidCase{"input { std: [0, 1] }", "std"},
        InvalidCase{"input { resize: SHORTER_SIDE_THEN_CENTER_CROP "
                    "resize_shorter_side: 100 }",
                    "resize_shorter_side"},
        InvalidCase{"heads { name: \"pets\" file: \"x.pt\" }", "duplicate head"},
        InvalidCase{"heads { name: \"x\" }", "has no file"},
        InvalidCase{"default_head: \"nope\"", "default_head \"nope\""},
        InvalidCase{"backbone { file: \"/etc/passwd\" }", "must be relative"},
        InvalidCase{"heads { name: \"x\" file: \"../other/h.pt\" }",
                    "must not contain \"..\""}));

TEST(ModelConfigTest, ReadsTheBundledDigitsConfigAndFillsDefaults) {
  const absl::StatusOr<v1::ModelConfig> config =
      ReadModelConfig(testing::ModelStore() / "digits");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name(), "digits");
  EXPECT_EQ(config->backbone().format(), v1::BackboneConfig::TORCHSCRIPT);
  EXPECT_EQ(config->input().channels(), 1);
  EXPECT_EQ(config->input().color_order(), v1::InputSpec::RGB);
  EXPECT_EQ(config->default_head(), "digit");
  EXPECT_EQ(config->limits().max_inputs_per_request(), kDefaultMaxInputsPerRequest);
}

TEST(ModelConfigTest, NameMustMatchFolder) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / "headway-cfg-x";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / kModelConfigFileName) << kValidConfig;
  const absl::StatusOr<v1::ModelConfig> config = ReadModelConfig(dir);
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("differs from its folder's name"));
}

TEST(ModelConfigTest, MissingConfigIsNotFound) {
  const absl::StatusOr<v1::ModelConfig> config =
      ReadModelConfig(std::filesystem::temp_directory_path() / "headway-no-such-model");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
}

TEST(ResolveModelFileTest, StaysInsideTheModelFolder) {
  EXPECT_EQ(*ResolveModelFile("/store/m", "heads/a.pt"), "/store/m/heads/a.pt");
  EXPECT_FALSE(ResolveModelFile("/store/m", "").ok());
  EXPECT_FALSE(ResolveModelFile("/store/m", "/abs.pt").ok());
  EXPECT_FALSE(ResolveModelFile("/store/m", "heads/../../n/a.pt").ok());
}

}  // namespace
}  // namespace headway
