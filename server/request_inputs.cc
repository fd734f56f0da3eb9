#include "server/request_inputs.h"

#include "absl/strings/str_cat.h"

namespace headway {

absl::StatusOr<std::vector<InputView>> ToInputViews(
    const google::protobuf::RepeatedPtrField<v1::Input>& inputs) {
  std::vector<InputView> views;
  views.reserve(inputs.size());
  for (int i = 0; i < inputs.size(); ++i) {
    const v1::Input& input = inputs[i];
    InputView& view = views.emplace_back();
    switch (input.kind_case()) {
      case v1::Input::kImage:
        view.kind = InputView::Kind::kEncodedImage;
        view.data = input.image();
        break;
      case v1::Input::kTensor:
        view.kind = InputView::Kind::kTensor;
        view.data = input.tensor().data();
        view.shape.assign(input.tensor().shape().begin(), input.tensor().shape().end());
        switch (input.tensor().dtype()) {
          case v1::UINT8:
            view.dtype = TensorType::kUint8;
            break;
          case v1::FLOAT32:
            view.dtype = TensorType::kFloat32;
            break;
          default:
            return absl::InvalidArgumentError(
                absl::StrCat("input ", i, ": tensor dtype must be UINT8 or FLOAT32"));
        }
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("input ", i, ": set either image or tensor"));
    }
  }
  return views;
}

bool IsOneFloat32Tensor(const google::protobuf::RepeatedPtrField<v1::Input>& inputs) {
  return inputs.size() == 1 && inputs[0].has_tensor() &&
         inputs[0].tensor().dtype() == v1::FLOAT32;
}

}  // namespace headway
