// Command conformance reads the upstream Gateway API conformance tests (the Go sources of
// sigs.k8s.io/gateway-api/conformance) and prints, as JSON, every negative status condition a
// test expects: the test, its manifests, the object (kind, namespace, name, and the listener or
// parent when the condition is theirs) and the condition's type, status and reason.
//
// It reads the tests' Go code rather than a hand-kept table, so the expectations are upstream's.
// A small evaluator follows what the tests write: NamespacedName and Condition literals bound
// to variables, table-driven cases (range over a slice literal), constants of the API packages,
// and the kubernetes.*MustHave* helpers, whose name gives the kind.
//
// With -http it prints instead every HTTP exchange a test expects (http.ExpectedResponse
// values passed to MakeRequestAndExpectEventuallyConsistentResponse, for Gateway tests and
// GAMMA mesh tests), with the Gateway (and listener) whose address the request goes to.
//
// Usage: go run . [-http] CONFORMANCE_MODULE_DIR GATEWAY_API_MODULE_DIR
package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// NN is a types.NamespacedName.
type NN struct{ Namespace, Name string }

// Cond is a metav1.Condition.
type Cond struct{ Type, Status, Reason string }

// Struct is any other composite literal: its fields, or its elements for a slice.
type Struct struct {
	Type   string
	Fields map[string]any
	Elems  []any
}

// Expectation is one negative condition a test expects on one object.
type Expectation struct {
	Test      string   `json:"test"`
	Manifests []string `json:"manifests"`
	Features  []string `json:"features"`
	Helper    string   `json:"helper"`
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	// Listener is the listener (of a Gateway or ListenerSet) the condition is on, if any.
	Listener string `json:"listener,omitempty"`
	// Parent is the parent (Gateway) of a route condition, if named.
	Parent string `json:"parent,omitempty"`
	Type   string `json:"type"`
	Status string `json:"status"`
	// Reason is empty when the test accepts any reason.
	Reason string `json:"reason"`
	// SkipWhen lists features whose support makes the test return before asserting anything
	// (the "NotSupported" tests: their expectations hold only for implementations without).
	SkipWhen []string `json:"skip_when,omitempty"`
	// After lists the changes the test made to the objects before asserting this, in order,
	// separated by "; " ("Delete ReferenceGrant ns/name" when the deleted object is known;
	// else the client call: Update, Patch, ...): the manifests alone do not produce it.
	After string `json:"after,omitempty"`
}

// consts holds the string constants of the API and conformance packages by name, with
// apimachinery's condition statuses, which those packages use but do not declare.
var consts = map[string]string{
	"ConditionTrue":    "True",
	"ConditionFalse":   "False",
	"ConditionUnknown": "Unknown",
}

// Exchange is one HTTP request a test makes and the response (and backend request) it expects.
type Exchange struct {
	Test      string   `json:"test"`
	Manifests []string `json:"manifests"`
	Features  []string `json:"features"`
	// Gateway is the Gateway whose address the request goes to, with the listener whose
	// port it uses (the first listener when empty); nil for a mesh test's request.
	Gateway *GwAddr `json:"gateway,omitempty"`
	// Mesh is the client app of a mesh test, as its pods' label selector ("app=echo,version=v1");
	// empty for Gateway tests. A value known only at run time is null, or a placeholder
	// ("{address of app=echo,version=v2}" for a pod's IP).
	Mesh string `json:"mesh,omitempty"`
	// Expected is the http.ExpectedResponse, fields as Go names them.
	Expected any `json:"expected"`
	// TLS is set for an HTTPS exchange, and for a TCP one over TLS.
	TLS   *TLSClient `json:"tls,omitempty"`
	After string     `json:"after,omitempty"`
	// Weights is set on a copy of the exchange a weighted-distribution check
	// (weight.TestWeightedDistribution) repeats: the share of requests each backend must get.
	Weights map[string]float64 `json:"weights,omitempty"`
	// Kind is "tcp" for the echo server's TCP protocol (Expected is a tcp.ExpectedResponse;
	// empty: any backend's answer), "udp" for its UDP echo (a udp.ExpectedResponse), "grpc"
	// for a call to its gRPC echo service (a grpc.ExpectedResponse; status codes by name),
	// "websocket" for a WebSocket session with the echo server (suite.WebSocketDialer.Dial
	// of a URL on the Gateway: text and binary messages come back unchanged; Expected holds
	// the request's path), empty for HTTP.
	Kind string `json:"kind,omitempty"`
}

// GwURL is a URL a test builds on a Gateway's address (fmt.Sprintf("ws://%s/ws", gwAddr)).
type GwURL struct {
	Addr   GwAddr
	Scheme string
	Path   string
}

// GwAddr is what kubernetes.GatewayAnd*RoutesMustBeAccepted and WaitForGatewayAddress return:
// the address of a Gateway's listener.
type GwAddr struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Listener  string `json:"listener,omitempty"`
	// Port is set when the test names the port itself (net.JoinHostPort(gwAddr, "443")).
	Port string `json:"port,omitempty"`
}

// TLSClient is how an HTTPS exchange connects: the server name it sends and verifies, the
// certificate it trusts and the one it presents, as placeholders naming the Secret they come
// from ("{secret gateway-conformance-infra/name cert}"; "key" for the private key).
type TLSClient struct {
	ServerName string `json:"server_name"`
	Trust      string `json:"trust,omitempty"`
	ClientCert string `json:"client_cert,omitempty"`
	ClientKey  string `json:"client_key,omitempty"`
	// Fail: the request must fail (MakeTLSRequestAndExpectFailureResponse).
	Fail bool `json:"fail,omitempty"`
	// Reject: the connection must be closed during the handshake
	// (MakeTLSConnectionAndExpectEventuallyConnectionRejection).
	Reject bool `json:"reject,omitempty"`
}

// MeshClient is what echo.ConnectToApp returns: a client pod of the mesh tests.
type MeshClient struct{ App string }

// RouteHostnames is the hostnames a kubernetes.GatewayAnd*RoutesMustBeAccepted call returns:
// the spec.hostnames of the last route it was given, known from the manifests. Indexing it
// gives a placeholder the replay fills in ("{hostname 0 of TLSRoute ns/name}").
type RouteHostnames struct {
	Kind  string
	Route NN
}

// Closure is a function literal bound to a variable (expect := func(t, listener string) {...}),
// with the scope it was defined in: a call to it is followed like a call to a file's function.
type Closure struct {
	Fn    *ast.FuncLit
	Scope env
}

// ConfigMapData is what kubernetes.GetConfigMapData returns; indexing it by key gives a
// placeholder ("{configmap ns/name ca.crt}").
type ConfigMapData struct{ NN NN }

// httpMode prints exchanges instead of negative conditions.
var httpMode bool

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "-http" {
		httpMode, args = true, args[1:]
	}
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: conformance [-http] CONFORMANCE_MODULE_DIR GATEWAY_API_MODULE_DIR")
		os.Exit(64)
	}
	conf, api := args[0], args[1]
	for _, dir := range []string{filepath.Join(api, "apis"), filepath.Join(api, "apisx"), filepath.Join(conf, "utils")} {
		collectConsts(dir)
	}
	fset := token.NewFileSet()
	files, _ := filepath.Glob(filepath.Join(conf, "tests", "*.go"))
	if httpMode {
		mesh, _ := filepath.Glob(filepath.Join(conf, "tests", "mesh", "*.go"))
		files = append(files, mesh...)
	}
	sort.Strings(files)
	out := []Expectation{}
	exchanges := []Exchange{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		e, x := fileExpectations(file)
		out, exchanges = append(out, e...), append(exchanges, x...)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	var printed any = out
	if httpMode {
		printed = exchanges
	}
	if err := enc.Encode(printed); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// collectConsts records every string constant (and string var) declared under dir by name.
func collectConsts(dir string) {
	fset := token.NewFileSet()
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return nil
		}
		for _, decl := range file.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || (g.Tok != token.CONST && g.Tok != token.VAR) {
				continue
			}
			for _, spec := range g.Specs {
				v := spec.(*ast.ValueSpec)
				for i, name := range v.Names {
					if i < len(v.Values) {
						if s, ok := literal(v.Values[i]); ok {
							consts[name.Name] = s
						}
					}
				}
			}
		}
		return nil
	})
}

// integer is an int literal's value.
func integer(e ast.Expr) (int64, bool) {
	if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.INT {
		n, err := strconv.ParseInt(b.Value, 0, 64)
		return n, err == nil
	}
	return 0, false
}

func literal(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		}
	case *ast.CallExpr: // a typed constant: RouteConditionReason("x")
		if len(e.Args) == 1 {
			return literal(e.Args[0])
		}
	}
	return "", false
}

// test is what a ConformanceTest literal declares.
type test struct {
	name      string
	manifests []string
	features  []string
	// skipWhen: features whose support ends the test at once
	// (if suite.SupportedFeatures.Has(features.X) { return }).
	skipWhen []string
}

func fileExpectations(file *ast.File) ([]Expectation, []Exchange) {
	var out []Expectation
	var exchanges []Exchange
	aliases = map[string]string{}
	for _, imp := range file.Imports {
		if imp.Name != nil {
			if path, err := strconv.Unquote(imp.Path.Value); err == nil {
				aliases[imp.Name.Name] = path[strings.LastIndex(path, "/")+1:]
			}
		}
	}
	pkg := env{}
	// The file's own helper functions, which tests call with their cases
	// (assertConsistentRetryBehaviour(t, suite, gwAddr, ns, path, values, want)).
	funcs := map[string]*ast.FuncDecl{}
	for _, decl := range file.Decls {
		if f, ok := decl.(*ast.FuncDecl); ok && f.Recv == nil && f.Body != nil {
			funcs[f.Name.Name] = f
		}
	}
	// Package-level variables and constants of the test file (shared NamespacedNames, cases).
	for _, decl := range file.Decls {
		if g, ok := decl.(*ast.GenDecl); ok && (g.Tok == token.VAR || g.Tok == token.CONST) {
			for _, spec := range g.Specs {
				v := spec.(*ast.ValueSpec)
				for i, n := range v.Names {
					if i < len(v.Values) {
						if _, isTest := v.Values[i].(*ast.CompositeLit); isTest && isConformanceTest(v.Values[i]) {
							continue
						}
						pkg[n.Name] = eval(v.Values[i], pkg)
					}
				}
			}
		}
	}
	// Test bodies by the variable that holds the test, for a test that runs another's
	// (`Test: HTTPRouteRequestHeaderModifier.Test` with manifests of its own).
	bodies := map[string]*ast.BlockStmt{}
	for _, decl := range file.Decls {
		if g, ok := decl.(*ast.GenDecl); ok && g.Tok == token.VAR {
			for _, spec := range g.Specs {
				v := spec.(*ast.ValueSpec)
				for i, n := range v.Names {
					if i < len(v.Values) && isConformanceTest(v.Values[i]) {
						if f := testFunc(v.Values[i].(*ast.CompositeLit)); f != nil {
							bodies[n.Name] = f.Body
						}
					}
				}
			}
		}
	}
	ast.Inspect(file, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok || !isConformanceTest(lit) {
			return true
		}
		var t test
		var body *ast.BlockStmt
		for _, el := range lit.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			switch key(kv.Key) {
			case "ShortName":
				t.name, _ = eval(kv.Value, pkg).(string)
			case "Manifests":
				t.manifests = strings_(eval(kv.Value, pkg))
			case "Features":
				if c, ok := kv.Value.(*ast.CompositeLit); ok {
					for _, f := range c.Elts {
						if s, ok := f.(*ast.SelectorExpr); ok {
							t.features = append(t.features, s.Sel.Name)
						}
					}
				}
			case "Test":
				switch f := kv.Value.(type) {
				case *ast.FuncLit:
					body = f.Body
				case *ast.SelectorExpr:
					if id, ok := f.X.(*ast.Ident); ok && f.Sel.Name == "Test" {
						body = bodies[id.Name]
					}
				}
			}
		}
		if body != nil {
			t.skipWhen = skippedWhen(body)
			after := ""
			w := walker{test: t, out: &out, exchanges: &exchanges, after: &after, funcs: funcs, pkg: pkg}
			w.block(body, pkg.child())
		}
		return false
	})
	return out, exchanges
}

// skippedWhen finds a test body's early exits on a supported feature:
// `if suite.SupportedFeatures.Has(features.X) { ...; return }` (or t.Skip).
func skippedWhen(body *ast.BlockStmt) []string {
	var out []string
	for _, st := range body.List {
		ifs, ok := st.(*ast.IfStmt)
		if !ok || len(ifs.Body.List) == 0 {
			continue
		}
		call, ok := ifs.Cond.(*ast.CallExpr)
		if !ok || !strings.HasSuffix(callName(call), ".Has") || len(call.Args) != 1 {
			continue
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || !strings.Contains(fmt.Sprint(sel.X), "SupportedFeatures") {
			continue
		}
		exits := false
		switch last := ifs.Body.List[len(ifs.Body.List)-1].(type) {
		case *ast.ReturnStmt:
			exits = true
		case *ast.ExprStmt:
			if c, ok := last.X.(*ast.CallExpr); ok && strings.HasSuffix(callName(c), ".Skip") {
				exits = true
			}
		}
		if f, ok := call.Args[0].(*ast.SelectorExpr); ok && exits {
			out = append(out, f.Sel.Name)
		}
	}
	return out
}

// testFunc is the function literal a ConformanceTest literal gives as its Test.
func testFunc(lit *ast.CompositeLit) *ast.FuncLit {
	for _, el := range lit.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok && key(kv.Key) == "Test" {
			f, _ := kv.Value.(*ast.FuncLit)
			return f
		}
	}
	return nil
}

func isConformanceTest(e ast.Expr) bool {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return false
	}
	s, ok := lit.Type.(*ast.SelectorExpr)
	return ok && s.Sel.Name == "ConformanceTest"
}

func key(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func strings_(v any) []string {
	var out []string
	if s, ok := v.(Struct); ok {
		for _, e := range s.Elems {
			if str, ok := e.(string); ok {
				out = append(out, str)
			}
		}
	}
	return out
}

// env is a scope of variables; a child sees its parent's.
type env map[string]any

func (e env) child() env {
	c := env{}
	for k, v := range e {
		c[k] = v
	}
	return c
}

func eval(e ast.Expr, vars env) any {
	switch e := e.(type) {
	case *ast.BasicLit:
		if n, ok := integer(e); ok {
			return n
		}
		if e.Kind == token.FLOAT {
			f, _ := strconv.ParseFloat(e.Value, 64)
			return f
		}
		s, _ := literal(e)
		return s
	case *ast.IndexExpr:
		switch x := eval(e.X, vars).(type) {
		case RouteHostnames:
			if i, ok := eval(e.Index, vars).(int64); ok {
				return fmt.Sprintf("{hostname %d of %s %s/%s}", i, x.Kind, x.Route.Namespace, x.Route.Name)
			}
			return nil
		case ConfigMapData:
			if k, ok := eval(e.Index, vars).(string); ok {
				return fmt.Sprintf("{configmap %s/%s %s}", x.NN.Namespace, x.NN.Name, k)
			}
			return nil
		}
		if s, ok := eval(e.X, vars).(Struct); ok {
			if i, ok := eval(e.Index, vars).(int64); ok && int(i) < len(s.Elems) && i >= 0 {
				return s.Elems[i]
			}
		}
		return nil
	case *ast.Ident:
		if v, ok := vars[e.Name]; ok {
			return v
		}
		if e.Name == "true" || e.Name == "false" {
			return e.Name == "true"
		}
		if s, ok := consts[e.Name]; ok {
			return s
		}
		return nil
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			// A gRPC status code (codes.Unimplemented) by its name.
			if _, local := vars[x.Name]; !local && x.Name == "codes" {
				return e.Sel.Name
			}
			if _, local := vars[x.Name]; !local {
				if s, ok := consts[e.Sel.Name]; ok {
					return s
				}
				return nil
			}
		}
		switch x := eval(e.X, vars).(type) {
		case Struct:
			return x.Fields[e.Sel.Name]
		case NN:
			if e.Sel.Name == "Name" {
				return x.Name
			}
			return x.Namespace
		case Cond:
			return map[string]string{"Type": x.Type, "Status": x.Status, "Reason": x.Reason}[e.Sel.Name]
		case MeshClient:
			// A pod's IP is known only at run time: a placeholder the replay fills in.
			if e.Sel.Name == "Address" {
				return "{address of " + x.App + "}"
			}
		}
		return nil
	case *ast.BinaryExpr:
		l, lok := eval(e.X, vars).(string)
		r, rok := eval(e.Y, vars).(string)
		if e.Op == token.ADD && lok && rok {
			return l + r
		}
		return nil
	case *ast.UnaryExpr:
		return eval(e.X, vars)
	case *ast.ParenExpr:
		return eval(e.X, vars)
	case *ast.CallExpr:
		name := callName(e)
		switch {
		case name == "string" && len(e.Args) == 1:
			return eval(e.Args[0], vars)
		case name == "append" && len(e.Args) >= 1:
			// append(cases, more...) or append(cases, a, b)
			base, _ := eval(e.Args[0], vars).(Struct)
			out := Struct{Type: base.Type, Fields: map[string]any{}, Elems: append([]any{}, base.Elems...)}
			elem := strings.TrimPrefix(base.Type, "[]")
			for _, a := range e.Args[1:] {
				if e.Ellipsis.IsValid() {
					if more, ok := eval(a, vars).(Struct); ok {
						out.Elems = append(out.Elems, more.Elems...)
					}
					continue
				}
				if c, ok := a.(*ast.CompositeLit); ok && c.Type == nil {
					out.Elems = append(out.Elems, composite(c, vars, elem))
					continue
				}
				out.Elems = append(out.Elems, eval(a, vars))
			}
			return out
		// fmt.Sprintf("ws://%s/ws", gwAddr): a URL on a Gateway's address.
		case name == "fmt.Sprintf" && len(e.Args) == 2:
			format, _ := eval(e.Args[0], vars).(string)
			if addr, ok := eval(e.Args[1], vars).(GwAddr); ok {
				if scheme, rest, ok := strings.Cut(format, "://%s"); ok {
					return GwURL{Addr: addr, Scheme: scheme, Path: rest}
				}
			}
			return nil
		case name == "net.JoinHostPort" && len(e.Args) == 2:
			if addr, ok := eval(e.Args[0], vars).(GwAddr); ok {
				addr.Port, _ = eval(e.Args[1], vars).(string)
				return addr
			}
		case name == "kubernetes.GetConfigMapData" && len(e.Args) == 3:
			if nn, ok := eval(e.Args[2], vars).(NN); ok {
				return ConfigMapData{NN: nn}
			}
		case name == "kubernetes.GetTLSSecret" && len(e.Args) == 2:
			if nn, ok := eval(e.Args[1], vars).(NN); ok {
				return "{secret " + nn.Namespace + "/" + nn.Name + " cert}"
			}
		case name == "echo.ConnectToApp" && len(e.Args) == 3:
			if sel, ok := e.Args[2].(*ast.SelectorExpr); ok {
				// The app's label selector (echo.MeshAppEchoV1 is "app=echo,version=v1").
				if selector, ok := consts[sel.Sel.Name]; ok {
					return MeshClient{App: selector}
				}
				return MeshClient{App: sel.Sel.Name}
			}
		case gatewayAddress(name):
			for _, a := range e.Args {
				ref, ok := a.(*ast.CallExpr)
				if !ok || !strings.HasSuffix(callName(ref), ".NewGatewayRef") || len(ref.Args) == 0 {
					continue
				}
				if nn, ok := eval(ref.Args[0], vars).(NN); ok {
					addr := GwAddr{Namespace: nn.Namespace, Name: nn.Name}
					if len(ref.Args) > 1 {
						addr.Listener, _ = eval(ref.Args[1], vars).(string)
					}
					return addr
				}
			}
		case strings.HasSuffix(name, ".NewGatewayRef") || strings.HasSuffix(name, ".NewResourceRef"):
			for _, a := range e.Args {
				if nn, ok := eval(a, vars).(NN); ok {
					return nn
				}
			}
		case len(e.Args) == 1: // a conversion: v1.SectionName("x"), ptr.To(x)
			return eval(e.Args[0], vars)
		case strings.HasSuffix(name, ".Encode") && len(e.Args) == 0:
			// url.Values.Encode: keys sorted, values escaped (placeholders kept).
			if sel, ok := e.Fun.(*ast.SelectorExpr); ok {
				if m, ok := eval(sel.X, vars).(Struct); ok && m.Type == "map" {
					return encodeValues(m)
				}
			}
		}
		return nil
	case *ast.CompositeLit:
		return composite(e, vars, "")
	case *ast.FuncLit:
		return Closure{Fn: e, Scope: vars}
	}
	return nil
}

func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.SelectorExpr:
		return t.Sel.Name
	case *ast.Ident:
		return t.Name
	case *ast.ArrayType:
		return "[]" + typeName(t.Elt)
	case *ast.StarExpr:
		return typeName(t.X)
	case *ast.MapType:
		return "map"
	}
	return ""
}

// gatewayAddress says whether a kubernetes.* helper returns a Gateway's address.
func gatewayAddress(call string) bool {
	return call == "kubernetes.WaitForGatewayAddress" ||
		strings.HasPrefix(call, "kubernetes.GatewayAnd") && strings.HasSuffix(call, "MustBeAccepted")
}

// jsonValue turns an evaluated value into what encoding/json prints: structs and maps as
// objects, slices as arrays.
func jsonValue(v any) any {
	switch v := v.(type) {
	case Struct:
		if len(v.Fields) == 0 && (len(v.Elems) > 0 || strings.HasPrefix(v.Type, "[]")) {
			out := []any{}
			for _, e := range v.Elems {
				out = append(out, jsonValue(e))
			}
			return out
		}
		out := map[string]any{}
		for k, f := range v.Fields {
			out[k] = jsonValue(f)
		}
		return out
	case NN:
		return map[string]any{"Namespace": v.Namespace, "Name": v.Name}
	}
	return v
}

// composite evaluates a composite literal; implied is its type when the literal elides it (an
// element of a slice literal: []metav1.Condition{{Type: ...}}).
func composite(e *ast.CompositeLit, vars env, implied string) any {
	name := typeName(e.Type)
	if e.Type == nil {
		name = implied
	}
	if name == "Values" { // url.Values is a map[string][]string
		name = "map"
	}
	s := Struct{Type: name, Fields: map[string]any{}}
	elem := strings.TrimPrefix(name, "[]")
	value := func(v ast.Expr) any {
		if c, ok := v.(*ast.CompositeLit); ok && c.Type == nil {
			return composite(c, vars, elem)
		}
		if u, ok := v.(*ast.UnaryExpr); ok {
			if c, ok := u.X.(*ast.CompositeLit); ok && c.Type == nil {
				return composite(c, vars, elem)
			}
		}
		return eval(v, vars)
	}
	for _, el := range e.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok {
			if name == "map" {
				if k, ok := eval(kv.Key, vars).(string); ok {
					s.Fields[k] = value(kv.Value)
				}
				continue
			}
			if k := key(kv.Key); k != "" && !strings.HasPrefix(name, "[]") {
				s.Fields[k] = eval(kv.Value, vars)
				continue
			}
			s.Elems = append(s.Elems, value(kv.Value))
			continue
		}
		s.Elems = append(s.Elems, value(el))
	}
	str := func(k string) string { v, _ := s.Fields[k].(string); return v }
	switch s.Type {
	case "NamespacedName":
		return NN{Namespace: str("Namespace"), Name: str("Name")}
	case "Condition":
		return Cond{Type: str("Type"), Status: str("Status"), Reason: str("Reason")}
	}
	return s
}

// aliases maps the current file's import names to the packages' own names
// (h "sigs.k8s.io/gateway-api/conformance/utils/http": h -> http).
var aliases = map[string]string{}

func callName(c *ast.CallExpr) string {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok {
			if pkg, ok := aliases[x.Name]; ok {
				return pkg + "." + f.Sel.Name
			}
			return x.Name + "." + f.Sel.Name
		}
		return "." + f.Sel.Name
	}
	return ""
}

type walker struct {
	test      test
	out       *[]Expectation
	exchanges *[]Exchange
	// funcs are the file's helper functions, walked where a test calls them (depth bounds
	// recursion); pkg is the file's package-level scope they see.
	funcs map[string]*ast.FuncDecl
	pkg   env
	depth int
	// after lists the changes the test made to the cluster's objects so far.
	after *string
}

func (w walker) block(b *ast.BlockStmt, vars env) {
	for _, s := range b.List {
		w.stmt(s, vars)
	}
}

func (w walker) stmt(s ast.Stmt, vars env) {
	switch s := s.(type) {
	case *ast.AssignStmt:
		for i, l := range s.Lhs {
			if id, ok := l.(*ast.Ident); ok && i < len(s.Rhs) && len(s.Lhs) == len(s.Rhs) {
				vars[id.Name] = eval(s.Rhs[i], vars)
			}
		}
		// gwAddr, hostnames := kubernetes.GatewayAndTLSRoutesMustBeAccepted(...)
		if len(s.Rhs) == 1 && len(s.Lhs) > 1 {
			first := eval(s.Rhs[0], vars)
			if id, ok := s.Lhs[0].(*ast.Ident); ok {
				vars[id.Name] = first
			}
			// gwAddr, hostnames := kubernetes.GatewayAndTLSRoutesMustBeAccepted(..., routeNN):
			// the hostnames of the last route named.
			if call, ok := s.Rhs[0].(*ast.CallExpr); ok && gatewayAddress(callName(call)) {
				kind := strings.TrimSuffix(strings.TrimPrefix(callName(call), "kubernetes.GatewayAnd"), "sMustBeAccepted")
				for _, a := range call.Args {
					if nn, ok := eval(a, vars).(NN); ok {
						if id, ok := s.Lhs[1].(*ast.Ident); ok && id.Name != "_" && id.Name != "err" {
							vars[id.Name] = RouteHostnames{Kind: kind, Route: nn}
						}
					}
				}
			}
			// cert, key, err := kubernetes.GetTLSSecret(...): the key is the Secret's too.
			if cert, ok := first.(string); ok && strings.HasSuffix(cert, " cert}") {
				if id, ok := s.Lhs[1].(*ast.Ident); ok && id.Name != "_" {
					vars[id.Name] = strings.TrimSuffix(cert, " cert}") + " key}"
				}
			}
		}
		for _, r := range s.Rhs {
			w.expr(r, vars)
		}
	case *ast.DeclStmt:
		if g, ok := s.Decl.(*ast.GenDecl); ok {
			for _, spec := range g.Specs {
				if v, ok := spec.(*ast.ValueSpec); ok {
					for i, n := range v.Names {
						if i < len(v.Values) {
							vars[n.Name] = eval(v.Values[i], vars)
						}
					}
				}
			}
		}
	case *ast.ExprStmt:
		w.expr(s.X, vars)
	case *ast.BlockStmt:
		w.block(s, vars.child())
	case *ast.IfStmt:
		if s.Init != nil {
			w.stmt(s.Init, vars)
		}
		w.block(s.Body, vars.child())
		if s.Else != nil {
			w.stmt(s.Else, vars.child())
		}
	case *ast.RangeStmt:
		items, _ := eval(s.X, vars).(Struct)
		name, index := "", ""
		if id, ok := s.Value.(*ast.Ident); ok {
			name = id.Name
		}
		if id, ok := s.Key.(*ast.Ident); ok && id.Name != "_" {
			index = id.Name
		}
		if len(items.Elems) == 0 || name == "" && index == "" {
			w.block(s.Body, vars.child())
			return
		}
		for i, item := range items.Elems {
			c := vars.child()
			if name != "" {
				c[name] = item
			}
			if index != "" {
				c[index] = int64(i)
			}
			w.block(s.Body, c)
		}
	case *ast.ForStmt:
		w.block(s.Body, vars.child())
	}
}

// expr follows calls: closures passed to t.Run and friends are walked in the same scope, and
// the kubernetes.*MustHave* helpers are read for the conditions they assert.
func (w walker) expr(e ast.Expr, vars env) {
	c, ok := e.(*ast.CallExpr)
	if !ok {
		return
	}
	for _, a := range c.Args {
		switch a := a.(type) {
		case *ast.FuncLit:
			w.block(a.Body, vars.child())
		case *ast.CallExpr: // require.NoError(t, suite.Client.Delete(ctx, &rg))
			w.expr(a, vars)
		}
	}
	name := callName(c)
	fn, scope := w.funcs[name], w.pkg
	if id, ok := c.Fun.(*ast.Ident); ok {
		if cl, ok := vars[id.Name].(Closure); ok {
			fn = &ast.FuncDecl{Type: cl.Fn.Type, Body: cl.Fn.Body}
			scope = cl.Scope
		}
	}
	if f := fn; f != nil && w.depth < 3 {
		scope := scope.child()
		i := 0
		for _, field := range f.Type.Params.List {
			for _, n := range field.Names {
				if i < len(c.Args) {
					scope[n.Name] = eval(c.Args[i], vars)
				}
				i++
			}
		}
		inner := w
		inner.depth++
		inner.block(f.Body, scope)
	}
	// values.Set("uuid", uuid.New().String()): a value known only at run time is a
	// placeholder named by its key ("{uuid}").
	if sel, ok := c.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Set" && len(c.Args) == 2 {
		if m, ok := eval(sel.X, vars).(Struct); ok && m.Type == "map" {
			if k, ok := eval(c.Args[0], vars).(string); ok {
				v := eval(c.Args[1], vars)
				if v == nil {
					v = "{" + k + "}"
				}
				m.Fields[k] = v
			}
		}
	}
	if sel, ok := c.Fun.(*ast.SelectorExpr); ok {
		switch sel.Sel.Name {
		case "Delete", "Update", "Patch", "Create", "Apply", "MustApplyWithCleanup":
			// suite.Client.Update(...), or a helper's own client (klient.Patch(...)).
			isClient := false
			switch x := sel.X.(type) {
			case *ast.SelectorExpr:
				isClient = x.Sel.Name == "Client"
			case *ast.Ident:
				isClient = strings.HasSuffix(strings.ToLower(x.Name), "lient") // client, klient
			}
			if isClient || sel.Sel.Name == "MustApplyWithCleanup" {
				change := sel.Sel.Name
				// Client.Delete(ctx, &v1.ReferenceGrant{ObjectMeta: ...}): which object.
				if change == "Delete" && len(c.Args) >= 2 {
					if obj, ok := eval(c.Args[1], vars).(Struct); ok {
						if meta, ok := obj.Fields["ObjectMeta"].(Struct); ok {
							ns, _ := meta.Fields["Namespace"].(string)
							name, _ := meta.Fields["Name"].(string)
							if name != "" {
								change = fmt.Sprintf("Delete %s %s/%s", obj.Type, ns, name)
							}
						}
					}
				}
				if *w.after == "" {
					*w.after = change
				} else {
					*w.after += "; " + change
				}
			}
		}
	}
	if httpMode {
		w.exchange(c, name, vars)
		w.distribution(c, name, vars)
	}
	if !strings.HasPrefix(name, "kubernetes.") {
		return
	}
	helper := strings.TrimPrefix(name, "kubernetes.")
	kind := helperKind(helper)
	if kind == "" {
		return
	}
	var nns []NN
	var args []any
	for _, a := range c.Args {
		v := eval(a, vars)
		if nn, ok := v.(NN); ok {
			nns = append(nns, nn)
		}
		args = append(args, v)
	}
	if len(nns) == 0 {
		return
	}
	object := nns[0]
	parent := ""
	if len(nns) > 1 && kind != "Gateway" && kind != "GatewayClass" {
		parent = nns[1].Name
	}
	emit := func(cond Cond, listener, parent string) {
		if !negative(cond) {
			return
		}
		*w.out = append(*w.out, Expectation{
			Test: w.test.name, Manifests: w.test.manifests, Features: w.test.features,
			Helper: helper, Kind: kind, Namespace: object.Namespace, Name: object.Name,
			Listener: listener, Parent: parent, Type: cond.Type, Status: cond.Status, Reason: cond.Reason,
			After: *w.after, SkipWhen: w.test.skipWhen,
		})
	}
	if strings.HasSuffix(helper, "MustHaveNoAcceptedParents") {
		emit(Cond{Type: "Accepted", Status: "False"}, "", parent)
		return
	}
	listenerArg := ""
	if strings.Contains(helper, "ListenerMustHave") || strings.Contains(helper, "ListenersMustHave") {
		for _, a := range args {
			if s, ok := a.(string); ok && s != "" {
				listenerArg = s
			}
		}
	}
	var visit func(v any, listener, parent string)
	visit = func(v any, listener, parent string) {
		switch v := v.(type) {
		case Cond:
			emit(v, listener, parent)
		case Struct:
			l, p := listener, parent
			if v.Type == "ListenerStatus" || v.Type == "ListenerEntryStatus" {
				l, _ = v.Fields["Name"].(string)
			}
			if ref, ok := v.Fields["ParentRef"].(Struct); ok {
				p, _ = ref.Fields["Name"].(string)
			}
			for _, f := range v.Fields {
				visit(f, l, p)
			}
			for _, el := range v.Elems {
				visit(el, l, p)
			}
		}
	}
	for _, a := range args {
		visit(a, listenerArg, parent)
	}
}

// negative says whether a condition reports a problem: False for the positive-polarity
// conditions (Accepted, ResolvedRefs, Programmed, ...), True for Conflicted and
// OverlappingTLSConfig.
func negative(c Cond) bool {
	switch c.Type {
	case "Conflicted", "OverlappingTLSConfig":
		return c.Status == "True"
	}
	return c.Status == "False"
}

// helperKind is the kind a kubernetes.* helper asserts conditions on ("" for other helpers).
func helperKind(helper string) string {
	if !strings.Contains(helper, "MustHave") {
		return ""
	}
	for _, k := range []string{"BackendTLSPolicy", "ListenerSet", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute", "GatewayClass", "GWC", "Gateway"} {
		if strings.HasPrefix(helper, k) {
			if k == "GWC" {
				return "GatewayClass"
			}
			return k
		}
	}
	return ""
}

// exchange records an HTTP exchange a call expects: a Gateway test's
// http.MakeRequestAndExpectEventuallyConsistentResponse(t, rt, timeouts, gwAddr, expected) or a
// mesh test's client.MakeRequestAndExpectEventuallyConsistentResponse(t, expected, timeouts).
func (w walker) exchange(c *ast.CallExpr, name string, vars env) {
	// suite.WebSocketDialer.Dial(remote, protocol, origin)
	if sel, ok := c.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Dial" && len(c.Args) == 3 {
		if d, ok := sel.X.(*ast.SelectorExpr); ok && d.Sel.Name == "WebSocketDialer" {
			if u, ok := eval(c.Args[0], vars).(GwURL); ok && u.Scheme == "ws" {
				addr := u.Addr
				*w.exchanges = append(*w.exchanges, Exchange{
					Test: w.test.name, Manifests: append([]string{}, w.test.manifests...),
					Features: w.test.features, After: *w.after, Gateway: &addr, Kind: "websocket",
					Expected: map[string]any{"Request": map[string]any{"Path": u.Path}},
				})
			}
			return
		}
	}
	if !strings.HasSuffix(name, ".MakeRequestAndExpectEventuallyConsistentResponse") && name != "http.MakeRequest" &&
		!strings.HasPrefix(name, "tls.MakeTLS") && !strings.HasPrefix(name, "tcp.") && !strings.HasPrefix(name, "udp.") {
		return
	}
	x := Exchange{Test: w.test.name, Manifests: append([]string{}, w.test.manifests...), Features: w.test.features, After: *w.after}
	str := func(i int) string { v, _ := eval(c.Args[i], vars).(string); return v }
	// at reads the Gateway address argument i into the exchange.
	at := func(i int) bool {
		addr, ok := eval(c.Args[i], vars).(GwAddr)
		if ok {
			x.Gateway = &addr
		}
		return ok
	}
	switch {
	// tls.MakeTLSRequestAndExpectEventuallyConsistentResponse(t, rt, timeouts, gwAddr,
	// serverCert, clientCert, clientKey, serverName, expected)
	case name == "tls.MakeTLSRequestAndExpectEventuallyConsistentResponse" && len(c.Args) == 9:
		if !at(3) {
			return
		}
		x.TLS = &TLSClient{Trust: str(4), ClientCert: str(5), ClientKey: str(6), ServerName: str(7)}
		x.Expected = jsonValue(eval(c.Args[8], vars))
	// tls.MakeTLSRequestAndExpectFailureResponse(t, rt, gwAddr, serverCert, clientCert,
	// clientKey, serverName, expected)
	case name == "tls.MakeTLSRequestAndExpectFailureResponse" && len(c.Args) == 8:
		if !at(2) {
			return
		}
		x.TLS = &TLSClient{Trust: str(3), ClientCert: str(4), ClientKey: str(5), ServerName: str(6), Fail: true}
		x.Expected = jsonValue(eval(c.Args[7], vars))
	// tls.MakeTLSConnectionAndExpectEventuallyConnectionRejection(t, timeouts, gwAddr, serverName)
	case name == "tls.MakeTLSConnectionAndExpectEventuallyConnectionRejection" && len(c.Args) == 4:
		if !at(2) {
			return
		}
		x.TLS = &TLSClient{ServerName: str(3), Reject: true}
		x.Expected = map[string]any{}
	// tcp.MakeTCPRequestAndExpectEventuallyValidResponse(t, timeouts, gwAddr, serverCert,
	// serverName, useTLS, expected)
	case name == "tcp.MakeTCPRequestAndExpectEventuallyValidResponse" && len(c.Args) == 7:
		if !at(2) {
			return
		}
		x.Kind = "tcp"
		if useTLS, _ := eval(c.Args[5], vars).(bool); useTLS {
			x.TLS = &TLSClient{Trust: str(3), ServerName: str(4)}
		}
		x.Expected = jsonValue(eval(c.Args[6], vars))
	// tcp.ExpectEchoResponse(t, timeouts, gwAddr), udp.ExpectEchoResponse(t, timeout, gwAddr):
	// any backend's answer.
	case (name == "tcp.ExpectEchoResponse" || name == "udp.ExpectEchoResponse") && len(c.Args) == 3:
		if !at(2) {
			return
		}
		x.Kind = strings.TrimSuffix(name, ".ExpectEchoResponse")
		x.Expected = map[string]any{}
	// udp.ExpectEchoResponseFromBackend(t, timeout, gwAddr, expected)
	case name == "udp.ExpectEchoResponseFromBackend" && len(c.Args) == 4:
		if !at(2) {
			return
		}
		x.Kind = "udp"
		x.Expected = jsonValue(eval(c.Args[3], vars))
	case name == "http.MakeRequest" && len(c.Args) == 5:
		if !at(2) {
			return
		}
		x.Expected = jsonValue(eval(c.Args[1], vars))
	// grpc.MakeRequestAndExpectEventuallyConsistentResponse(t, client, timeouts, gwAddr, expected)
	case name == "grpc.MakeRequestAndExpectEventuallyConsistentResponse" && len(c.Args) == 5:
		if !at(3) {
			return
		}
		x.Kind = "grpc"
		x.Expected = jsonValue(eval(c.Args[4], vars))
	case name == "http.MakeRequestAndExpectEventuallyConsistentResponse" && len(c.Args) == 5:
		if !at(3) {
			return
		}
		x.Expected = jsonValue(eval(c.Args[4], vars))
	case len(c.Args) == 3:
		sel, ok := c.Fun.(*ast.SelectorExpr)
		if !ok {
			return
		}
		client, ok := eval(sel.X, vars).(MeshClient)
		if !ok {
			return
		}
		x.Mesh = client.App
		x.Expected = jsonValue(eval(c.Args[1], vars))
	default:
		return
	}
	if x.Expected == nil {
		return
	}
	// The same exchange asserted twice (a request built for a distribution check after the
	// same one was asserted) is one.
	key, _ := json.Marshal(x)
	for _, old := range *w.exchanges {
		if o, _ := json.Marshal(old); string(o) == string(key) {
			return
		}
	}
	*w.exchanges = append(*w.exchanges, x)
}

// distribution records a weighted-distribution check (weight.TestWeightedDistribution(sender,
// weights), or its batch form): the test's latest exchange, which the sender repeats (each
// weight test asserts the request once before sampling it), with the expected shares.
func (w walker) distribution(c *ast.CallExpr, name string, vars env) {
	if name != "weight.TestWeightedDistribution" && name != "weight.TestWeightedDistributionBatch" || len(c.Args) != 2 {
		return
	}
	m, ok := eval(c.Args[1], vars).(Struct)
	if !ok || m.Type != "map" {
		return
	}
	for i := len(*w.exchanges) - 1; i >= 0; i-- {
		x := (*w.exchanges)[i]
		if x.Test != w.test.name || x.Weights != nil {
			continue
		}
		x.Weights = map[string]float64{}
		for k, v := range m.Fields {
			switch v := v.(type) {
			case float64:
				x.Weights[k] = v
			case int64:
				x.Weights[k] = float64(v)
			}
		}
		x.After = *w.after
		*w.exchanges = append(*w.exchanges, x)
		return
	}
}

// encodeValues is url.Values.Encode of an evaluated map literal; a "{name}" placeholder is
// left unescaped for the replay to fill in.
func encodeValues(m Struct) string {
	keys := make([]string, 0, len(m.Fields))
	for k := range m.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	esc := func(s string) string {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			return s
		}
		return url.QueryEscape(s)
	}
	for _, k := range keys {
		var vals []any
		switch v := m.Fields[k].(type) {
		case Struct:
			vals = v.Elems
		default:
			vals = []any{v}
		}
		for _, v := range vals {
			if str, ok := v.(string); ok {
				parts = append(parts, url.QueryEscape(k)+"="+esc(str))
			}
		}
	}
	return strings.Join(parts, "&")
}
