#include "model_store/store/zip_directory.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace headway {
namespace {

constexpr uint32_t kEndOfDirectory = 0x06054b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint32_t kZip64EndOfDirectory = 0x06064b50;
constexpr uint32_t kDirectoryEntry = 0x02014b50;
constexpr uint16_t kZip64Extra = 0x0001;

// Little-endian integers of `size` bytes at `at`, when inside `bytes`.
bool Read(absl::string_view bytes, uint64_t at, int size, uint64_t& value) {
  if (at > bytes.size() || bytes.size() - at < static_cast<uint64_t>(size)) return false;
  value = 0;
  for (int i = 0; i < size; ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  }
  return true;
}

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed zip archive: ", what));
}

}  // namespace

absl::StatusOr<uint64_t> ZipUnpackedSize(absl::string_view bytes) {
  // The end-of-directory record is in the last 22 + 65535 (its comment) bytes.
  constexpr uint64_t kEndSize = 22;
  if (bytes.size() < kEndSize) return Malformed("too short");
  uint64_t end = bytes.size() - kEndSize;
  const uint64_t lowest = bytes.size() > kEndSize + 65535 ? end - 65535 : 0;
  uint64_t signature = 0;
  while (!(Read(bytes, end, 4, signature) && signature == kEndOfDirectory)) {
    if (end == lowest) return Malformed("no end of central directory");
    --end;
  }
  uint64_t entries = 0, directory = 0;
  Read(bytes, end + 10, 2, entries);
  Read(bytes, end + 16, 4, directory);
  if (entries == 0xffff || directory == 0xffffffff) {
    uint64_t locator = 0, end64 = 0;
    if (end < 20 || !Read(bytes, end - 20, 4, locator) || locator != kZip64Locator ||
        !Read(bytes, end - 20 + 8, 8, end64) || !Read(bytes, end64, 4, signature) ||
        signature != kZip64EndOfDirectory || !Read(bytes, end64 + 32, 8, entries) ||
        !Read(bytes, end64 + 48, 8, directory)) {
      return Malformed("bad zip64 end of central directory");
    }
  }
  uint64_t total = 0;
  uint64_t at = directory;
  for (uint64_t i = 0; i < entries; ++i) {
    uint64_t compressed = 0, unpacked = 0, name = 0, extra = 0, comment = 0;
    if (!Read(bytes, at, 4, signature) || signature != kDirectoryEntry ||
        !Read(bytes, at + 20, 4, compressed) || !Read(bytes, at + 24, 4, unpacked) ||
        !Read(bytes, at + 28, 2, name) || !Read(bytes, at + 30, 2, extra) ||
        !Read(bytes, at + 32, 2, comment)) {
      return Malformed(absl::StrCat("bad central directory entry ", i));
    }
    if (unpacked == 0xffffffff) {  // the real size is in the zip64 extra field
      bool found = false;
      for (uint64_t field = at + 46 + name; field + 4 <= at + 46 + name + extra;) {
        uint64_t id = 0, length = 0;
        Read(bytes, field, 2, id);
        Read(bytes, field + 2, 2, length);
        if (id == kZip64Extra && Read(bytes, field + 4, 8, unpacked)) {
          found = true;
          break;
        }
        field += 4 + length;
      }
      if (!found) return Malformed(absl::StrCat("entry ", i, " lacks its zip64 size"));
    }
    if (total + unpacked < total) return Malformed("sizes overflow");
    total += unpacked;
    at += 46 + name + extra + comment;
  }
  return total;
}

}  // namespace headway
