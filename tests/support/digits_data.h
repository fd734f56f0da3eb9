// Test data from the bundled digits model: the handwritten digits of Debian's
// opencv-doc digits.png and the held-out split its training script wrote.
#ifndef HEADWAY_TESTS_SUPPORT_DIGITS_DATA_H_
#define HEADWAY_TESTS_SUPPORT_DIGITS_DATA_H_

#include <filesystem>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "tests/support/source_tree.h"

namespace headway::testing {

// Cell `index` (0..4999) of digits.png: a 20x20 grey digit. Fails the test when the
// file is missing.
cv::Mat DigitCell(int index);

// PNG bytes of a grey or BGR image.
std::string EncodePng(const cv::Mat& image);

struct HeldOutDigit {
  int cell = 0;
  int label = 0;
  // What PyTorch predicted at training time.
  int digit_prediction = 0;
  int parity_prediction = 0;
};

struct HeldOutSplit {
  double digit_accuracy = 0;
  double parity_accuracy = 0;
  std::vector<HeldOutDigit> digits;
};

// Reads models/digits/eval/heldout.tsv.
HeldOutSplit ReadHeldOutSplit();

// The mean and std of the digits model's input spec.
float DigitsMean();
float DigitsStd();

}  // namespace headway::testing

#endif  // HEADWAY_TESTS_SUPPORT_DIGITS_DATA_H_
