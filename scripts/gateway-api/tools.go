//go:build tools

// The Gateway API release whose CRDs gen reads is a module requirement, so go.sum pins it.
package main

import _ "sigs.k8s.io/gateway-api/apis/v1"
