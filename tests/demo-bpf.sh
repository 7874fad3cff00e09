#!/usr/bin/env bash
# The eBPF half of `make demo`: mesh-agent's socket load balancer on this machine's kernel,
# attached to a cgroup made for the demo, with clients run inside it. Every address is on
# loopback (ClusterIPs in 127.10.0.0/16, backends on 127.0.20.x), and everything is detached
# and removed on exit. Needs root; elsewhere it says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
if [ "$(id -u)" != 0 ]; then
  echo "(skipped: the eBPF socket load balancer needs root, to load programs and attach them to a cgroup)"
  exit 0
fi
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
if [ -z "$CG2" ]; then
  CG2=/run/kubectl-mesh/cgroupv2
  mkdir -p "$CG2" && mount -t cgroup2 none "$CG2"
fi
CG="$CG2/mesh-demo-$$"
PINS="/sys/fs/bpf/mesh-demo-$$"
CONFIG=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  "$BIN/mesh-agent" --bpf-uninstall --bpf-pin-dir "$PINS" 2>/dev/null || true
  rmdir "$CG" 2>/dev/null || true
  rm -rf "$CONFIG"
}
trap cleanup EXIT
mkdir -p "$CG"

service() { # name clusterIP endpoint...
  local name=$1 ip=$2; shift 2
  local eps=""
  for e in "$@"; do eps="$eps{addresses: ['$e'], conditions: {ready: true}}, "; done
  cat <<YAML
apiVersion: v1
kind: Service
metadata: {name: $name, namespace: shop}
spec: {clusterIP: $ip, ports: [{name: http, port: 80, targetPort: 9080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: $name-1, namespace: shop, labels: {kubernetes.io/service-name: $name}}
addressType: IPv4
ports: [{name: http, port: 9080}]
endpoints: [${eps%, }]
---
YAML
}
{
  service web 127.10.0.10 127.0.20.1 127.0.20.2 127.0.20.3
  service reviews 127.10.0.20 127.0.20.11
  service reviews-v2 127.10.0.21 127.0.20.12
  service ratings 127.10.0.30 127.0.20.21
  cat <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: shop}
spec:
  parentRefs: [{group: '', kind: Service, name: reviews, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: reviews-v2, port: 80}]
  - backendRefs: [{name: reviews, port: 80}]
YAML
} > "$CONFIG/shop.yaml"

"$BIN/mesh-echo" --endpoints-from "$CONFIG" >/dev/null 2>&1 &
"$BIN/mesh-agent" --config-dir "$CONFIG" --admin-addr 127.0.0.1:15100 --outbound-addr 127.0.0.1:15101 \
  --bpf on --cgroup "$CG" --bpf-pin-dir "$PINS" 2>/dev/null &
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:15100/ready >/dev/null && break
  sleep 0.1
done

# Run a command as a process of the demo's cgroup.
in_cgroup() { sh -c 'echo $$ > "$0/cgroup.procs" && shift && exec "$@"' "$CG" _ "$@"; }
show() { printf '  %-64s %s\n' "$1" "$2"; }
pod() { python3 -c 'import json,sys; print(json.load(sys.stdin).get("pod"))'; }

echo "\$ mesh-agent --config-dir ... --bpf on --cgroup $CG --bpf-pin-dir $PINS"
echo "== connects to a ClusterIP from a process in the cgroup: one backend per connection"
counts=$(for _ in $(seq 1 60); do in_cgroup curl -s http://127.10.0.10/ | pod; done | sort | uniq -c | tr '\n' ' ')
show "60 x curl http://127.10.0.10/  (Service shop/web, 3 endpoints)" "$counts"
show "the peer the client saw (getpeername)" "$(in_cgroup curl -s -o /dev/null -w '%{remote_ip}:%{remote_port}' http://127.10.0.10/)"
echo "== a Service with a mesh route: redirected to the agent, routed by the address dialled"
show "curl http://127.10.0.20/v2 -H 'Host: ratings'  (a misleading Host)" "$(in_cgroup curl -s -H 'Host: ratings' http://127.10.0.20/v2 | pod)"
show "curl http://127.10.0.20/v1" "$(in_cgroup curl -s http://127.10.0.20/v1 | pod)"
echo "== a process outside the cgroup is untouched"
show "curl http://127.10.0.10/  (from outside)" "$(curl -s -m 2 http://127.10.0.10/ >/dev/null 2>&1 && echo answered || echo 'not translated: connection refused')"
echo
echo "\$ kubectl mesh proxy-config services --admin http://127.0.0.1:15100"
"$BIN/kubectl-mesh" proxy-config services --admin http://127.0.0.1:15100
echo "\$ kubectl mesh proxy-config services --bpf-pin $PINS -o short   # the kernel's maps, read directly"
"$BIN/kubectl-mesh" proxy-config services --bpf-pin "$PINS" -o short
echo "\$ curl -s http://127.0.0.1:15100/stats/prometheus | grep '^mesh_bpf'"
curl -s http://127.0.0.1:15100/stats/prometheus | grep '^mesh_bpf'
