#!/usr/bin/env bash
# Regenerates mesh-model's copy of the Gateway API CRDs of the release we target, both channels:
#   model/data/gateway-api-crds.json  per channel and kind: group, plural, scope, and each served
#                                     version's OpenAPI schema (descriptions dropped), read from
#                                     config/crd/ of the Go module sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION
# Needs Go (the Go module proxy). Run it when the targeted release changes; the output is committed.
set -euo pipefail
GATEWAY_API_VERSION=${GATEWAY_API_VERSION:-v1.6.3}
here=$(cd "$(dirname "$0")" && pwd)
data="$here/../../model/data"
export GOFLAGS=-mod=mod
export GOMODCACHE=${GOMODCACHE:-$HOME/go/pkg/mod}
cd "$here"
go get "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" k8s.io/apiextensions-apiserver sigs.k8s.io/yaml >/dev/null
go mod tidy >/dev/null
root=$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)
go run . "$root" "$GATEWAY_API_VERSION" >"$data/gateway-api-crds.json"
echo "wrote $data/gateway-api-crds.json ($(wc -c <"$data/gateway-api-crds.json") bytes) from $root"
