// Command authz is the authorization service of the ExternalAuth tests: one policy served over
// both protocols a Gateway API ExternalAuth filter speaks, Envoy's ext_authz gRPC service
// (envoy.service.auth.v3.Authorization, from Envoy's own Go API, go-control-plane) and plain
// HTTP.
//
// Policy: a request with `Authorization: Bearer good` is allowed and gains `x-user: alice`
// (and, over HTTP, `x-auth-path` with the path the service was asked for); anything else is
// denied with 401, `x-denied-by: authz` and the body `denied by authz`. A request whose
// `x-auth-body` header is set is allowed only if the body the service received equals it.
//
// Usage: authz HTTP_ADDR GRPC_ADDR (prints "ready" once both listen).
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	auth "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// allowed applies the policy to a request's headers and body.
func allowed(authorization, wantBody, body string) bool {
	if authorization != "Bearer good" {
		return false
	}
	return wantBody == "" || wantBody == body
}

type server struct{}

func (server) Check(_ context.Context, req *auth.CheckRequest) (*auth.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	body := string(h.GetRawBody())
	if body == "" {
		body = h.GetBody()
	}
	if allowed(h.GetHeaders()["authorization"], h.GetHeaders()["x-auth-body"], body) {
		return &auth.CheckResponse{
			Status: &status.Status{Code: int32(codes.OK)},
			HttpResponse: &auth.CheckResponse_OkResponse{OkResponse: &auth.OkHttpResponse{
				Headers: []*core.HeaderValueOption{
					{Header: &core.HeaderValue{Key: "x-user", Value: "alice"}},
					{Header: &core.HeaderValue{Key: "x-auth-path", Value: h.GetPath()}},
				},
			}},
		}, nil
	}
	return &auth.CheckResponse{
		Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &auth.CheckResponse_DeniedResponse{DeniedResponse: &auth.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
			Headers: []*core.HeaderValueOption{{Header: &core.HeaderValue{Key: "x-denied-by", Value: "authz"}}},
			Body:    "denied by authz",
		}},
	}, nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: authz HTTP_ADDR GRPC_ADDR")
		os.Exit(64)
	}
	httpL, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	grpcL, err := net.Listen("tcp", os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	g := grpc.NewServer()
	auth.RegisterAuthorizationServer(g, server{})
	go func() { _ = g.Serve(grpcL) }()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if allowed(r.Header.Get("Authorization"), r.Header.Get("X-Auth-Body"), string(body)) {
			w.Header().Set("X-User", "alice")
			w.Header().Set("X-Auth-Path", r.URL.RequestURI())
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("X-Denied-By", "authz")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "denied by authz")
	})
	fmt.Println("ready")
	_ = http.Serve(httpL, handler)
}
