// RunFitHead: FitHead's work, from the wire request to the installed head: checks the
// examples and their labels, embeds them with the model's backbone (through its
// batcher, in requests of its max_inputs_per_request), fits a linear head
// (FitLinearHead) and installs it with HotSwapHead's guarantees (ModelRegistry::
// SwapHead: warm, all instances or none, persisted on request). Nothing changes on
// any error.
//
// Errors: INVALID_ARGUMENT naming the problem (no examples, both or neither kind,
// labels and examples of different counts, over `max_examples`, one class only, a
// class without an example, a label not among the classes, non-finite features, bad
// inputs as Embed says); ALREADY_EXISTS for an existing head without `replace`;
// NOT_FOUND for an unknown model; the swap's errors.
//
// Thread-safe (as the registry is); blocks for the whole fit: run it on the
// management pool.
#ifndef HEADWAY_SERVER_FIT_HEAD_H_
#define HEADWAY_SERVER_FIT_HEAD_H_

#include <cstdint>

#include "absl/status/status.h"
#include "headway/v1/management.pb.h"
#include "model_store/model_registry.h"

namespace headway {

absl::Status RunFitHead(ModelRegistry& registry, const v1::FitHeadRequest& request,
                        int64_t max_examples, v1::FitHeadResponse& response);

}  // namespace headway

#endif  // HEADWAY_SERVER_FIT_HEAD_H_
