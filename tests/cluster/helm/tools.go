//go:build tools

// Package tools pins helm (helm.sh/helm/v4) for the chart test (tests/cluster/tests/chart.rs):
// build.sh builds its command from this module's go.mod and go.sum.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
