//! A Gateway's `spec.addresses`: it listens on the first of its IP addresses the node can bind;
//! one none of whose addresses can be bound is not served; one with an address type mesh-agent
//! cannot honour is not accepted; an IPAddress entry without a value (GatewayAddressEmpty)
//! asks for an address to be assigned, and gets the one Gateways share.

mod support;

use support::{spawn, CLASS};

/// A documentation address (RFC 5737) this node does not have: the agent cannot bind it. (Only
/// binding is tried; nothing is ever sent to it.)
fn foreign(nth: u8) -> String {
    ["203.0.113", "198.51.100", "192.0.2"]
        .iter()
        .map(|net| format!("{net}.{}", 200 + nth))
        .find(|a| std::net::TcpListener::bind((a.as_str(), 0)).is_err())
        .expect("a documentation address that is not this node's")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_listen_on_the_addresses_they_ask_for() {
    let seen = support::backend("127.0.2.141:8080", "app-0", "default").await;
    let gateway_on = |port: u16, name: &str, addresses: &str| {
        format!("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  gatewayClassName: mesh\n  addresses: {addresses}\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{{name: {name}}}]\n  rules: [{{backendRefs: [{{name: app, port: 80}}]}}]\n")
    };
    let gateway = |name: &str, addresses: &str| gateway_on(8449, name, addresses);
    let config = [
        CLASS.to_string(),
        gateway_on(8450, "assigned", "[{type: IPAddress}]"),
        // The first is no address of this node: the next one is taken.
        gateway(
            "static",
            &format!(
                "[{{value: {}}}, {{type: IPAddress, value: 127.0.2.140}}]",
                foreign(1)
            ),
        ),
        gateway("unusable", &format!("[{{value: {}}}]", foreign(2))),
        gateway(
            "fake",
            "[{type: test/fake-invalid-type, value: 'fake address'}]",
        ),
        support::service("default", "app", 80, "127.0.2.141", 8080),
    ]
    .join("---\n");
    let dir = support::folder("gateway-addresses");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let agent = spawn(&dir, &["--gateway-addr", "127.0.2.142"]).await;
    agent.loaded().await;
    let gateways: serde_json::Value = agent.admin_json("/gateways").await;
    let served: Vec<(&str, &str)> = gateways
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["gateway"].as_str().unwrap(),
                g["address"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        served,
        vec![
            ("default/assigned", "127.0.2.142"),
            ("default/static", "127.0.2.140")
        ],
        "{gateways}"
    );
    let (status, body) = support::get("http://127.0.2.140:8449/", "app.example").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let (status, body) = support::get("http://127.0.2.142:8450/", "app.example").await;
    assert_eq!(status, 200, "{body}");
    // /ready says which Gateway is not served, and why.
    let (_, ready) = agent.ready().await;
    assert!(
        ready.contains("Gateway default/unusable") && ready.contains("AddressNotUsable"),
        "{ready}"
    );
    // Nothing answers at the shared address for the Gateways that are not served.
    assert!(
        support::client()
            .get("http://127.0.2.142:8449/")
            .send()
            .await
            .is_err(),
        "no listener at the shared address"
    );
}
