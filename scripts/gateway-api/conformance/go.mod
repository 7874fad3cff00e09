module kubectl-mesh.io/scripts/gateway-api/conformance

go 1.24
