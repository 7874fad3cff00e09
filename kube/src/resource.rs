//! One watched or listed object of the API server, as a model [`Object`].

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use mesh_model::kind::KindInfo;
use mesh_model::load::{build, LoadOptions};
use mesh_model::yaml::Lines;
use mesh_model::{Kind, Object, Source};

/// What of Secrets' and ConfigMaps' data is kept in memory.
///
/// The rules need to know which keys exist; only the datapath needs values, and only those of
/// certificates and CA bundles. Everything else a Secret holds (tokens, passwords, Helm
/// releases) never stays in our memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// Key names only, with empty values (mesh-webhook, `analyze`).
    Names,
    /// Also the values a proxy serves: `tls.crt` and `tls.key` of `kubernetes.io/tls`
    /// Secrets and `ca.crt` of any Secret or ConfigMap (mesh-agent).
    Serving,
}

impl Values {
    fn keeps(self, kind: Kind, secret_type: Option<&str>, key: &str) -> bool {
        match self {
            Values::Names => false,
            Values::Serving => {
                key == "ca.crt"
                    || (kind == Kind::Secret
                        && secret_type == Some("kubernetes.io/tls")
                        && matches!(key, "tls.crt" | "tls.key"))
            }
        }
    }
}

/// What a ConfigMap's non-empty `ca.crt` reads as where values are not kept ([`Values::Names`]).
pub const NOT_KEPT: &str = "(not kept)";

/// The API resource of a kind at `version`.
pub fn api_resource(info: &KindInfo, version: &str) -> ApiResource {
    ApiResource {
        group: info.group.to_string(),
        version: version.to_string(),
        api_version: if info.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", info.group)
        },
        kind: info.name.to_string(),
        plural: info.plural.to_string(),
    }
}

/// The newest served version of a kind, or None when its CRD is not installed. Other errors
/// (the API server away, a permission missing) are logged and retried every 2 s: a kind is
/// never taken for absent because of them.
pub async fn served_version(client: &kube::Client, info: &KindInfo) -> Option<ApiResource> {
    for version in info.served {
        let ar = api_resource(info, version);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        loop {
            match api.list(&ListParams::default().limit(1)).await {
                Ok(_) => return Some(ar),
                Err(kube::Error::Api(status)) if status.code == 404 => break,
                Err(e) => {
                    tracing::warn!(kind = info.name, error = %e, "cannot list; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }
    None
}

/// A model object of an object of `ar`, with Secrets' and ConfigMaps' data cut down to what
/// `values` keeps.
///
/// The API server leaves `apiVersion` and `kind` out of the items of a list of built-in
/// kinds (Services, EndpointSlices, Namespaces, ConfigMaps: only custom resources carry them),
/// so they are put back from the resource watched: without them the model cannot tell what the
/// object is.
pub fn to_object(
    ar: &ApiResource,
    kind: Kind,
    mut obj: DynamicObject,
    values: Values,
) -> Option<Object> {
    if obj.types.is_none() {
        obj.types = Some(kube::api::TypeMeta {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
        });
    }
    // What each field manager owns: no rule reads it, and it is most of a stored object's
    // size (kubectl hides it too).
    obj.metadata.managed_fields = None;
    let mut raw = serde_json::to_value(obj).ok()?;
    if matches!(kind, Kind::Secret | Kind::ConfigMap) {
        if let Some(map) = raw.as_object_mut() {
            let secret_type = map.get("type").and_then(|t| t.as_str()).map(str::to_owned);
            // A ConfigMap's text is under `data`; a Secret's base64 is under `data` too
            // (`stringData` is write-only and never comes back, but is dropped all the same).
            let data: serde_json::Map<String, serde_json::Value> = map
                .get("data")
                .and_then(serde_json::Value::as_object)
                .map(|d| {
                    d.iter()
                        .map(|(k, v)| {
                            let keep = values.keeps(kind, secret_type.as_deref(), k);
                            let value = if keep {
                                v.clone()
                            } else if kind == Kind::ConfigMap
                                && k == "ca.crt"
                                && v.as_str().is_some_and(|t| !t.trim().is_empty())
                            {
                                // Whether a CA bundle is there is a rule's business (an empty
                                // one is none); what it holds is not kept.
                                NOT_KEPT.into()
                            } else {
                                "".into()
                            };
                            (k.clone(), value)
                        })
                        .collect()
                })
                .unwrap_or_default();
            map.remove("data");
            map.remove("stringData");
            map.remove("binaryData");
            if kind == Kind::ConfigMap || values == Values::Serving {
                map.insert("data".into(), data.into());
            }
        }
    }
    let o = build(
        raw,
        Lines::flat(0),
        &Source::Cluster("cluster".into()),
        &LoadOptions::default(),
        Vec::new(),
    );
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(raw: serde_json::Value, kind: Kind, values: Values) -> Object {
        let ar = api_resource(kind.info(), "v1");
        to_object(&ar, kind, serde_json::from_value(raw).unwrap(), values).unwrap()
    }

    #[test]
    fn secrets_lose_their_data_before_caching() {
        let raw = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "type": "kubernetes.io/tls", "data": {"tls.key": "c2VjcmV0"}, "stringData": {"x": "secret"}});
        let o = object(raw, Kind::Secret, Values::Names);
        assert!(o.raw.get("data").is_none() && o.raw.get("stringData").is_none());
        assert_eq!(
            o.raw["type"], "kubernetes.io/tls",
            "the type is kept for the rules"
        );
        assert!(
            !format!("{o:?}").contains("c2VjcmV0"),
            "not even in the typed form"
        );
    }

    #[test]
    fn serving_keeps_certificates_and_ca_bundles_only() {
        let tls = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "Y3J0", "tls.key": "a2V5", "password": "aHVudGVyMg=="}});
        let o = object(tls, Kind::Secret, Values::Serving);
        assert_eq!(
            o.raw["data"],
            serde_json::json!({"tls.crt": "Y3J0", "tls.key": "a2V5", "password": ""})
        );
        let opaque = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "o", "namespace": "n"},
            "type": "Opaque", "data": {"tls.key": "a2V5", "ca.crt": "Y2E="}});
        let o = object(opaque, Kind::Secret, Values::Serving);
        assert_eq!(
            o.raw["data"],
            serde_json::json!({"tls.key": "", "ca.crt": "Y2E="})
        );
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ca", "namespace": "n"},
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----", "app.properties": "secret=1"}});
        let o = object(cm, Kind::ConfigMap, Values::Serving);
        assert_eq!(
            o.raw["data"],
            serde_json::json!({"ca.crt": "-----BEGIN CERTIFICATE-----", "app.properties": ""})
        );
    }

    /// A list of Services from the API server: items without apiVersion and kind.
    #[test]
    fn list_items_of_built_in_kinds_are_known_by_the_resource_watched() {
        let item = serde_json::json!({"metadata": {"name": "api", "namespace": "shop"},
            "spec": {"ports": [{"port": 80}]}});
        let o = object(item, Kind::Service, Values::Names);
        assert_eq!(o.known, Some(Kind::Service));
        assert_eq!(
            (o.namespace.as_deref(), o.name.as_str()),
            (Some("shop"), "api")
        );
    }

    #[test]
    fn config_maps_keep_their_keys_not_their_values() {
        let raw = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ca", "namespace": "n"},
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----"}, "binaryData": {"x": "AAAA"}});
        let o = object(raw, Kind::ConfigMap, Values::Names);
        assert_eq!(o.raw["data"], serde_json::json!({"ca.crt": NOT_KEPT}));
        assert!(o.raw.get("binaryData").is_none());
        assert!(!format!("{o:?}").contains("BEGIN"));
        // An empty bundle stays empty: the rules must see that there is none.
        let raw = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ca", "namespace": "n"},
            "data": {"ca.crt": " \n"}});
        let o = object(raw, Kind::ConfigMap, Values::Names);
        assert_eq!(o.raw["data"], serde_json::json!({"ca.crt": ""}));
    }
}
