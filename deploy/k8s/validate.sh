#!/usr/bin/env bash
# Validates the Kubernetes manifests offline: yamllint for the YAML itself, then each
# overlay as `kubectl apply -k` applies it, against the Kubernetes API schemas (the
# kubernetes-models package from npm, installed into build-k8s/ on first use) and the
# safety checks of validate.js; with kubectl at hand, `kubectl kustomize` must build
# each overlay too.
#   deploy/k8s/validate.sh
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
tools=$root/build-k8s
missing=()
command -v yamllint >/dev/null || missing+=(yamllint)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
yamllint -d '{extends: default, rules: {line-length: {max: 100}, document-start: disable,
  braces: {max-spaces-inside: 1}, truthy: {check-keys: false}}}' ./*/*.yaml
if [ ! -d "$tools/node_modules/kubernetes-models" ]; then
  mkdir -p "$tools"
  npm install --silent --prefix "$tools" kubernetes-models@4 js-yaml@4 >/dev/null
fi
NODE_PATH=$tools/node_modules node validate.js cpu gpu
if command -v kubectl >/dev/null; then
  for overlay in cpu gpu; do
    kubectl kustomize "$overlay" >/dev/null
    echo "$overlay: kubectl kustomize builds it"
  done
fi
