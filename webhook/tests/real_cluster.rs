//! mesh-webhook behind a real kube-apiserver (tests/cluster): installed from
//! `manifests/webhook` (the one difference: a `url` clientConfig to the binary running here
//! instead of the in-cluster Service), watching with its ServiceAccount's identity under the
//! manifests' RBAC, and called by the API server on `kubectl apply` and `kubectl delete`.
//!
//! What a user sees is what is checked: kubectl's exit status, the API server's denial with our
//! message, `Warning:` lines, and the object as stored.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use mesh_cluster::{run, Cluster, Options, Output};
use serde_json::Value;

mod support;

use support::root;

/// The webhook configurations of `manifests/webhook`, pointed at `url` and trusting `ca`.
fn configurations(url: &str, ca_bundle: &str) -> String {
    let text = std::fs::read_to_string(root().join("manifests/webhook/30-webhooks.yaml")).unwrap();
    let mut out = text.replace("caBundle: \"\"", &format!("caBundle: \"{ca_bundle}\""));
    for path in ["/validate", "/mutate"] {
        let service = format!("service:\n      name: mesh-webhook\n      namespace: mesh-system\n      path: {path}\n      port: 443");
        assert!(
            out.contains(&service),
            "the manifests' clientConfig changed shape"
        );
        out = out.replace(&service, &format!("url: \"{url}{path}\""));
    }
    out
}

/// What the cluster holds before the webhook starts.
const PREDATING: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: early, labels: {team: early}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: early}\nspec: {ports: [{port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: api-1, namespace: early, labels: {kubernetes.io/service-name: api}}\naddressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [198.19.0.1], conditions: {ready: true}}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: early}\nspec:\n  gatewayClassName: cilium\n  listeners: [{name: http, protocol: HTTP, port: 80}]\n";

/// A control plane with mesh-webhook installed from the manifests and ready.
struct Installed {
    cluster: Cluster,
    webhook: Option<support::Running>,
    client: reqwest::blocking::Client,
}

impl Installed {
    /// Start a control plane with the given CRD sets, then the webhook as its ServiceAccount,
    /// and register it. Returns once the webhook has listed every kind it can.
    fn start(crd_sets: &[&str], name: &str) -> Installed {
        let cluster = Cluster::start(Options::default()).expect("the control plane starts");
        cluster.install_crd_sets(crd_sets).unwrap();
        // Objects older than the webhook: it learns them from its first list, not by watch.
        cluster.kubectl(&["apply", "-f", "-"], PREDATING).unwrap();
        cluster.install_webhook_rbac().unwrap();
        let dir = support::tempdir(name);
        let ca_bundle = support::certs(&dir);
        let kubeconfig = cluster.kubeconfig_for(&cluster.webhook, "webhook").unwrap();
        let webhook = support::serve(name, dir, &[], &[("KUBECONFIG", &kubeconfig)]);
        let client = reqwest::blocking::Client::builder()
            .add_root_certificate(support::ca(&webhook.dir))
            .tls_built_in_root_certs(false)
            .build()
            .unwrap();
        let ready = (0..400).any(|_| {
            let ok = client
                .get(format!("{}/readyz", webhook.url))
                .send()
                .is_ok_and(|r| r.status() == 200);
            if !ok {
                std::thread::sleep(Duration::from_millis(100));
            }
            ok
        });
        assert!(ready, "the webhook never listed every kind under its RBAC");
        cluster
            .kubectl(
                &["apply", "--server-side", "-f", "-"],
                &configurations(&webhook.url, &ca_bundle),
            )
            .unwrap();
        let installed = Installed {
            cluster,
            webhook: Some(webhook),
            client,
        };
        // The API server takes a moment to load a new configuration; until it has, objects
        // are admitted without being reviewed at all. Wait until a route to a missing parent
        // is denied by us (a server-side dry run: nothing is stored).
        let probe = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: probe, namespace: early}\nspec:\n  parentRefs: [{name: no-such-gateway}]\n";
        installed.until(
            &["apply", "--dry-run=server", "-f", "-"],
            probe,
            "denied by the webhook",
            denied_by_us,
        );
        installed
    }

    fn kubectl(&self, args: &[&str], stdin: &str) -> Output {
        self.cluster.kubectl_output(args, stdin).unwrap()
    }

    /// Run `kubectl ARGS` until `done` says its output is the awaited one (the webhook's cache
    /// follows the cluster by watch, a few milliseconds behind), and return that output.
    fn until(
        &self,
        args: &[&str],
        stdin: &str,
        what: &str,
        done: impl Fn(&Output) -> bool,
    ) -> Output {
        let mut last = None;
        for _ in 0..100 {
            let out = self.kubectl(args, stdin);
            if done(&out) {
                return out;
            }
            last = Some(out);
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("kubectl {}: never {what}; last: {last:#?}", args.join(" "));
    }

    fn metric(&self, name: &str) -> String {
        let url = &self.webhook.as_ref().unwrap().url;
        let text = self
            .client
            .get(format!("{url}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Denied by us, with `text` in the message.
fn denied_with(out: &Output, text: &str) -> bool {
    denied_by_us(out) && out.stderr.contains(text)
}

fn denied_by_us(out: &Output) -> bool {
    !out.success
        && out
            .stderr
            .contains("admission webhook \"validate.mesh.kubectl-mesh.io\" denied the request")
}

/// The objects of a YAML file, as written.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    mesh_model::yaml::parse_documents(&text)
        .unwrap()
        .into_iter()
        .map(|d| d.value)
        .filter(|v| !v.is_null())
        .collect()
}

/// The namespaces objects name for themselves; empty when none does (a file meant for the
/// namespace kubectl is given).
fn own_namespaces(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .filter_map(|o| o["metadata"]["namespace"].as_str().map(str::to_string))
        .collect()
}

/// The objects the Gateway API CRDs' schema or CEL refuse (kind and name), as analyze judges
/// them.
fn schema_refusals(docs: &[Value]) -> Vec<(String, String)> {
    docs.iter()
        .filter_map(|o| {
            let (group, version) = o["apiVersion"].as_str()?.rsplit_once('/')?;
            let kind = o["kind"].as_str()?;
            let found = mesh_model::crd::check(
                Some(mesh_model::crd::Channel::Experimental),
                group,
                kind,
                version,
                o,
                None,
            )?;
            let name = o["metadata"]["name"].as_str()?;
            (!found.refused.is_empty()).then(|| (kind.to_string(), name.to_string()))
        })
        .collect()
}

/// What objects refer to and do not hold themselves, as YAML for a cluster to have:
/// the Services its routes and Envoy configs send to (unless `code` is about a missing backend)
/// and the Gateways its routes attach to (unless it is about a missing parent). `default_ns`
/// is the namespace of objects that name none.
fn referents(docs: &[Value], default_ns: &str, code: &str) -> String {
    #[derive(Default)]
    struct Wanted {
        services: BTreeSet<(String, String, u64)>,
        gateways: BTreeSet<(String, String)>,
    }
    fn core_service(b: &Value) -> bool {
        b["group"].as_str().unwrap_or("").is_empty()
            && b["kind"].as_str().unwrap_or("Service") == "Service"
    }
    fn walk(v: &Value, ns: &str, out: &mut Wanted) {
        match v {
            Value::Object(m) => {
                let backends = ["backendRefs", "services", "backendServices"]
                    .iter()
                    .filter_map(|k| m.get(*k).and_then(Value::as_array))
                    .flatten()
                    .chain(m.get("backendRef"));
                for b in backends.filter(|b| core_service(b)) {
                    if let Some(name) = b["name"].as_str() {
                        let bns = b["namespace"].as_str().unwrap_or(ns).to_string();
                        let port = b["port"].as_u64().unwrap_or(80);
                        out.services.insert((bns, name.to_string(), port));
                    }
                }
                m.values().for_each(|v| walk(v, ns, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, ns, out)),
            _ => {}
        }
    }
    let mut wanted = Wanted::default();
    let mut held = BTreeSet::new();
    for o in docs {
        let ns = o["metadata"]["namespace"].as_str().unwrap_or(default_ns);
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        held.insert(format!("{}/{ns}/{name}", o["kind"].as_str().unwrap_or("")));
        walk(&o["spec"], ns, &mut wanted);
        for p in o["spec"]["parentRefs"].as_array().into_iter().flatten() {
            if p["kind"].as_str().unwrap_or("Gateway") == "Gateway" {
                let pns = p["namespace"].as_str().unwrap_or(ns).to_string();
                let pname = p["name"].as_str().unwrap_or("").to_string();
                wanted.gateways.insert((pns, pname));
            }
        }
    }
    let mut out = String::new();
    if code != "MESH2104" {
        for (ns, name, port) in wanted.services {
            if !held.contains(&format!("Service/{ns}/{name}")) {
                out += &format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{ports: [{{port: {port}}}]}}\n");
            }
        }
    }
    if code != "MESH2101" {
        for (ns, name) in wanted.gateways {
            if !held.contains(&format!("Gateway/{ns}/{name}")) {
                out += &format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  gatewayClassName: cilium\n  listeners: [{{name: http, protocol: HTTP, port: 80}}]\n");
            }
        }
    }
    out
}

fn create_namespaces<'a>(i: &Installed, names: impl IntoIterator<Item = &'a str>) {
    for ns in names {
        let out = i.kubectl(&["create", "namespace", ns], "");
        assert!(
            out.success || out.stderr.contains("AlreadyExists"),
            "{out:?}"
        );
    }
}

#[test]
fn the_api_server_calls_the_webhook_and_kubectl_shows_its_verdicts() {
    let mut i = Installed::start(&["experimental", "cilium"], "real-cluster");
    // The examples are written for a cluster running Cilium, whose GatewayClass exists.
    let class = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: cilium}\nspec: {controllerName: io.cilium/gateway-controller}\n";
    i.until(&["apply", "-f", "-"], class, "admitted", |o| o.success);

    // Its RBAC lets it read, not write.
    let write = run(
        i.cluster.kubectl_as(&i.cluster.webhook),
        &["create", "secret", "generic", "x", "-n", "default"],
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(write.contains("forbidden"), "{write}");

    // A route to a Service and a Gateway that predate the webhook: admitted at once, without
    // a warning (the Service's endpoints are known too). The API server leaves apiVersion and
    // kind out of a list's items of built-in kinds; the webhook once dropped them all from
    // its cache, and denied such routes until each Service changed.
    let early = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: early}\nspec:\n  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: api, port: 80}]}]\n";
    let out = i.kubectl(&["apply", "-f", "-"], early);
    assert!(out.success && out.warnings().is_empty(), "{out:?}");

    broken_examples_are_denied_or_warned(&i);
    clean_examples_are_allowed_without_warnings(&i);
    verdicts_follow_the_cluster_by_watch(&i);
    a_second_config_on_one_frontend_warns_and_defaults_land_in_the_object(&i);

    // A route in a namespace, then the webhook stops: the validating entry fails closed
    // (failurePolicy Fail), deleting (its own entry, failurePolicy Ignore) goes through, and
    // the namespace is finalized.
    let route = "apiVersion: v1\nkind: Namespace\nmetadata: {name: doomed}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: doomed}\nspec:\n  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]\n";
    i.until(&["apply", "-f", "-"], route, "admitted", |o| o.success);
    drop(i.webhook.take());
    let refused = i.kubectl(
        &["apply", "-f", "-"],
        &route.replace("name: r,", "name: r2,"),
    );
    assert!(
        !refused.success && refused.stderr.contains("failed calling webhook"),
        "{refused:?}"
    );
    let deleted = i.kubectl(&["delete", "namespace", "doomed", "--timeout=90s"], "");
    assert!(
        deleted.success,
        "a webhook that is down blocks deletion: {deleted:?}"
    );
}

/// Each file of `examples/broken`, applied as a user would: its expected finding comes back
/// from the API server as our denial (an Error, naming the field) or as a kubectl warning (a
/// Warning); `--dry-run=server` is denied the same and stores nothing.
fn broken_examples_are_denied_or_warned(i: &Installed) {
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(root().join("examples/broken"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in &files {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let code = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("# expect: ").map(str::to_string))
            .unwrap();
        let rule = mesh_model::rules::find(&code).unwrap();
        if mesh_model::rules::needs_secret_data(rule) {
            // The webhook drops Secrets' data as it arrives and never keeps keys or
            // certificates (webhook/src/cache.rs); analyze, which reads files, checks them.
            continue;
        }
        let file = path.display().to_string();
        // A file that names no namespace goes to one of its own, as `kubectl apply -n` does.
        let docs = documents(path);
        let own = own_namespaces(&docs);
        let target = format!("broken-{name}");
        let mut args = vec!["apply", "--server-side", "-f", &file];
        if own.is_empty() {
            create_namespaces(i, [target.as_str()]);
            args.extend(["-n", &target]);
        } else {
            create_namespaces(i, own.iter().map(String::as_str));
        }
        // What the example refers to but leaves out exists in a cluster, unless the example
        // is about its absence.
        let ns = if own.is_empty() {
            target.as_str()
        } else {
            "default"
        };
        let context = referents(&docs, ns, &code);
        if !context.is_empty() {
            let out = i.kubectl(&["apply", "-f", "-"], &context);
            assert!(out.success, "{out:?}");
        }
        let marker = format!("[{code}]");
        let refused_by_schema = schema_refusals(&docs);
        if !refused_by_schema.is_empty() {
            // The CRD's own CEL refuses the object before any validating webhook is called
            // (analyze reports these too, as the API server words them: tests/cluster's
            // cel_parity): the user sees the API server's refusal.
            let out = i.kubectl(&args, "");
            assert!(!out.success, "{file}: {out:?}");
            for (kind, name) in &refused_by_schema {
                assert!(
                    out.stderr
                        .contains(&format!("The {kind} \"{name}\" is invalid")),
                    "{file}: the API server refuses {kind} {name} itself: {out:?}"
                );
            }
        } else if rule.level == mesh_model::Level::Error {
            // The objects the finding does not concern are created on the first pass; the
            // broken one is denied on every pass, with the finding once the others are cached.
            let out = i.until(&args, "", &format!("denied with {code}"), |o| {
                denied_with(o, &marker)
            });
            assert!(
                out.stderr.contains(&format!("{marker} spec."))
                    || out.stderr.contains(&format!("{marker} metadata.")),
                "{file}: the field is named: {}",
                out.stderr
            );
            let mut dry = args.clone();
            dry.push("--dry-run=server");
            let out = i.kubectl(&dry, "");
            assert!(
                denied_with(&out, &marker),
                "{file} --dry-run=server: {out:?}"
            );
        } else {
            let out = i.until(&args, "", &format!("warned with {code}"), |o| {
                o.success && o.warned(&marker)
            });
            assert!(
                out.warned(&format!("{marker} spec."))
                    || out.warned(&format!("{marker} metadata.")),
                "{file}: the field is named: {}",
                out.stderr
            );
        }
        let mut delete = vec!["delete", "-f", &file, "--ignore-not-found", "--wait=false"];
        if own.is_empty() {
            delete.extend(["-n", &target]);
        }
        let out = i.kubectl(&delete, "");
        assert!(out.success, "{out:?}");
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
}

/// Every clean example applied to the cluster, and then applied again: admitted, and the
/// second time (everything they refer to cached) without a single warning.
fn clean_examples_are_allowed_without_warnings(i: &Installed) {
    let mut files = Vec::new();
    for dir in mesh_model::testing::CLEAN_EXAMPLES {
        for entry in std::fs::read_dir(root().join("examples").join(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.sort();
    let mut docs: Vec<Value> = files.iter().flat_map(|f| documents(f)).collect();
    let namespaces = own_namespaces(&docs);
    create_namespaces(i, namespaces.iter().map(String::as_str));
    // The examples' EndpointSlices give loopback addresses, for mesh-agent serving them on
    // this machine; an API server refuses those, so here they move off loopback.
    docs.iter_mut().for_each(mesh_cluster::off_loopback);
    let all: String = docs.iter().map(|o| format!("{o}\n")).collect();
    // Objects come in file order, so a route may arrive before the Service it sends to; a
    // later pass admits it.
    i.until(&["apply", "-f", "-"], &all, "admitted", |o| o.success);
    let again = i.kubectl(&["apply", "-f", "-"], &all);
    assert!(again.success, "{again:?}");
    assert!(
        again.warnings().is_empty(),
        "warnings on clean examples: {}",
        again.stderr
    );
    let cached = i.metric("mesh_webhook_cache_objects");
    assert!(!cached.is_empty() && !cached.ends_with(" 0"), "{cached}");
}

/// The verdicts change as the cluster does: objects created, deleted, permissions granted and
/// revoked reach the webhook by watch; deletions are warned about, never refused.
fn verdicts_follow_the_cluster_by_watch(i: &Installed) {
    create_namespaces(i, ["shop", "backends"]);
    let base = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: shop-gateway, namespace: shop}\nspec:\n  gatewayClassName: cilium\n  listeners: [{name: web, protocol: HTTP, port: 80}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: cart-v2, namespace: shop}\nspec: {ports: [{port: 8080}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: pricing, namespace: backends}\nspec: {ports: [{port: 8080}]}\n";
    assert!(i.kubectl(&["apply", "-f", "-"], base).success);
    let route = |parent: &str, backend_ns: &str, backend: &str| {
        format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: cart, namespace: shop}}\nspec:\n  parentRefs: [{{name: {parent}}}]\n  rules: [{{backendRefs: [{{name: {backend}, namespace: {backend_ns}, port: 8080}}]}}]\n")
    };
    let apply = ["apply", "-f", "-"];

    // A missing parent, with the Gateway that does exist named.
    i.until(
        &apply,
        &route("shop-gatway", "shop", "cart-v2"),
        "denied with MESH2101",
        |o| {
            denied_with(
                o,
                "[MESH2101] spec.parentRefs[0]: Gateway shop/shop-gatway not found",
            )
        },
    );

    // A backend created later arrives by watch and the verdict changes.
    let missing = route("shop-gateway", "shop", "cart-v3");
    i.until(&apply, &missing, "denied with MESH2104", |o| {
        denied_with(
            o,
            "[MESH2104] spec.rules[0].backendRefs[0]: Service shop/cart-v3 not found",
        )
    });
    let cart_v3 = "apiVersion: v1\nkind: Service\nmetadata: {name: cart-v3, namespace: shop}\nspec: {ports: [{port: 8080}]}\n";
    assert!(i.kubectl(&apply, cart_v3).success);
    i.until(&apply, &missing, "admitted", |o| o.success);

    // A cross-namespace backend needs a ReferenceGrant; one created later is seen by watch.
    let cross = route("shop-gateway", "backends", "pricing");
    i.until(&apply, &cross, "denied with MESH2107", |o| {
        denied_with(o, "[MESH2107]")
    });
    let grant = "apiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata: {name: shop-routes, namespace: backends}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}]\n  to: [{group: \"\", kind: Service}]\n";
    assert!(i.kubectl(&apply, grant).success);
    i.until(&apply, &cross, "admitted", |o| o.success);

    // Deleting the grant is allowed, with a warning naming the route that still needs it
    // (shown first by a server-side dry run, which the webhook answers as it would the real
    // deletion, once the admitted route is in its cache); and the revoked permission is
    // revoked at once: the route, re-applied, is denied.
    let delete_grant = ["delete", "referencegrant", "shop-routes", "-n", "backends"];
    let dry = [&delete_grant[..], &["--dry-run=server"]].concat();
    i.until(&dry, "", "warned about HTTPRoute shop/cart", |o| {
        o.success && o.warned("HTTPRoute shop/cart")
    });
    let out = i.kubectl(&delete_grant, "");
    assert!(out.success, "{out:?}");
    assert!(out.warned("HTTPRoute shop/cart"), "{out:?}");
    i.until(&apply, &cross, "denied again with MESH2107", |o| {
        denied_with(o, "[MESH2107]")
    });

    // Deleting a Gateway with attached routes warns too.
    let out = i.kubectl(&["delete", "gateway", "shop-gateway", "-n", "shop"], "");
    assert!(out.success, "{out:?}");
    assert!(
        out.warned("still referenced by HTTPRoute shop/cart"),
        "{out:?}"
    );
}

/// A second CiliumEnvoyConfig for a Service another one already redirects: Cilium accepts
/// both, so the webhook admits it with a warning naming the rival; the namespaces its Service
/// references leave out are filled in by the mutating webhook and stored (Cilium's CRD has no
/// such default).
fn a_second_config_on_one_frontend_warns_and_defaults_land_in_the_object(i: &Installed) {
    let text =
        std::fs::read_to_string(root().join("examples/cilium/helloworld-traffic-shifting.yaml"))
            .unwrap();
    let cec = text
        .split("\n---")
        .find(|d| d.contains("kind: CiliumEnvoyConfig"))
        .unwrap();
    let canary = cec
        .replace(
            "name: envoy-lb-listener\n  namespace: default",
            "name: helloworld-canary\n  namespace: default",
        )
        .replace("\n      namespace: default", "");
    assert!(
        canary.contains("name: helloworld-canary"),
        "the example changed shape"
    );
    let out = i.kubectl(&["apply", "-f", "-"], &canary);
    assert!(out.success, "{out:?}");
    assert!(
        out.warned("[MESH5008] spec.services[0]: Service default/helloworld is also claimed by CiliumEnvoyConfig default/envoy-lb-listener"),
        "{out:?}"
    );
    let stored = i.kubectl(
        &[
            "get",
            "ciliumenvoyconfig",
            "helloworld-canary",
            "-n",
            "default",
            "-o",
            "json",
        ],
        "",
    );
    let stored: Value = serde_json::from_str(&stored.stdout).unwrap();
    assert_eq!(
        stored["spec"]["services"][0]["namespace"], "default",
        "{stored}"
    );
    assert_eq!(
        stored["spec"]["backendServices"][1]["namespace"], "default",
        "{stored}"
    );
    assert!(
        i.kubectl(
            &[
                "delete",
                "ciliumenvoyconfig",
                "helloworld-canary",
                "-n",
                "default"
            ],
            ""
        )
        .success
    );
}

/// Without Cilium's CRDs (a cluster that runs another Gateway API implementation), the webhook
/// still becomes ready and checks Gateway API objects.
#[test]
fn without_ciliums_crds_the_webhook_still_checks_gateway_api() {
    let i = Installed::start(&["standard"], "no-cilium");
    create_namespaces(&i, ["shop"]);
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: cart, namespace: shop}\nspec:\n  parentRefs: [{name: nope}]\n";
    i.until(&["apply", "-f", "-"], route, "denied with MESH2101", |o| {
        denied_with(o, "[MESH2101]")
    });
}

/// Until every kind's initial list is in, the webhook is not ready (no API server at all).
#[test]
fn not_ready_until_the_cache_syncs() {
    let dir = support::tempdir("unsynced");
    support::certs(&dir);
    // An API server address where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'http://{closed}'}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n")).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(support::ca(&dir))
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let w = support::serve("unsynced", dir, &[], &[("KUBECONFIG", &kubeconfig)]);
    for _ in 0..5 {
        let r = client.get(format!("{}/readyz", w.url)).send().unwrap();
        assert_eq!(r.status(), 503);
        assert!(r.text().unwrap().contains("not synced"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let alive = client.get(format!("{}/healthz", w.url)).send().unwrap();
    assert_eq!(alive.status(), 200, "alive, just not ready");
}
