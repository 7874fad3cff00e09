//go:build tools

// Package tools pins the control plane the tests run: kube-apiserver, kube-controller-manager
// and kube-scheduler of one Kubernetes release (its staging modules replaced by their published
// versions of the same release, as go.mod lists), and the etcd server that release selects.
// build.sh builds them from here; nothing in the product imports this module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
