//! An Envoy v3 admin `/config_dump`, from a live admin API (mesh-agent, or Envoy as Cilium,
//! Istio or Envoy Gateway run it) or a saved file, split into the sections the tables show.
//!
//! The dump is read as JSON without a schema: the resources are Envoy's own protos in proto3
//! JSON, and reading them by field name keeps every Envoy version readable.

use serde_json::Value;

/// Where a configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An admin API base URL, e.g. `http://127.0.0.1:15000`.
    Admin(String),
    /// A saved `/config_dump` (with `?include_eds` to have endpoints).
    File(String),
    /// `pod/NAME` or `node/NAME`: the mesh-agent there, reached through the API server.
    Target(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Admin(url) => write!(f, "admin API {url}"),
            Source::File(path) => write!(f, "file {path}"),
            Source::Target(t) => write!(f, "{t}"),
        }
    }
}

impl Source {
    /// An `--admin` argument as a base URL: `http://` is added to a bare `host:port`.
    pub fn admin_url(arg: &str) -> String {
        let arg = arg.trim_end_matches('/');
        if arg.starts_with("http://") || arg.starts_with("https://") {
            arg.to_string()
        } else {
            format!("http://{arg}")
        }
    }

    /// `--admin URL`, `--file PATH`, or a `pod/NAME` / `node/NAME` argument; a bare word
    /// that exists as a file is a file, else an admin address.
    pub fn parse(arg: &str) -> Source {
        if arg.starts_with("pod/") || arg.starts_with("node/") {
            Source::Target(arg.to_string())
        } else if !arg.contains("://") && std::path::Path::new(arg).exists() {
            Source::File(arg.to_string())
        } else {
            Source::Admin(Source::admin_url(arg))
        }
    }
}

/// One secret of the dump, with whether it is in use or still warming.
#[derive(Debug, Clone)]
pub struct Secret {
    pub name: String,
    pub status: &'static str,
    pub secret: Value,
}

impl Secret {
    /// The secret as `-o json` and `diff` show it.
    pub fn json(&self) -> Value {
        serde_json::json!({"name": self.name, "status": self.status, "secret": self.secret})
    }
}

/// The sections of a config dump.
#[derive(Debug, Clone, Default)]
pub struct Dump {
    /// `envoy.config.listener.v3.Listener`s, static and dynamic (active).
    pub listeners: Vec<Value>,
    /// `RouteConfiguration`s: from RDS, static, and inline in a listener's HCM.
    pub route_configs: Vec<Value>,
    pub clusters: Vec<Value>,
    /// `ClusterLoadAssignment`s (Envoy dumps them only with `?include_eds`).
    pub endpoints: Vec<Value>,
    pub secrets: Vec<Secret>,
    /// `/clusters?format=json` of a live proxy: each host's health and outlier state.
    pub hosts: Option<Value>,
    /// The dump as read, for `-o json|yaml` of `all`.
    pub raw: Value,
}

impl Dump {
    /// Every section's resources with the field that names them: (kind, key, resources).
    pub fn resources(&self) -> [(&'static str, &'static str, Vec<Value>); 5] {
        [
            ("listener", "name", self.listeners.clone()),
            ("route-config", "name", self.route_configs.clone()),
            ("cluster", "name", self.clusters.clone()),
            ("endpoints", "cluster_name", self.endpoints.clone()),
            (
                "secret",
                "name",
                self.secrets.iter().map(Secret::json).collect(),
            ),
        ]
    }
}

/// The resource of a dump entry: `{"listener": {...}}`, `{"active_state": {"listener": ..}}`.
fn entry<'v>(e: &'v Value, field: &str) -> Option<&'v Value> {
    e.get(field)
        .or_else(|| e.pointer(&format!("/active_state/{field}")))
}

fn list<'v>(section: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> {
    section
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

impl Dump {
    /// Split a `/config_dump` body. Errors say what is missing, for a file that is not a dump.
    pub fn from_json(raw: Value) -> Result<Dump, String> {
        let configs = raw
            .get("configs")
            .and_then(Value::as_array)
            .ok_or("not an Envoy config dump: no top-level \"configs\" list (save the output of the admin API's /config_dump?include_eds)")?;
        let mut d = Dump::default();
        for section in configs {
            let kind = section.get("@type").and_then(Value::as_str).unwrap_or("");
            let kind = kind.rsplit('.').next().unwrap_or(kind);
            match kind {
                "ListenersConfigDump" => {
                    for e in
                        list(section, "static_listeners").chain(list(section, "dynamic_listeners"))
                    {
                        if let Some(l) = entry(e, "listener") {
                            d.listeners.push(l.clone());
                        }
                    }
                }
                "RoutesConfigDump" => {
                    for e in list(section, "static_route_configs")
                        .chain(list(section, "dynamic_route_configs"))
                    {
                        if let Some(r) = e.get("route_config") {
                            d.route_configs.push(r.clone());
                        }
                    }
                }
                "ClustersConfigDump" => {
                    for e in list(section, "static_clusters")
                        .chain(list(section, "dynamic_active_clusters"))
                        .chain(list(section, "dynamic_warming_clusters"))
                    {
                        if let Some(c) = e.get("cluster") {
                            d.clusters.push(c.clone());
                        }
                    }
                }
                "EndpointsConfigDump" => {
                    for e in list(section, "static_endpoint_configs")
                        .chain(list(section, "dynamic_endpoint_configs"))
                    {
                        if let Some(c) = e.get("endpoint_config") {
                            d.endpoints.push(c.clone());
                        }
                    }
                }
                "SecretsConfigDump" => {
                    for (key, status) in [
                        ("static_secrets", "ACTIVE"),
                        ("dynamic_active_secrets", "ACTIVE"),
                        ("dynamic_warming_secrets", "WARMING"),
                    ] {
                        for e in list(section, key) {
                            d.secrets.push(Secret {
                                name: e
                                    .get("name")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                                status,
                                secret: e.get("secret").cloned().unwrap_or(Value::Null),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        // Route configurations inline in a listener's HCM, when the dump does not list them.
        for l in &d.listeners {
            for hcm in http_managers(l) {
                if let Some(rc) = hcm.get("route_config") {
                    let name = rc.get("name");
                    if !d.route_configs.iter().any(|r| r.get("name") == name) {
                        d.route_configs.push(rc.clone());
                    }
                }
            }
        }
        // Clusters with endpoints inline (STATIC, STRICT_DNS) when the dump has no EDS section.
        for c in &d.clusters {
            if let Some(la) = c.get("load_assignment") {
                let name = c.get("name");
                if !d.endpoints.iter().any(|e| e.get("cluster_name") == name) {
                    let mut la = la.clone();
                    la["cluster_name"] = name.cloned().unwrap_or(Value::Null);
                    d.endpoints.push(la);
                }
            }
        }
        d.raw = raw;
        Ok(d)
    }
}

/// The HTTP connection managers of a listener's filter chains.
pub fn http_managers(listener: &Value) -> impl Iterator<Item = &Value> {
    chains(listener).flat_map(|c| {
        list(c, "filters").filter_map(|f| {
            let t = f.pointer("/typed_config/@type").and_then(Value::as_str)?;
            t.ends_with("HttpConnectionManager")
                .then(|| &f["typed_config"])
        })
    })
}

/// A listener's filter chains, the default chain last.
pub fn chains(listener: &Value) -> impl Iterator<Item = &Value> {
    list(listener, "filter_chains").chain(listener.get("default_filter_chain"))
}

/// The client admin APIs are asked with (10 s for a whole answer).
pub fn admin_client() -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

/// GET `url` of an admin API as JSON. The error names the URL and what to check, with the
/// answer's status when there was one (a caller may say more about a 404).
pub fn admin_json(
    client: &reqwest::blocking::Client,
    url: &str,
) -> Result<Value, (Option<reqwest::StatusCode>, String)> {
    let resp = client.get(url).send().map_err(|e| {
        (
            None,
            format!("{url}: {e} (is the admin API listening there?)"),
        )
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err((Some(status), format!("{url}: HTTP {status}")));
    }
    resp.json()
        .map_err(|e| (Some(status), format!("{url}: not JSON: {e}")))
}

/// Read a configuration: an admin API is asked for `/config_dump?include_eds` and
/// `/clusters?format=json`; a file is read as a saved dump; a `pod/NAME` or `node/NAME` target
/// is reached through the cluster (`crate::target`).
pub fn load(source: &Source, global: &crate::cli::Global) -> Result<Dump, String> {
    match source {
        Source::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            let raw: Value = serde_json::from_str(&text).map_err(|e| {
                format!("{path}: not JSON: {e} (save the admin API's /config_dump?include_eds)")
            })?;
            Dump::from_json(raw).map_err(|e| format!("{path}: {e}"))
        }
        Source::Admin(base) => {
            let client = admin_client()?;
            let get = |path: &str| admin_json(&client, &format!("{base}{path}")).map_err(|e| e.1);
            let mut dump = Dump::from_json(get("/config_dump?include_eds")?)
                .map_err(|e| format!("{base}/config_dump: {e}"))?;
            dump.hosts = get("/clusters?format=json").ok();
            Ok(dump)
        }
        Source::Target(t) => crate::target::ask(global, t, |url| {
            load(&Source::Admin(url.to_string()), global)
        }),
    }
}
