// What a zip archive (torch.save's and torch.jit.save's format) unpacks to, read from
// its central directory without unpacking anything: a 1 MB upload can hold a record
// that deflates to gigabytes, and LibTorch's reader allocates what the directory
// declares. Handles zip64. Stateless; thread-safe.
#ifndef HEADWAY_MODEL_STORE_STORE_ZIP_DIRECTORY_H_
#define HEADWAY_MODEL_STORE_STORE_ZIP_DIRECTORY_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace headway {

// The sum of the uncompressed sizes of the records of the zip archive `bytes`;
// INVALID_ARGUMENT when its central directory cannot be read.
absl::StatusOr<uint64_t> ZipUnpackedSize(absl::string_view bytes);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_STORE_ZIP_DIRECTORY_H_
