// Loading backbones and heads from TorchScript archives, device names, and head
// validation against the backbone's feature size.
#include "model_store/checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "model_store/backbone.h"
#include "model_store/device.h"
#include "model_store/head.h"
#include "model_store/model_config.h"
#include "model_store/store/model_files.h"
#include "tests/support/source_tree.h"

namespace headway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::filesystem::path kDigits = testing::ModelStore() / "digits";

std::string ReadBytes(const std::filesystem::path& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.value_or("");
}

absl::StatusOr<std::unique_ptr<Backbone>> LoadBackbone(const std::filesystem::path& file,
                                                       std::vector<int64_t> input_shape) {
  BackboneSpec spec;
  absl::StatusOr<std::string> bytes = ReadFileToString(file);
  if (!bytes.ok()) return bytes.status();
  spec.weights = *std::move(bytes);
  spec.input_shape = std::move(input_shape);
  return Backbone::Load(spec);
}

HeadSpec DigitsHeadSpec(const std::filesystem::path& file) {
  HeadSpec spec;
  spec.name = "h";
  spec.checkpoint = ReadBytes(file);
  spec.feature_dim = 64;
  return spec;
}

TEST(DeviceTest, ResolvesNames) {
  EXPECT_EQ(DeviceName(*ResolveDevice("cpu")), "cpu");
  EXPECT_EQ(DeviceName(*ResolveDevice("")), "cpu");
  EXPECT_EQ(ResolveDevice("gpu").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveDevice("cuda:x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveDevice("cuda:-1").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DeviceTest, CudaWithoutCudaIsFailedPrecondition) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has CUDA";
  for (const char* name : {"cuda", "cuda:0", "cuda:3"}) {
    const absl::StatusOr<c10::Device> device = ResolveDevice(name);
    EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition) << name;
    EXPECT_THAT(device.status().message(), HasSubstr("CUDA is not available")) << name;
  }
}

TEST(DeviceTest, CudaIndexBeyondTheGpusIsFailedPrecondition) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs CUDA";
  EXPECT_EQ(ResolveDevice("cuda:255").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DeviceName(*ResolveDevice("cuda")), "cuda:0");
}

TEST(DeviceTest, CudaMemoryCountsTensorsOnTheDevice) {
  if (!torch::cuda::is_available()) {
    // Without CUDA there is nothing to report, whatever is asked.
    EXPECT_TRUE(CudaMemory({"cpu", "cuda:0"}).empty());
    GTEST_SKIP() << "needs CUDA";
  }
  const at::Tensor held = torch::ones({1 << 20}, torch::device(torch::kCUDA));
  const std::vector<DeviceMemory> memory = CudaMemory({"cpu", "cuda:0", "cuda:0"});
  ASSERT_EQ(memory.size(), 1u);
  EXPECT_EQ(memory[0].device, "cuda:0");
  EXPECT_GE(memory[0].allocated_bytes, 4 << 20);
  EXPECT_GE(memory[0].reserved_bytes, memory[0].allocated_bytes);
}

TEST(BackboneTest, LoadsTorchScriptAndLearnsFeatureDim) {
  const absl::StatusOr<std::unique_ptr<Backbone>> backbone =
      LoadBackbone(kDigits / "backbone.pt", {1, 20, 20});
  ASSERT_TRUE(backbone.ok()) << backbone.status();
  EXPECT_EQ((*backbone)->feature_dim(), 64);
  c10::InferenceMode inference;
  const absl::StatusOr<at::Tensor> features =
      (*backbone)->Forward(torch::rand({3, 1, 20, 20}));
  ASSERT_TRUE(features.ok()) << features.status();
  EXPECT_THAT(features->sizes(), ElementsAre(3, 64));
}

TEST(BackboneTest, WrongInputShapeIsReportedAtLoad) {
  const absl::StatusOr<std::unique_ptr<Backbone>> backbone =
      LoadBackbone(kDigits / "backbone.pt", {3, 32, 32});
  EXPECT_EQ(backbone.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(backbone.status().message(), HasSubstr("backbone forward"));
}

TEST(BackboneTest, MissingAndCorruptFilesAreClearErrors) {
  const absl::StatusOr<std::unique_ptr<Backbone>> missing =
      LoadBackbone(kDigits / "no-such.pt", {1, 20, 20});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("no-such.pt"));

  const std::filesystem::path corrupt =
      std::filesystem::temp_directory_path() / "corrupt.pt";
  std::ofstream(corrupt) << "not a zip archive";
  const absl::StatusOr<std::unique_ptr<Backbone>> garbage =
      LoadBackbone(corrupt, {1, 20, 20});
  std::filesystem::remove(corrupt);
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(garbage.status().message(), HasSubstr("not a checkpoint"));
}

TEST(HeadTest, LoadsALinearHeadWithLabels) {
  HeadSpec spec = DigitsHeadSpec(kDigits / "heads" / "digit.pt");
  spec.labels = *ReadLabelsFile(kDigits / "heads" / "digit.labels");
  spec.version = 4;
  const absl::StatusOr<std::shared_ptr<const Head>> head = Head::Load(spec);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ((*head)->num_classes(), 10);
  EXPECT_EQ((*head)->labels()[7], "7");
  EXPECT_EQ((*head)->version(), 4);
  c10::InferenceMode inference;
  EXPECT_THAT((*head)->Forward(torch::rand({5, 64}))->sizes(), ElementsAre(5, 10));
}

TEST(HeadTest, WithoutLabelsTheClassIndicesAreTheLabels) {
  const absl::StatusOr<std::shared_ptr<const Head>> head =
      Head::Load(DigitsHeadSpec(kDigits / "heads" / "parity.pt"));
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_THAT((*head)->labels(), ElementsAre("0", "1"));
}

TEST(HeadTest, RefusesAHeadForAnotherFeatureSize) {
  const absl::StatusOr<std::shared_ptr<const Head>> head =
      Head::Load(DigitsHeadSpec(testing::SourcePath("tests/data/head_wrong_dim.pt")));
  EXPECT_EQ(head.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(head.status().message(),
              HasSubstr("takes 32 features; the backbone gives 64"));
}

TEST(HeadTest, RefusesLabelsThatDoNotMatchTheClasses) {
  HeadSpec spec = DigitsHeadSpec(testing::SourcePath("tests/data/head_three_class.pt"));
  spec.labels = {"cat", "dog"};
  const absl::StatusOr<std::shared_ptr<const Head>> head = Head::Load(spec);
  EXPECT_EQ(head.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(head.status().message(), HasSubstr("has 3 classes but 2 labels"));
}

TEST(HeadTest, RefusesBytesThatAreNotACheckpoint) {
  HeadSpec spec;
  spec.name = "junk";
  spec.checkpoint = "PK\x03\x04 not really a zip";
  spec.feature_dim = 64;
  const absl::StatusOr<std::shared_ptr<const Head>> head = Head::Load(spec);
  EXPECT_EQ(head.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(head.status().message(), HasSubstr("loading head \"junk\""));
}

// This process's resident memory, from /proc/self/statm.
int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// A torch.save archive whose data.pkl is `pickle`.
std::string TorchSaveArchive(const std::string& pickle) {
  std::string archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
    archive.append(static_cast<const char*>(data), size);
    return size;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  writer.writeEndOfFile();
  return archive;
}

// Protocol 2: `depth` empty lists on the stack, each then appended into the one below.
std::string NestedListsPickle(int depth) {
  std::string pickle("\x80\x02");
  pickle += std::string(depth, ']');      // EMPTY_LIST
  pickle += std::string(depth - 1, 'a');  // APPEND
  return pickle + ".";
}

TEST(HeadTest, HostileNestingIsRefusedWithoutCrashingOrLeaking) {
  // Freeing 300,000 nested lists recursively overflows the stack (SIGSEGV).
  const absl::StatusOr<Checkpoint> deep =
      ReadCheckpoint(TorchSaveArchive(NestedListsPickle(300000)), c10::kCPU);
  EXPECT_EQ(deep.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(deep.status().message(), HasSubstr("nested more than"));
  // Memoised lists appended into each other in order keep each append shallow: the
  // depth is the chain's, not the appends'.
  constexpr int kChain = 200000;
  std::string chain("\x80\x02");
  for (int i = 0; i < kChain; ++i) {
    chain += ']';  // EMPTY_LIST
    chain += 'r';  // LONG_BINPUT i
    for (int b = 0; b < 4; ++b) chain += static_cast<char>((i >> (8 * b)) & 0xff);
    chain += '0';  // POP
  }
  for (int i = 0; i + 1 < kChain; ++i) {
    for (int j : {i, i + 1}) {
      chain += 'j';  // LONG_BINGET j
      for (int b = 0; b < 4; ++b) chain += static_cast<char>((j >> (8 * b)) & 0xff);
    }
    chain += 'a';  // APPEND list i+1 into list i
    chain += '0';  // POP
  }
  chain += 'j';
  for (int b = 0; b < 4; ++b) chain += '\0';
  chain += '.';
  const absl::StatusOr<Checkpoint> chained =
      ReadCheckpoint(TorchSaveArchive(chain), c10::kCPU);
  EXPECT_EQ(chained.status().code(), absl::StatusCode::kInvalidArgument);
  // A list that contains itself is refused, and freed (no reference cycle is left).
  // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP.
  const std::string self(
      "\x80\x02]q\x00h\x00"
      "a.",
      9);
  const absl::StatusOr<Checkpoint> cyclic =
      ReadCheckpoint(TorchSaveArchive(self), c10::kCPU);
  EXPECT_EQ(cyclic.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cyclic.status().message(), HasSubstr("contains itself"));

  // A ring of 50,000 lists (the last appended into the first), read 20 times: kept
  // alive by its cycle, it would hold ~150 MB by the end.
  constexpr int kRing = 50000;
  std::string ring("\x80\x02");
  const auto index = [](int i) {
    std::string bytes;
    for (int b = 0; b < 4; ++b) bytes += static_cast<char>((i >> (8 * b)) & 0xff);
    return bytes;
  };
  for (int i = 0; i < kRing; ++i) ring += "]r" + index(i) + "0";
  for (int i = 0; i < kRing; ++i) {
    ring += "j" + index(i) + "j" + index((i + 1) % kRing) + "a0";
  }
  ring += "j" + index(0) + ".";
  [[maybe_unused]] const int64_t before = ResidentBytes();
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(ReadCheckpoint(TorchSaveArchive(ring), c10::kCPU).ok());
  }
#ifndef __SANITIZE_ADDRESS__
  // Under AddressSanitizer freed memory waits in its quarantine (resident), and its
  // leak checker does this check's job.
  EXPECT_LT(ResidentBytes() - before, int64_t{40} << 20);
#endif
}

TEST(HeadTest, ATorchScriptArchiveSavedFromAGpuSaysSoAndLoadsOnTheCpu) {
  const absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(
      ReadBytes(testing::SourcePath("tests/data/head_cuda0_scripted.pt")), c10::kCPU);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_TRUE(checkpoint->module.has_value());
  EXPECT_EQ(checkpoint->saved_locations, std::set<std::string>({"cuda:0"}));
  const absl::StatusOr<Checkpoint> cpu = ReadCheckpoint(
      ReadBytes(testing::SourcePath("tests/data/head_three_class.pt")), c10::kCPU);
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(cpu->saved_locations, std::set<std::string>({"cpu"}));
}

TEST(CheckpointTest, ATorchScriptArchiveIsProbedInAChildUntilItHasLoadedOnce) {
  // LibTorch's parser crashes or throws on this one: it never loads, so every read
  // forks a probe first.
  const std::string parser_crash =
      ReadBytes(testing::SourcePath("fuzz/seeds/checkpoints/crashed_libtorch_parser.pt"));
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int64_t probes = TorchScriptProbesRun();
    EXPECT_FALSE(ReadCheckpoint(parser_crash, c10::kCPU).ok());
    EXPECT_EQ(TorchScriptProbesRun(), probes + 1);
  }
  // Bytes that have loaded here (the first read below, or an earlier test's) load
  // again without a fork.
  const std::string backbone = ReadBytes(kDigits / "backbone.pt");
  ASSERT_TRUE(ReadCheckpoint(backbone, c10::kCPU).ok());
  const int64_t probes = TorchScriptProbesRun();
  for (int attempt = 0; attempt < 3; ++attempt) {
    const absl::StatusOr<Checkpoint> again = ReadCheckpoint(backbone, c10::kCPU);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(again->module.has_value());
  }
  EXPECT_EQ(TorchScriptProbesRun(), probes);
}

TEST(LabelsTest, ReadsOneLabelPerLine) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / "labels.txt";
  std::ofstream(file) << "cat\r\ndog\n";
  EXPECT_THAT(*ReadLabelsFile(file), ElementsAre("cat", "dog"));
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace headway
