#include "server/raw_bytes_elements.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace headway {

void AppendRawBytesElement(absl::string_view element, std::string& raw) {
  const uint32_t length = static_cast<uint32_t>(element.size());
  for (int i = 0; i < 4; ++i)
    raw.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  raw.append(element.data(), element.size());
}

absl::StatusOr<std::vector<absl::string_view>> SplitRawBytesElements(
    absl::string_view raw, size_t max_elements) {
  std::vector<absl::string_view> elements;
  while (!raw.empty() && elements.size() <= max_elements) {
    if (raw.size() < 4) {
      return absl::InvalidArgumentError(
          "raw BYTES contents end inside an element's 4-byte length");
    }
    uint32_t length = 0;
    for (int i = 3; i >= 0; --i) length = (length << 8) | static_cast<uint8_t>(raw[i]);
    raw.remove_prefix(4);
    if (length > raw.size()) {
      return absl::InvalidArgumentError(absl::StrCat("raw BYTES element ",
                                                     elements.size(), " says ", length,
                                                     " bytes; ", raw.size(), " remain"));
    }
    elements.push_back(raw.substr(0, length));
    raw.remove_prefix(length);
  }
  return elements;
}

}  // namespace headway
