#include "server/open_inference_tensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model_store/model_config.h"
#include "server/raw_bytes_elements.h"

namespace headway {
namespace {

// More elements than any limit allows; shapes beyond it are refused before any
// arithmetic can overflow.
constexpr int64_t kMaxElements = int64_t{1} << 40;

using InputTensor = inference::ModelInferRequest::InferInputTensor;

std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// What Headway takes, with the model's own [C,H,W].
std::string Accepted(const v1::InputSpec& spec) {
  return absl::StrCat(
      "Headway takes one input tensor: BYTES [N] or [N,1] (encoded images), UINT8 "
      "[N,H,W,C] (pixels) or FP32 [N,",
      spec.channels(), ",", spec.height(), ",", spec.width(), "] (preprocessed)");
}

absl::Status Refuse(const InputTensor& input, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("input \"", EchoName(input.name()), "\": ", problem));
}

// A typed contents field (`field`, "data" in JSON) that holds `got` values where the
// tensor's shape needs `needed`.
absl::Status RefuseValueCount(const InputTensor& input, int64_t needed,
                              absl::string_view field, int64_t got) {
  return Refuse(input,
                absl::StrCat("shape ", ShapeText(input.shape()), " needs ", needed,
                             " values (", field, "; \"data\" in JSON); got ", got));
}

// More inputs than any request may carry (each model has its own lower limit).
constexpr int64_t kMaxBatch = 65536;

// The element count of `shape`, or an error for a negative, empty or oversized
// dimension.
absl::StatusOr<int64_t> Elements(const InputTensor& input) {
  if (input.shape().empty()) {
    return Refuse(input, "has no shape (its first dimension is the batch)");
  }
  if (input.shape(0) > kMaxBatch) {
    return Refuse(
        input, absl::StrCat("batch dimension ", input.shape(0), " is over ", kMaxBatch));
  }
  int64_t elements = 1;
  for (int i = 0; i < input.shape_size(); ++i) {
    const int64_t dim = input.shape(i);
    if (dim < 0) {
      return Refuse(input, absl::StrCat("shape ", ShapeText(input.shape()),
                                        " has a negative dimension"));
    }
    if (dim == 0 && i > 0) {
      return Refuse(input, absl::StrCat("shape ", ShapeText(input.shape()),
                                        " has an empty dimension"));
    }
    if (dim > 0 && elements > kMaxElements / dim) {
      return Refuse(input, absl::StrCat("shape ", ShapeText(input.shape()),
                                        " has too many elements"));
    }
    elements *= dim;
  }
  return elements;
}

// The BYTES elements of a raw entry (raw_bytes_elements.h), exactly `expected` of them.
absl::StatusOr<std::vector<absl::string_view>> SplitRawBytes(const InputTensor& input,
                                                             absl::string_view raw,
                                                             int64_t expected) {
  absl::StatusOr<std::vector<absl::string_view>> elements =
      SplitRawBytesElements(raw, static_cast<size_t>(expected));
  if (!elements.ok()) return Refuse(input, elements.status().message());
  if (static_cast<int64_t>(elements->size()) != expected) {
    return Refuse(input, absl::StrCat("shape ", ShapeText(input.shape()), " needs ",
                                      expected, " BYTES elements; the contents hold ",
                                      elements->size(), " or more"));
  }
  return elements;
}

absl::Status AddImages(const InputTensor& input, const std::string* raw,
                       OpenInferenceInputs& out) {
  const auto& shape = input.shape();
  if (!(shape.size() == 1 || (shape.size() == 2 && shape[1] == 1))) {
    return Refuse(input, absl::StrCat("BYTES shape ", ShapeText(shape),
                                      " is not [N] or [N,1] (one encoded image each)"));
  }
  const int64_t count = shape[0];
  std::vector<absl::string_view> images;
  if (raw != nullptr) {
    auto split = SplitRawBytes(input, *raw, count);
    if (!split.ok()) return split.status();
    images = *std::move(split);
  } else {
    const auto& contents = input.contents().bytes_contents();
    if (contents.size() != count) {
      return RefuseValueCount(input, count, "bytes_contents", contents.size());
    }
    images.assign(contents.begin(), contents.end());
  }
  for (absl::string_view image : images) {
    InputView& view = out.views.emplace_back();
    view.kind = InputView::Kind::kEncodedImage;
    view.data = image;
  }
  return absl::OkStatus();
}

// Splits N items of `item_bytes` from `data` into tensor views of `item_shape`.
void AddTensors(absl::string_view data, int64_t count, TensorType dtype,
                std::vector<int64_t> item_shape, OpenInferenceInputs& out) {
  const size_t item_bytes = count == 0 ? 0 : data.size() / count;
  for (int64_t i = 0; i < count; ++i) {
    InputView& view = out.views.emplace_back();
    view.kind = InputView::Kind::kTensor;
    view.dtype = dtype;
    view.shape = item_shape;
    view.data = data.substr(i * item_bytes, item_bytes);
  }
}

absl::Status AddPixels(const InputTensor& input, const std::string* raw, int64_t elements,
                       OpenInferenceInputs& out) {
  const auto& shape = input.shape();
  if (shape.size() != 4) {
    return Refuse(input, absl::StrCat("UINT8 shape ", ShapeText(shape),
                                      " is not [N,H,W,C] (pixels, C = 1 or 3)"));
  }
  absl::string_view data;
  if (raw != nullptr) {
    if (static_cast<int64_t>(raw->size()) != elements) {
      return Refuse(input, absl::StrCat("shape ", ShapeText(shape), " needs ", elements,
                                        " raw bytes; got ", raw->size()));
    }
    data = *raw;
  } else {
    const auto& values = input.contents().uint_contents();
    if (values.size() != elements) {
      return RefuseValueCount(input, elements, "uint_contents", values.size());
    }
    out.converted.resize(values.size());
    for (int i = 0; i < values.size(); ++i) {
      if (values[i] > 255) {
        return Refuse(input, absl::StrCat("UINT8 value ", values[i], " at element ", i,
                                          " is over 255"));
      }
      out.converted[i] = static_cast<char>(values[i]);
    }
    data = absl::string_view(out.converted.data(), out.converted.size());
  }
  AddTensors(data, shape[0], TensorType::kUint8, {shape[1], shape[2], shape[3]}, out);
  return absl::OkStatus();
}

absl::Status AddPreprocessed(const InputTensor& input, const std::string* raw,
                             int64_t elements, const v1::InputSpec& spec,
                             OpenInferenceInputs& out) {
  const auto& shape = input.shape();
  if (shape.size() != 4 || shape[1] != spec.channels() || shape[2] != spec.height() ||
      shape[3] != spec.width()) {
    return Refuse(input, absl::StrCat("FP32 shape ", ShapeText(shape),
                                      " is not the model's input [N,", spec.channels(),
                                      ",", spec.height(), ",", spec.width(), "]"));
  }
  absl::string_view data;
  if (raw != nullptr) {
    if (static_cast<int64_t>(raw->size()) != elements * 4) {
      return Refuse(input,
                    absl::StrCat("shape ", ShapeText(shape), " needs ", elements * 4,
                                 " raw bytes (FP32); got ", raw->size()));
    }
    data = *raw;
  } else {
    const auto& values = input.contents().fp32_contents();
    if (values.size() != elements) {
      return RefuseValueCount(input, elements, "fp32_contents", values.size());
    }
    data = absl::string_view(reinterpret_cast<const char*>(values.data()),
                             values.size() * sizeof(float));
  }
  AddTensors(data, shape[0], TensorType::kFloat32, {shape[1], shape[2], shape[3]}, out);
  return absl::OkStatus();
}

bool HasTypedContents(const InputTensor& input) {
  const inference::InferTensorContents& c = input.contents();
  return c.bool_contents_size() + c.int_contents_size() + c.int64_contents_size() +
             c.uint_contents_size() + c.uint64_contents_size() + c.fp32_contents_size() +
             c.fp64_contents_size() + c.bytes_contents_size() >
         0;
}

void SetFloats(absl::Span<const float> values, bool raw,
               inference::ModelInferResponse::InferOutputTensor& tensor,
               inference::ModelInferResponse& response) {
  if (raw) {
    response.add_raw_output_contents()->assign(
        reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  } else {
    tensor.mutable_contents()->mutable_fp32_contents()->Add(values.begin(), values.end());
  }
}

void AddEmbedding(const EmbedResult& result, bool raw,
                  inference::ModelInferResponse& response) {
  auto& tensor = *response.add_outputs();
  tensor.set_name(kEmbeddingOutput);
  tensor.set_datatype("FP32");
  tensor.add_shape(result.rows);
  tensor.add_shape(result.dimension);
  SetFloats(result.values(), raw, tensor, response);
}

void AddProbabilities(const ClassifyResult& result, bool raw,
                      inference::ModelInferResponse& response) {
  auto& tensor = *response.add_outputs();
  tensor.set_name(kProbabilitiesOutput);
  tensor.set_datatype("FP32");
  const int64_t classes =
      result.results.empty() ? 0 : static_cast<int64_t>(result.results[0].size());
  tensor.add_shape(static_cast<int64_t>(result.results.size()));
  tensor.add_shape(classes);
  std::vector<float> values(result.results.size() * classes, 0.0f);
  for (size_t row = 0; row < result.results.size(); ++row) {
    for (const ScoredLabel& scored : result.results[row]) {
      if (scored.index >= 0 && scored.index < classes) {
        values[row * classes + scored.index] = scored.score;
      }
    }
  }
  SetFloats(values, raw, tensor, response);
}

void AddClassification(const ClassifyResult& result, int64_t k, bool raw,
                       inference::ModelInferResponse& response) {
  auto& tensor = *response.add_outputs();
  tensor.set_name(kProbabilitiesOutput);
  tensor.set_datatype("BYTES");
  const int64_t classes =
      result.results.empty() ? 0 : static_cast<int64_t>(result.results[0].size());
  k = std::min(k, classes);
  tensor.add_shape(static_cast<int64_t>(result.results.size()));
  tensor.add_shape(k);
  std::string* raw_contents = raw ? response.add_raw_output_contents() : nullptr;
  for (const std::vector<ScoredLabel>& row : result.results) {
    // Best first, as the model ranks them.
    for (int64_t i = 0; i < k; ++i) {
      const std::string element =
          absl::StrCat(row[i].score, ":", row[i].index, ":", row[i].label);
      if (raw) {
        AppendRawBytesElement(element, *raw_contents);
      } else {
        tensor.mutable_contents()->add_bytes_contents(element);
      }
    }
  }
}

}  // namespace

absl::StatusOr<OpenInferenceInputs> ToOpenInferenceInputs(
    const inference::ModelInferRequest& request, const v1::InputSpec& spec) {
  if (request.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request has ", request.inputs_size(), " input tensors; ", Accepted(spec)));
  }
  const InputTensor& input = request.inputs(0);
  OpenInferenceInputs out;
  const std::string* raw = nullptr;
  if (request.raw_input_contents_size() > 0) {
    if (request.raw_input_contents_size() != request.inputs_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(),
                       " entries for ", request.inputs_size(), " input"));
    }
    if (HasTypedContents(input)) {
      return Refuse(input, "contents are both typed and in raw_input_contents");
    }
    raw = &request.raw_input_contents(0);
    out.raw = true;
  }
  auto elements = Elements(input);
  if (!elements.ok()) return elements.status();
  absl::Status added;
  if (input.datatype() == "BYTES") {
    added = AddImages(input, raw, out);
  } else if (input.datatype() == "UINT8") {
    added = AddPixels(input, raw, *elements, out);
  } else if (input.datatype() == "FP32") {
    added = AddPreprocessed(input, raw, *elements, spec, out);
  } else {
    added = Refuse(input, absl::StrCat("datatype \"", EchoName(input.datatype()),
                                       "\" is not accepted; ", Accepted(spec)));
  }
  if (!added.ok()) return added;
  return out;
}

bool IsOneFp32Input(const inference::ModelInferRequest& request) {
  if (request.inputs_size() != 1) return false;
  const InputTensor& input = request.inputs(0);
  return input.datatype() == "FP32" && input.shape_size() == 4 && input.shape(0) == 1;
}

bool OpenInferenceOutputs::wants(absl::string_view name) const {
  return std::any_of(outputs.begin(), outputs.end(),
                     [&](const Output& output) { return output.name == name; });
}

absl::StatusOr<absl::Duration> RequestedTimeout(
    const inference::ModelInferRequest& request) {
  auto timeout = request.parameters().find("timeout");
  if (timeout == request.parameters().end()) return absl::InfiniteDuration();
  if (timeout->second.parameter_choice_case() != inference::InferParameter::kInt64Param ||
      timeout->second.int64_param() <= 0) {
    return absl::InvalidArgumentError(
        "parameter \"timeout\" must be a positive integer (microseconds)");
  }
  return absl::Microseconds(timeout->second.int64_param());
}

absl::StatusOr<OpenInferenceOutputs> ToOpenInferenceOutputs(
    const inference::ModelInferRequest& request, bool has_heads) {
  OpenInferenceOutputs result;
  for (const auto& [key, value] : request.parameters()) {
    if (key == "head") {
      if (value.parameter_choice_case() != inference::InferParameter::kStringParam) {
        return absl::InvalidArgumentError("parameter \"head\" must be a string");
      }
      result.head = value.string_param();
    } else if (key == "l2_normalize") {
      if (value.parameter_choice_case() != inference::InferParameter::kBoolParam) {
        return absl::InvalidArgumentError("parameter \"l2_normalize\" must be a bool");
      }
      result.l2_normalize = value.bool_param();
    }
  }
  const std::string outputs_text =
      has_heads
          ? absl::StrCat("\"", kEmbeddingOutput, "\" and \"", kProbabilitiesOutput, "\"")
          : absl::StrCat("\"", kEmbeddingOutput,
                         "\" only (it has no head, so no probabilities)");
  for (const auto& requested : request.outputs()) {
    OpenInferenceOutputs::Output output;
    output.name = requested.name();
    if (output.name != kEmbeddingOutput &&
        !(output.name == kProbabilitiesOutput && has_heads)) {
      return absl::InvalidArgumentError(absl::StrCat("output \"", EchoName(output.name),
                                                     "\" is not one of the model's; ",
                                                     "it has ", outputs_text));
    }
    if (result.wants(output.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("output \"", output.name, "\" is requested twice"));
    }
    auto classification = requested.parameters().find("classification");
    if (classification != requested.parameters().end()) {
      const inference::InferParameter& k = classification->second;
      int64_t count = 0;
      if (k.parameter_choice_case() == inference::InferParameter::kInt64Param) {
        count = k.int64_param();
      } else if (k.parameter_choice_case() == inference::InferParameter::kUint64Param) {
        count = static_cast<int64_t>(
            std::min<uint64_t>(k.uint64_param(), std::numeric_limits<int32_t>::max()));
      }
      if (count <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "output \"", output.name,
            "\": parameter \"classification\" must be a positive integer (top k)"));
      }
      if (output.name != kProbabilitiesOutput) {
        return absl::InvalidArgumentError(
            absl::StrCat("output \"", output.name, "\": \"classification\" applies to \"",
                         kProbabilitiesOutput, "\" only"));
      }
      output.classification = count;
    }
    result.outputs.push_back(std::move(output));
  }
  if (result.outputs.empty()) {
    result.outputs.push_back({kEmbeddingOutput, 0});
    if (has_heads) result.outputs.push_back({kProbabilitiesOutput, 0});
  }
  return result;
}

void FillOpenInferenceResponse(const OpenInferenceOutputs& outputs,
                               const EmbedResult* embedded,
                               const ClassifyResult* classified, bool raw,
                               inference::ModelInferResponse& response) {
  if (classified != nullptr) {
    (*response.mutable_parameters())["head"].set_string_param(classified->head);
    (*response.mutable_parameters())["head_version"].set_int64_param(
        classified->head_version);
  }
  for (const OpenInferenceOutputs::Output& output : outputs.outputs) {
    if (output.name == kEmbeddingOutput && embedded != nullptr) {
      AddEmbedding(*embedded, raw, response);
    } else if (output.name == kProbabilitiesOutput && classified != nullptr) {
      if (output.classification > 0) {
        AddClassification(*classified, output.classification, raw, response);
      } else {
        AddProbabilities(*classified, raw, response);
      }
    }
  }
}

void FillOpenInferenceMetadata(const ModelInfo& info, const v1::InputSpec& spec,
                               inference::ModelMetadataResponse& response) {
  response.set_name(info.name);
  response.add_versions(absl::StrCat(info.version));
  response.set_platform("pytorch_libtorch");
  auto& input = *response.add_inputs();
  input.set_name(kOpenInferenceInput);
  input.set_datatype("FP32");
  for (int64_t dim : {int64_t{-1}, int64_t{spec.channels()}, int64_t{spec.height()},
                      int64_t{spec.width()}}) {
    input.add_shape(dim);
  }
  auto& embedding = *response.add_outputs();
  embedding.set_name(kEmbeddingOutput);
  embedding.set_datatype("FP32");
  embedding.add_shape(-1);
  embedding.add_shape(info.feature_dim);
  for (const HeadInfo& head : info.heads) {
    if (!head.is_default) continue;
    auto& probabilities = *response.add_outputs();
    probabilities.set_name(kProbabilitiesOutput);
    probabilities.set_datatype("FP32");
    probabilities.add_shape(-1);
    probabilities.add_shape(head.num_classes);
  }
}

}  // namespace headway
