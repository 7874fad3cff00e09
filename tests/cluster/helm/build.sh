#!/bin/sh
# Build helm (helm.sh/helm/v4 at go.mod's version) once, into the cache the control plane's
# build.sh uses, and print its path. About 3 minutes on 2 cores the first time.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v4" { print $3 } $1 == "helm.sh/helm/v4" { print $2 }' "$here/go.mod")
digest=$( (cat "$here/go.sum" "$0") | sha256sum | cut -c1-12)
root=${MESH_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-mesh/cluster}
out="$root/helm-$version-$digest"
if [ -x "$out/helm" ]; then
	echo "$out/helm"
	exit 0
fi
mkdir -p "$root"
exec 9>"$root/.helm.lock"
flock 9
if [ ! -x "$out/helm" ]; then
	command -v go >/dev/null || {
		echo "tests/cluster/helm: go is needed to build helm (Go 1.26 or newer)" >&2
		exit 1
	}
	mkdir -p "$out"
	(cd "$here" && go build -o "$out/helm.partial" helm.sh/helm/v4/cmd/helm)
	mv "$out/helm.partial" "$out/helm"
fi
echo "$out/helm"
