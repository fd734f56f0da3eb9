// File and image helpers every test shares: a whole file's bytes, and an image encoded
// the way a client would send it.
#ifndef HEADWAY_TESTS_SUPPORT_TEST_FILES_H_
#define HEADWAY_TESTS_SUPPORT_TEST_FILES_H_

#include <filesystem>
#include <opencv2/core.hpp>
#include <string>

namespace headway::testing {

// A whole file's bytes ("" when it cannot be read).
std::string ReadBytes(const std::filesystem::path& path);

// `image` encoded by OpenCV in the format of `extension` (".png", ".jpg", ".bmp", ...).
std::string EncodeImage(const std::string& extension, const cv::Mat& image);

}  // namespace headway::testing

#endif  // HEADWAY_TESTS_SUPPORT_TEST_FILES_H_
