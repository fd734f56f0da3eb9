// ToInputViews: a request's wire inputs (headway.v1.Input) as the core's InputViews,
// checking only what the wire format alone decides (which kind, which dtype).
// The views point into `inputs`, which must outlive them.
//
// Pure function; thread-safe.
#ifndef HEADWAY_SERVER_REQUEST_INPUTS_H_
#define HEADWAY_SERVER_REQUEST_INPUTS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "headway/v1/inference.pb.h"
#include "model_store/input.h"

namespace headway {

// INVALID_ARGUMENT naming the input for one with neither image nor tensor set, or a
// tensor dtype other than UINT8 and FLOAT32.
absl::StatusOr<std::vector<InputView>> ToInputViews(
    const google::protobuf::RepeatedPtrField<v1::Input>& inputs);

// Whether `inputs` is one float32 tensor: a model input already, which preparing only
// copies (no decoding or resizing, no batching of several inputs); see CallWork.
bool IsOneFloat32Tensor(const google::protobuf::RepeatedPtrField<v1::Input>& inputs);

}  // namespace headway

#endif  // HEADWAY_SERVER_REQUEST_INPUTS_H_
