#!/bin/sh
# Build the upstream Gateway API conformance suite (a Go test binary of the module
# sigs.k8s.io/gateway-api/conformance at go.mod's version) once, into the cache build.sh of
# the control plane uses, and print its path. About 80 s on 2 cores the first time.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1 == "require" && $2 == "sigs.k8s.io/gateway-api/conformance" { print $3 } $1 == "sigs.k8s.io/gateway-api/conformance" { print $2 }' "$here/go.mod")
digest=$( (cat "$here/go.sum" "$here/conformance_test.go" "$0") | sha256sum | cut -c1-12)
root=${MESH_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-mesh/cluster}
out="$root/conformance-$version-$digest"
if [ -x "$out/conformance.test" ]; then
	echo "$out/conformance.test"
	exit 0
fi
mkdir -p "$root"
exec 9>"$root/.conformance.lock"
flock 9
if [ ! -x "$out/conformance.test" ]; then
	command -v go >/dev/null || {
		echo "tests/cluster/conformance: go is needed to build the conformance suite (Go 1.26 or newer)" >&2
		exit 1
	}
	mkdir -p "$out"
	(cd "$here" && go test -c -o "$out/conformance.test.partial" .)
	mv "$out/conformance.test.partial" "$out/conformance.test"
fi
echo "$out/conformance.test"
