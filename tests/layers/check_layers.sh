#!/usr/bin/env bash
# Headway's layers, as what each folder's code may include (README, Layout):
#   version/      nothing of Headway's
#   model_store/  the core: LibTorch, OpenCV, the model-config schema; no gRPC, no wire
#                 protocol, nothing of the server, clients, benchmarks or tests
#     its LibTorch-facing units (headway_torch: checkpoints, the pickle reader,
#     backbones, heads, devices, LibTorch's threads and allocator): only each other,
#     the store's config, files and digests, and header-only helpers; no OpenCV
#   client/       gRPC and the wire protocol; no LibTorch, OpenCV, core or server
#   server/       the core and the wire protocol; nothing of the clients' tools
# The build enforces part of this (the core links only the model-config proto library,
# whose include root holds no other generated header); this check covers the rest.
#   tests/layers/check_layers.sh SOURCE_DIR
set -euo pipefail
cd "$1"
failed=0
forbid() {  # folder extended-regex what
  local hits
  hits=$(grep -rnE --include='*.h' --include='*.cc' "^#include [<\"]($2)" "$1" || true)
  if [ -n "$hits" ]; then
    echo "$1/ includes $3:"
    echo "$hits"
    failed=1
  else
    echo "$1/: no $3"
  fi
}
forbid version 'model_store/|server/|client/|bench/' "Headway's other layers"
forbid model_store 'server/|client/|bench/|fuzz/|tests/' "the server, clients, benchmarks or tests"
forbid model_store 'grpcpp/|grpc/|headway/v1/(inference|management)|inference/' \
  "gRPC or the wire protocol"
# The units of headway_torch, and what of the core they may include besides each other.
torch_units='backbone|checkpoint|device|head|host_allocator|torch_errors|torch_pickle|torch_runtime'
torch_may="$torch_units|model_config|store/model_files|store/content_digest|server_fault|status_macros"
torch_files=$(ls model_store/*.h model_store/*.cc | grep -E "^model_store/($torch_units)\.(h|cc)$")
hits=$(grep -nE "^#include [<\"](opencv2/|model_store/)" $torch_files |
  grep -vE "#include \"model_store/($torch_may)\.h\"" || true)
if [ -n "$hits" ]; then
  echo "headway_torch's units include OpenCV or the rest of the core:"
  echo "$hits"
  failed=1
else
  echo "headway_torch's units: no OpenCV, nothing of the core beyond the store"
fi
forbid client 'model_store/|server/|bench/' "the core or the server"
forbid client 'torch/|ATen/|c10/|opencv2/' "LibTorch or OpenCV"
forbid server 'client/load_generator|bench/|tests/' "the load generator, benchmarks or tests"
exit "$failed"
