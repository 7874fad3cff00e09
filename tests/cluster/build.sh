#!/bin/sh
# Build the real control plane the tests run, once, into a cache outside the repository, and
# print the directory holding the binaries.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#                                                            k8s.io/kubernetes (go.mod's release)
#   etcd                                                     go.etcd.io/etcd/server/v3 (the
#                                                            version that release selects)
#   kwok                                                     sigs.k8s.io/kwok (KWOK_VERSION)
#   crds/standard, crds/experimental                         sigs.k8s.io/gateway-api's
#                                                            config/crd (GATEWAY_API_VERSION)
#   crds/cilium                                              CiliumEnvoyConfig and
#                                                            CiliumClusterwideEnvoyConfig from
#                                                            github.com/cilium/cilium (CILIUM_VERSION)
#   crds/kwok                                                kwok's Exec, Logs, PortForward
#                                                            (and cluster-wide) CRDs (KWOK_VERSION)
#
# Everything comes from the Go module proxy; nothing else is downloaded. The cache is
# $MESH_CLUSTER_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-mesh/cluster, in a directory
# named for the release and a digest of go.sum, so a change of versions builds anew and an
# unchanged one is reused. The first build takes about 15 minutes on 2 cores (Go's own build
# cache, $(go env GOCACHE), keeps the compiled packages).
set -eu

KWOK_VERSION=v0.8.0
# The Gateway API release the model targets (model/data/gateway-api-crds.json says the same).
GATEWAY_API_VERSION=v1.6.3
CILIUM_VERSION=v1.20.2

here=$(cd "$(dirname "$0")" && pwd)
release=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$here/go.mod")
digest=$( (cat "$here/go.sum" "$0"; echo "kwok $KWOK_VERSION") | sha256sum | cut -c1-12)
root=${MESH_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-mesh/cluster}
out="$root/$release-$digest"
bin="$out/bin"

have_all() {
	for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok; do
		[ -x "$bin/$b" ] || return 1
	done
	[ -f "$bin/kwok-stages.yaml" ] && [ -d "$bin/crds/cilium" ] && [ -d "$bin/crds/kwok" ]
}

if have_all; then
	echo "$bin"
	exit 0
fi
# One build at a time: `make test` starts one in the background while cargo compiles, and the
# tests that need the binaries wait here for it instead of building them a second time.
mkdir -p "$root"
exec 9>"$root/.build.lock"
flock 9
if have_all; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || {
	echo "tests/cluster: go is needed to build the control plane (Go 1.26 or newer)" >&2
	exit 1
}
mkdir -p "$bin.partial"
cd "$here"
echo "tests/cluster: building the Kubernetes $release control plane into $out (once; about 15 minutes)" >&2
# -trimpath and no debug information: smaller binaries, nothing machine-specific in them. The
# release's version is stamped in as Kubernetes' own build does (hack/lib/version.sh): the
# components compare versions, and kubectl reports it.
minor=$(echo "$release" | cut -d. -f2)
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	stamp="$stamp -X $pkg.gitVersion=$release -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
go build -trimpath -ldflags="-s -w $stamp" -o "$bin.partial/" \
	k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler \
	k8s.io/kubernetes/cmd/kubectl
go build -trimpath -ldflags='-s -w' -o "$bin.partial/etcd" go.etcd.io/etcd/server/v3
# kwok is built with its own go.mod (its Kubernetes libraries are its own business).
GOBIN="$bin.partial" GOFLAGS=-trimpath go install -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
# kwok plays nodes and pods by stages; its release's fast ones (nodes ready and kept alive by
# leases, pods running at once, deleted pods removed), from the same module.
stages="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
	pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
	echo "---"
	cat "$stages/$f"
done >"$bin.partial/kwok-stages.yaml"
# The CRDs the tests install, from the same releases' modules.
module_dir() {
	go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p'
}
gateway_api=$(module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")
cilium=$(module_dir "github.com/cilium/cilium@$CILIUM_VERSION")
for channel in standard experimental; do
	mkdir -p "$bin.partial/crds/$channel"
	cp "$gateway_api/config/crd/$channel/"gateway.networking*.yaml "$bin.partial/crds/$channel/"
done
mkdir -p "$bin.partial/crds/cilium"
for crd in ciliumenvoyconfigs ciliumclusterwideenvoyconfigs; do
	cp "$cilium/pkg/k8s/apis/cilium.io/client/crds/v2/$crd.yaml" "$bin.partial/crds/cilium/"
done
# kwok's per-pod exec, logs and port-forward rules, which the conformance run's pod runner
# writes as it serves pods (kwok --enable-crds).
mkdir -p "$bin.partial/crds/kwok"
for crd in execs clusterexecs logs clusterlogs portforwards clusterportforwards; do
	cp "$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/crd/bases/kwok.x-k8s.io_$crd.yaml" "$bin.partial/crds/kwok/"
done
chmod -R u+w "$bin.partial/crds"
rm -rf "$bin"
mv "$bin.partial" "$bin"
echo "$bin"
