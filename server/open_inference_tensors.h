// The Open Inference Protocol's tensors (inference.ModelInferRequest/Response) mapped
// onto Headway's inputs and results, free of gRPC calls and LibTorch:
//
//   inputs   one tensor, whatever its name, by datatype:
//            BYTES [N] or [N,1]  encoded images (JPEG, PNG, BMP, WebP), one per element;
//            UINT8 [N,H,W,C]     pixels (C = 1 or 3, RGB), preprocessed as images are;
//            FP32  [N,C,H,W]     preprocessed tensors, exactly the model's input shape.
//            Elements in the datatype's typed contents or in raw_input_contents.
//   outputs  "embedding"      FP32 [N,D]: the backbone's features;
//            "probabilities"  FP32 [N,classes]: the head's softmax, in class order;
//                             with the "classification" parameter k, BYTES [N,k]
//                             "score:index:label", best first (Triton's extension).
//            None requested: every output the model has.
//   request parameters "head" (string: the head, else the default), "l2_normalize"
//   (bool: unit-length embeddings) and "timeout" (int64 microseconds from arrival:
//   a deadline, as Triton's clients send it); others are ignored, as the protocol
//   allows.
//
// Pure functions; thread-safe.
#ifndef HEADWAY_SERVER_OPEN_INFERENCE_TENSORS_H_
#define HEADWAY_SERVER_OPEN_INFERENCE_TENSORS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "headway/v1/model_config.pb.h"
#include "inference/grpc_predict_v2.pb.h"
#include "model_store/input.h"
#include "model_store/model.h"

namespace headway {

inline constexpr char kEmbeddingOutput[] = "embedding";
inline constexpr char kProbabilitiesOutput[] = "probabilities";
inline constexpr char kOpenInferenceInput[] = "input";

// A request's inputs as the core's InputViews. The views point into the request and
// into `converted` (typed UINT8 contents, which come as 32-bit values); both must
// outlive them. Moving this keeps the views valid.
struct OpenInferenceInputs {
  std::vector<InputView> views;
  std::vector<char> converted;
  // The request carried raw_input_contents (the response then answers raw too).
  bool raw = false;
};

// INVALID_ARGUMENT naming the input and what `spec` (the model's input) expects for
// anything but one well-formed input tensor: another datatype, a shape that is not
// [N], [N,1], [N,H,W,C] or the model's [N,C,H,W], contents that do not match the
// shape, contents both typed and raw, a UINT8 value over 255.
absl::StatusOr<OpenInferenceInputs> ToOpenInferenceInputs(
    const inference::ModelInferRequest& request, const v1::InputSpec& spec);

// Whether the request's input is one FP32 tensor of one model input ([1,C,H,W]), which
// preparing only copies (no decoding or resizing, no batching of several); see
// CallWork.
bool IsOneFp32Input(const inference::ModelInferRequest& request);

// What a request asks the model for.
struct OpenInferenceOutputs {
  struct Output {
    std::string name;            // kEmbeddingOutput or kProbabilitiesOutput
    int64_t classification = 0;  // > 0: the top k as BYTES labels
  };
  std::vector<Output> outputs;  // in the request's order
  std::string head;             // "" for the default head
  bool l2_normalize = false;

  bool wants(absl::string_view name) const;
};

// INVALID_ARGUMENT for an output the model does not have (naming the ones it has),
// "classification" on an output other than probabilities or not a positive integer,
// a parameter of the wrong type. `has_heads`: whether the model has a head.
absl::StatusOr<OpenInferenceOutputs> ToOpenInferenceOutputs(
    const inference::ModelInferRequest& request, bool has_heads);

// The request's "timeout" parameter (microseconds), InfiniteDuration when absent;
// INVALID_ARGUMENT when it is not a positive int64.
absl::StatusOr<absl::Duration> RequestedTimeout(
    const inference::ModelInferRequest& request);

// Writes the requested outputs of `embedded` and `classified` (each present when its
// output was asked for; `classified` holds every class of each input) into
// `response`, raw when `raw`.
void FillOpenInferenceResponse(const OpenInferenceOutputs& outputs,
                               const EmbedResult* embedded,
                               const ClassifyResult* classified, bool raw,
                               inference::ModelInferResponse& response);

// The model's tensors as ModelMetadata reports them.
void FillOpenInferenceMetadata(const ModelInfo& info, const v1::InputSpec& spec,
                               inference::ModelMetadataResponse& response);

}  // namespace headway

#endif  // HEADWAY_SERVER_OPEN_INFERENCE_TENSORS_H_
