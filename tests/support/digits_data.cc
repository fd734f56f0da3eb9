#include "tests/support/digits_data.h"

#include <gtest/gtest.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <regex>
#include <sstream>

namespace headway::testing {
namespace {

constexpr char kDigitsPng[] = "/usr/share/doc/opencv-doc/examples/data/digits.png";

const cv::Mat& DigitSheet() {
  static const cv::Mat* sheet = new cv::Mat(cv::imread(kDigitsPng, cv::IMREAD_GRAYSCALE));
  return *sheet;
}

float ConfigValue(const std::string& field) {
  std::ifstream in(ModelStore() / "digits" / "config.pbtxt");
  std::stringstream text;
  text << in.rdbuf();
  std::smatch match;
  const std::string contents = text.str();
  if (!std::regex_search(contents, match,
                         std::regex("\\b" + field + ": ([0-9.eE+-]+)"))) {
    ADD_FAILURE() << "no " << field << " in the digits config";
    return 0;
  }
  return std::stof(match[1]);
}

}  // namespace

cv::Mat DigitCell(int index) {
  const cv::Mat& sheet = DigitSheet();
  EXPECT_FALSE(sheet.empty()) << kDigitsPng << " missing: apt-get install opencv-doc";
  const int columns = sheet.cols / 20;
  return sheet(cv::Rect((index % columns) * 20, (index / columns) * 20, 20, 20)).clone();
}

std::string EncodePng(const cv::Mat& image) {
  std::vector<unsigned char> bytes;
  EXPECT_TRUE(cv::imencode(".png", image, bytes));
  return std::string(bytes.begin(), bytes.end());
}

HeldOutSplit ReadHeldOutSplit() {
  HeldOutSplit split;
  std::ifstream in(ModelStore() / "digits" / "eval" / "heldout.tsv");
  EXPECT_TRUE(in) << "models/digits/eval/heldout.tsv missing";
  std::string line;
  const std::regex accuracy("digit_accuracy=([0-9.]+) parity_accuracy=([0-9.]+)");
  while (std::getline(in, line)) {
    std::smatch match;
    if (std::regex_search(line, match, accuracy)) {
      split.digit_accuracy = std::stod(match[1]);
      split.parity_accuracy = std::stod(match[2]);
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    HeldOutDigit digit;
    std::istringstream fields(line);
    fields >> digit.cell >> digit.label >> digit.digit_prediction >>
        digit.parity_prediction;
    split.digits.push_back(digit);
  }
  return split;
}

float DigitsMean() { return ConfigValue("mean"); }
float DigitsStd() { return ConfigValue("std"); }

}  // namespace headway::testing
