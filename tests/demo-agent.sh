#!/usr/bin/env bash
# The agent half of `make demo`: mesh-echo backends on the examples' EndpointSlice addresses,
# mesh-agent on the examples, real requests through a Gateway listener and the outbound entry,
# and what happened. Everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
CONFIG=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$CONFIG"' EXIT
for d in examples/*/; do
  [ "$d" = "examples/broken/" ] || cp -r "$d" "$CONFIG/"
done

"$BIN/mesh-echo" --endpoints-from "$CONFIG" >/dev/null 2>&1 &
"$BIN/mesh-agent" --config-dir "$CONFIG" --gateway-addr 127.0.0.1 --admin-addr 127.0.0.1:15000 --outbound-addr 127.0.0.1:15001 \
    --bpf off --bpf-pin-dir /nonexistent/mesh-demo 2>/dev/null &
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:15000/ready >/dev/null && break
  sleep 0.1
done
sleep 0.3

show() { printf '  %-58s %s\n' "$1" "$2"; }
pod() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("pod"), d.get("path"))'; }

echo "== Gateway my-gateway (:8080): path, header, query and method routing"
show "GET /details/1" "$(curl -s -H 'Host: bookinfo' http://127.0.0.1:8080/details/1 | pod)"
show "GET /?great=example  magic: foo" "$(curl -s -H 'Host: bookinfo' -H 'magic: foo' 'http://127.0.0.1:8080/?great=example' | pod)"
show "GET /  magic: foo (no query)" "HTTP $(curl -s -o /dev/null -w '%{http_code}' -H 'magic: foo' http://127.0.0.1:8080/)"

echo "== Gateway shared-gateway (:8081), ACME namespaces"
for team in product careers hr; do
  show "GET /$team" "HTTP $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8081/$team)"
done

echo "== Gateway cilium-gw (:8082): filters"
show "GET /cilium-add-a-request-header -> backend saw" "$(curl -s http://127.0.0.1:8082/cilium-add-a-request-header | python3 -c 'import json,sys; print(json.load(sys.stdin)["headers"].get("my-cilium-header-name"))')"
show "GET /multiple -> response headers" "$(curl -s -D - -o /dev/null http://127.0.0.1:8082/multiple | grep -ci '^x-header-add') added"
show "GET /prefix/one -> backend path" "$(curl -s http://127.0.0.1:8082/prefix/one | pod)"
for p in /original-prefix /path-and-host /path-and-status /scheme-and-host; do
  show "GET $p" "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: lab.example' http://127.0.0.1:8082$p)"
done

echo "== Outbound entry (:15001), GAMMA routes of Service echo"
show "GET http://echo/v1" "$(curl -s -x http://127.0.0.1:15001 http://echo/v1 | pod)"
show "GET http://echo.gamma.svc.cluster.local/v2" "$(curl -s -x http://127.0.0.1:15001 http://echo.gamma.svc.cluster.local/v2 | pod)"
show "GET http://echo/v1?delay=1000 (timeout 500ms)" "$(curl -s -w ' HTTP %{http_code}' -x http://127.0.0.1:15001 'http://echo/v1?delay=1000')"
for split in load-balancing canary; do
  counts=$(for _ in $(seq 1 200); do curl -s -x http://127.0.0.1:15001 http://echo/$split | pod; done | cut -d' ' -f1 | sort | uniq -c | tr '\n' ' ')
  show "200 x GET http://echo/$split" "$counts"
done
echo
echo "(mesh-agent admin: http://127.0.0.1:15000/server_info -> $(curl -s http://127.0.0.1:15000/server_info))"

echo
echo "== What the agent runs, and why a request goes where it goes (kubectl mesh)"
echo "\$ kubectl mesh proxy-config routes --admin http://127.0.0.1:15000 --port 8080"
"$BIN/kubectl-mesh" proxy-config routes --admin http://127.0.0.1:15000 --port 8080
echo "\$ kubectl mesh explain http://echo:15001/canary --admin http://127.0.0.1:15000"
"$BIN/kubectl-mesh" explain http://echo:15001/canary --admin http://127.0.0.1:15000 | head -n 8
echo "\$ kubectl mesh proxy-status --admin http://127.0.0.1:15000 -f <the examples>"
"$BIN/kubectl-mesh" proxy-status --admin http://127.0.0.1:15000 -f "$CONFIG" || true
