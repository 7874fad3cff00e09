//! Generated corpora: realistic mixes of routes, Services, EndpointSlices, Gateways,
//! ReferenceGrants and CiliumEnvoyConfigs, and the adversarial "contended" shape.

use std::fmt::Write as _;

/// One "unit": a Service, its EndpointSlice and two HTTPRoutes, plus, every few units, a
/// Gateway, a GRPCRoute, a ReferenceGrant or a CiliumEnvoyConfig. Roughly 4.4 objects.
pub fn unit(k: usize, out: &mut String) -> usize {
    let ns = format!("team-{}", k / 40);
    let gw = format!("gw-{}", k / 40);
    let mut n = 0;
    if k.is_multiple_of(40) {
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: {gw}\n  namespace: {ns}\nspec:\n  gatewayClassName: cilium\n  listeners:\n  - name: http\n    protocol: HTTP\n    port: 80\n    hostname: \"*.{ns}.example.com\"\n  - name: https\n    protocol: HTTPS\n    port: 443\n    hostname: \"*.{ns}.example.com\"\n    tls:\n      certificateRefs:\n      - name: wildcard\n"
        );
        n += 2;
    }
    let _ = write!(
        out,
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{k}\n  namespace: {ns}\nspec:\n  selector:\n    app: svc-{k}\n  ports:\n  - name: http\n    port: 8080\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-{k}-abc\n  namespace: {ns}\n  labels:\n    kubernetes.io/service-name: svc-{k}\naddressType: IPv4\nports:\n- name: http\n  port: 8080\nendpoints:\n- addresses: [\"127.0.{}.{}\"]\n  conditions:\n    ready: true\n",
        (k / 250) % 250,
        k % 250 + 1
    );
    n += 2;
    for (suffix, path) in [("a", "api"), ("b", "web")] {
        let _ = write!(
            out,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: route-{k}-{suffix}\n  namespace: {ns}\nspec:\n  parentRefs:\n  - name: {gw}\n    sectionName: http\n  hostnames:\n  - app-{k}.{ns}.example.com\n  rules:\n  - matches:\n    - path:\n        type: PathPrefix\n        value: /{path}\n      headers:\n      - name: x-version\n        value: v{k}\n    filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        set:\n        - name: x-route\n          value: route-{k}\n    backendRefs:\n    - name: svc-{k}\n      port: 8080\n      weight: 90\n    - name: svc-{}\n      port: 8080\n      weight: 10\n    timeouts:\n      request: 2s\n",
            k - k % 40
        );
        n += 1;
    }
    if k.is_multiple_of(5) {
        let _ = write!(
            out,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: grpc-{k}\n  namespace: {ns}\nspec:\n  parentRefs:\n  - name: {gw}\n    sectionName: https\n  hostnames:\n  - grpc-{k}.{ns}.example.com\n  rules:\n  - matches:\n    - method:\n        service: pkg.Service{k}\n    backendRefs:\n    - name: svc-{k}\n      port: 8080\n"
        );
        n += 1;
    }
    if k.is_multiple_of(10) {
        let _ = write!(
            out,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata:\n  name: grant-{k}\n  namespace: {ns}\nspec:\n  from:\n  - group: gateway.networking.k8s.io\n    kind: HTTPRoute\n    namespace: team-0\n  to:\n  - group: \"\"\n    kind: Service\n"
        );
        n += 1;
    }
    if k.is_multiple_of(20) {
        let _ = write!(
            out,
            "---\napiVersion: cilium.io/v2\nkind: CiliumEnvoyConfig\nmetadata:\n  name: cec-{k}\n  namespace: {ns}\nspec:\n  services:\n  - name: svc-{k}\n  backendServices:\n  - name: svc-{k}\n  resources:\n  - \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n    name: l\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: l\n          rds:\n            route_config_name: r\n          http_filters:\n          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n  - \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n    name: r\n    virtual_hosts:\n    - name: r\n      domains: [\"*\"]\n      routes:\n      - match:\n          prefix: /\n        route:\n          weighted_clusters:\n            clusters:\n            - name: {ns}/svc-{k}\n              weight: 100\n"
        );
        n += 1;
    }
    n
}

/// The adversarial shape: every route on one listener, without hostnames, with the same match
/// (all in one conflict group), plus one GRPCRoute per 100 routes competing for the listener.
/// A rule that compares routes pairwise is quadratic here.
pub fn contended_unit(k: usize, out: &mut String) -> usize {
    let mut n = 0;
    if k == 0 {
        out.push_str("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: shared\nspec:\n  gatewayClassName: cilium\n  listeners:\n  - name: http\n    protocol: HTTP\n    port: 80\n");
        n += 1;
    }
    let _ = write!(
        out,
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: route-{k}\nspec:\n  parentRefs:\n  - name: shared\n  rules:\n  - matches:\n    - path:\n        type: PathPrefix\n        value: /same\n    backendRefs:\n    - name: svc\n      port: 8080\n"
    );
    n += 1;
    if k.is_multiple_of(100) {
        let _ = write!(
            out,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: grpc-{k}\nspec:\n  parentRefs:\n  - name: shared\n  hostnames:\n  - grpc-{k}.example.com\n  rules:\n  - backendRefs:\n    - name: svc\n      port: 8080\n"
        );
        n += 1;
    }
    n
}

/// YAML text of about `size` objects built from `unit`.
pub fn text(size: usize, unit: fn(usize, &mut String) -> usize) -> String {
    let (mut total, mut k, mut out) = (0, 0, String::new());
    while total < size {
        total += unit(k, &mut out);
        k += 1;
    }
    out
}

/// The "envoy" shape: one CiliumEnvoyConfig per unit, as rich as the configs users write (the
/// HTTP-features seed of the Envoy differential test: a listener with rate limiting and access
/// logs, six routes with retries, rewrites, mirrors, redirects and direct responses, two
/// clusters with circuit breakers, outlier detection, health checks and protocol options), so
/// parsing against Envoy's descriptors and every constraint and semantic check dominate.
pub fn envoy_unit(k: usize, out: &mut String) -> usize {
    const SEED: &str = include_str!("../../model/tests/envoy-seeds/http-features.yaml");
    out.push_str("---\n");
    // Each config in a namespace of its own, so that they do not all claim one frontend.
    let text = SEED
        .replace("name: http-features", &format!("name: http-features-{k}"))
        .replace("namespace: shop", &format!("namespace: shop-{k}"))
        .replace("shop/web", &format!("shop-{k}/web"));
    out.push_str(&text);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    1
}
