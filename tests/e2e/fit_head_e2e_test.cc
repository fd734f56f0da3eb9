// End to end: FitHead through the real server. `headway fit-head` on an ImageFolder of
// digits fits a head that classifies held-out digits about as well as the trained
// head; embeddings computed by the caller fit a head too; a persisted fit survives a
// restart; bad examples are refused naming the problem and change nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "client/headway_client.h"
#include "tests/support/digits_data.h"
#include "tests/support/served.h"

namespace headway {
namespace {

using ::testing::HasSubstr;
using testing::Serve;
using testing::Served;

// Cell `i` of class `digit` in digits.png (500 cells per class, in class order).
int Cell(int digit, int i) { return digit * 500 + i; }

// An ImageFolder of `per_class` PNG digits per class, named by `label_of(digit)`, from
// cells the held-out split does not use.
std::filesystem::path DigitFolder(int per_class,
                                  const std::function<std::string(int)>& label_of) {
  std::set<int> held_out;
  for (const testing::HeldOutDigit& digit : testing::ReadHeldOutSplit().digits) {
    held_out.insert(digit.cell);
  }
  char dir_template[] = "/tmp/headway-fit-XXXXXX";
  const std::filesystem::path dir = mkdtemp(dir_template);
  for (int digit = 0; digit < 10; ++digit) {
    const std::filesystem::path folder = dir / label_of(digit);
    std::filesystem::create_directories(folder);
    int written = 0;
    for (int i = 0; i < 500 && written < per_class; ++i) {
      if (held_out.count(Cell(digit, i)) > 0) continue;
      cv::imwrite((folder / absl::StrCat(digit, "-", i, ".png")).string(),
                  testing::DigitCell(Cell(digit, i)));
      ++written;
    }
  }
  return dir;
}

// Accuracy of `head` on the held-out digits against `truth`.
double HeldOutAccuracy(const HeadwayClient& client, const std::string& head,
                       const std::function<std::string(int)>& truth) {
  const testing::HeldOutSplit split = testing::ReadHeldOutSplit();
  int correct = 0;
  for (size_t start = 0; start < split.digits.size(); start += 50) {
    v1::ClassifyRequest request;
    request.set_model("digits");
    request.set_head(head);
    request.set_top_k(1);
    const size_t end = std::min(split.digits.size(), start + 50);
    for (size_t i = start; i < end; ++i) {
      request.add_inputs()->set_image(
          testing::EncodePng(testing::DigitCell(split.digits[i].cell)));
    }
    absl::StatusOr<v1::ClassifyResponse> response = client.Classify(request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return 0;
    for (size_t i = start; i < end; ++i) {
      correct +=
          response->results(i - start).labels(0).label() == truth(split.digits[i].label);
    }
  }
  return static_cast<double>(correct) / split.digits.size();
}

std::string Digit(int digit) { return absl::StrCat(digit); }
std::string Parity(int digit) { return digit % 2 == 0 ? "even" : "odd"; }

TEST(FitHeadTest, TheCliFitsAHeadFromAnImageFolderThatClassifiesHeldOutDigits) {
  const std::filesystem::path store = testing::CopyModelStore();
  Served served = Serve(store);
  ASSERT_NE(served.client, nullptr);
  const std::filesystem::path folder = DigitFolder(50, Digit);
  const std::string token_file = store.string() + "-token";
  std::ofstream(token_file) << served.server->admin_token() << "\n";
  const std::string cli =
      absl::StrCat(HEADWAY_CLI_BINARY, " --target=", served.server->target(),
                   " --admin_token_file=", token_file);
  std::string output;
  ASSERT_EQ(
      testing::RunCommand(absl::StrCat(cli, " fit-head --model=digits --head=fitted ",
                                       "--persist ", folder.string(), " 2>&1"),
                          &output),
      0)
      << output;
  std::cout << output;
  EXPECT_THAT(output, HasSubstr("head fitted fitted, version 1, 10 classes (0=50 1=50"));
  EXPECT_THAT(output, HasSubstr("validation accuracy 0.9"));

  const double fitted = HeldOutAccuracy(*served.client, "fitted", Digit);
  const double trained = HeldOutAccuracy(*served.client, "digit", Digit);
  std::cout << "held-out accuracy: fitted head (50 per class) " << fitted
            << ", trained head " << trained << "\n";
  EXPECT_GE(fitted, 0.9);
  EXPECT_GE(fitted, trained - 0.05);
  absl::StatusOr<v1::HeadStatus> status =
      testing::HeadStatusOf(*served.client, "digits", "fitted");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_THAT(status->source(),
              HasSubstr("FitHead: 500 examples, validation accuracy 0."));
  const absl::StatusOr<std::string> metrics =
      testing::HttpGet(served.server->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics,
              HasSubstr(R"(headway_head_fits_total{model="digits",result="ok"} 1)"));

  // Fitted again without --replace: refused, and the head stays.
  output.clear();
  EXPECT_NE(
      testing::RunCommand(absl::StrCat(cli, " fit-head --model=digits --head=fitted ",
                                       folder.string(), " 2>&1"),
                          &output),
      0);
  EXPECT_THAT(output, HasSubstr("ALREADY_EXISTS"));
  EXPECT_THAT(output, HasSubstr("set replace"));

  // Persisted: a restarted server serves it.
  served.client.reset();
  served.server.reset();
  Served restarted = Serve(store);
  ASSERT_NE(restarted.client, nullptr);
  EXPECT_GE(HeldOutAccuracy(*restarted.client, "fitted", Digit), 0.9);
  // Its source was persisted with it.
  absl::StatusOr<v1::HeadStatus> persisted =
      testing::HeadStatusOf(*restarted.client, "digits", "fitted");
  ASSERT_TRUE(persisted.ok()) << persisted.status();
  EXPECT_EQ(persisted->source(), status->source());
  std::filesystem::remove_all(folder);
  std::filesystem::remove_all(store);
  std::filesystem::remove(token_file);
}

TEST(FitHeadTest, EmbeddingsFromTheCallerFitAHeadAndReplaceWorks) {
  Served served = Serve(testing::ModelStore());
  ASSERT_NE(served.client, nullptr);
  v1::EmbedRequest embed;
  embed.set_model("digits");
  v1::FitHeadRequest fit;
  fit.set_model("digits");
  fit.set_head("parity");
  for (int digit = 0; digit < 10; ++digit) {
    for (int i = 0; i < 30; ++i) {
      embed.add_inputs()->set_image(
          testing::EncodePng(testing::DigitCell(Cell(digit, i))));
      fit.add_labels(Parity(digit));
    }
  }
  // Embedded in requests of 50 (the model takes 64 inputs at most per request).
  v1::EmbedResponse embedded;
  for (int start = 0; start < embed.inputs_size(); start += 50) {
    v1::EmbedRequest piece;
    piece.set_model("digits");
    for (int i = start; i < start + 50; ++i) *piece.add_inputs() = embed.inputs(i);
    absl::StatusOr<v1::EmbedResponse> part = served.client->Embed(piece);
    ASSERT_TRUE(part.ok()) << part.status();
    for (const v1::Embedding& e : part->embeddings()) *embedded.add_embeddings() = e;
  }
  *fit.mutable_embeddings() = embedded.embeddings();
  absl::StatusOr<v1::FitHeadResponse> fitted = served.client->FitHead(fit);
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  EXPECT_EQ(fitted->classes_size(), 2);
  EXPECT_EQ(fitted->classes(0), "even");
  EXPECT_EQ(fitted->examples_per_class(1), 150);
  std::cout << "parity from 300 embeddings: fit " << fitted->fit_ms()
            << " ms, validation " << fitted->validation_accuracy() << "\n";
  EXPECT_GE(HeldOutAccuracy(*served.client, "parity", Parity), 0.9);

  // Again with replace and a given penalty: a new version of the head.
  fit.set_replace(true);
  fit.set_l2(0.01);
  absl::StatusOr<v1::FitHeadResponse> again = served.client->FitHead(fit);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->head_version(), 2);
  EXPECT_DOUBLE_EQ(again->l2(), 0.01);
}

TEST(FitHeadTest, BadExamplesAreRefusedNamingTheProblemAndChangeNothing) {
  Served served = Serve(testing::ModelStore(), {"--max_fit_examples=40"});
  ASSERT_NE(served.client, nullptr);
  const auto digits = [](int count, const std::function<std::string(int)>& label) {
    v1::FitHeadRequest request;
    request.set_model("digits");
    request.set_head("new");
    for (int i = 0; i < count; ++i) {
      request.add_inputs()->set_image(
          testing::EncodePng(testing::DigitCell(Cell(i % 10, i))));
      request.add_labels(label(i % 10));
    }
    return request;
  };
  v1::FitHeadRequest one_class = digits(10, [](int) { return "all"; });
  v1::FitHeadRequest empty_class = digits(10, Parity);
  empty_class.add_classes("even");
  empty_class.add_classes("odd");
  empty_class.add_classes("neither");
  v1::FitHeadRequest counts = digits(10, Parity);
  counts.add_labels("odd");
  v1::FitHeadRequest too_many = digits(41, Parity);
  v1::FitHeadRequest bad_image = digits(10, Parity);
  bad_image.mutable_inputs(3)->set_image("not an image");
  v1::FitHeadRequest nan_embedding;
  nan_embedding.set_model("digits");
  nan_embedding.set_head("new");
  for (int i = 0; i < 4; ++i) {
    v1::Embedding& e = *nan_embedding.add_embeddings();
    for (int j = 0; j < 64; ++j) e.add_values(i == 2 && j == 5 ? NAN : j * 0.1f + i);
    nan_embedding.add_labels(i % 2 == 0 ? "a" : "b");
  }
  v1::FitHeadRequest existing = digits(10, Parity);
  existing.set_head("digit");
  const struct {
    std::string what;
    v1::FitHeadRequest request;
    absl::StatusCode code;
    std::string message;
  } cases[] = {
      {"one class", one_class, absl::StatusCode::kInvalidArgument,
       "at least two classes"},
      {"a class without example", empty_class, absl::StatusCode::kInvalidArgument,
       "class \"neither\" has no example"},
      {"labels and examples differ", counts, absl::StatusCode::kInvalidArgument,
       "10 examples but 11 labels"},
      {"over the limit", too_many, absl::StatusCode::kInvalidArgument,
       "the limit is 40 (--max_fit_examples)"},
      {"an undecodable image", bad_image, absl::StatusCode::kInvalidArgument, "input 3"},
      {"a NaN embedding", nan_embedding, absl::StatusCode::kInvalidArgument,
       "example 2 has a NaN"},
      {"an existing head", existing, absl::StatusCode::kAlreadyExists, "set replace"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<v1::FitHeadResponse> response = served.client->FitHead(c.request);
    EXPECT_EQ(response.status().code(), c.code) << c.what << ": " << response.status();
    EXPECT_THAT(response.status().message(), HasSubstr(c.message)) << c.what;
  }
  absl::StatusOr<v1::ListModelsResponse> models = served.client->ListModels("digits");
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->models(0).heads_size(), 1);
  EXPECT_EQ(models->models(0).heads(0).name(), "digit");
  EXPECT_EQ(models->models(0).heads(0).version(), 1);

  // Without the admin credential: refused before any work.
  HeadwayClient::Options options;
  options.target = served.server->target();
  auto anonymous = HeadwayClient::Create(options);
  ASSERT_TRUE(anonymous.ok());
  EXPECT_EQ((*anonymous)->FitHead(digits(10, Parity)).status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace headway
