// Package conformance runs the upstream Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance, the release the model targets) against mesh-agent.
// It is only the suite's own entry point: every option comes from the suite's flags, which
// `mesh-cluster conformance` passes (tests/cluster/src/conformance.rs).
package conformance

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunConformance(t)
}
