#include "tests/support/test_files.h"

#include <fstream>
#include <iterator>
#include <opencv2/imgcodecs.hpp>
#include <vector>

namespace headway::testing {

std::string ReadBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

std::string EncodeImage(const std::string& extension, const cv::Mat& image) {
  std::vector<unsigned char> bytes;
  cv::imencode(extension, image, bytes);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace headway::testing
