// The raw form of the Open Inference Protocol's BYTES tensors, shared by gRPC's
// raw_input_contents / raw_output_contents and the REST binary tensor data extension:
// each element is a 4-byte little-endian length, then that many bytes.
//
// Pure functions; thread-safe.
#ifndef HEADWAY_SERVER_RAW_BYTES_ELEMENTS_H_
#define HEADWAY_SERVER_RAW_BYTES_ELEMENTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace headway {

// Appends `element` to `raw` in the raw form.
void AppendRawBytesElement(absl::string_view element, std::string& raw);

// The elements of `raw`, at most `max_elements` of them (one more is read, so that a
// caller can tell "more"). INVALID_ARGUMENT when the data ends inside a length or an
// element, saying where.
absl::StatusOr<std::vector<absl::string_view>> SplitRawBytesElements(
    absl::string_view raw, size_t max_elements);

}  // namespace headway

#endif  // HEADWAY_SERVER_RAW_BYTES_ELEMENTS_H_
