//! Envoy's v3 API as the Envoy release we target publishes it: its message descriptors and the
//! extensions its binary registers.
//!
//! Both are data generated from Envoy itself by `scripts/envoy-api/regenerate.sh`, not written
//! here: the descriptors come from `github.com/envoyproxy/go-control-plane/envoy` at that
//! release (with their protoc-gen-validate annotations, which [`super::constraints`] enforces),
//! and the extension list from a real Envoy's `/server_info` (`node.extensions`), which is what
//! decides whether Envoy finds "a registered implementation" for a `typed_config`.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};
use serde::Deserialize;

/// The Envoy release the data describes.
pub const ENVOY_VERSION: &str = "1.40.0";

pub(crate) const TYPE_PREFIX: &str = "type.googleapis.com/";

static DESCRIPTORS: &[u8] = include_bytes!("../../data/envoy-descriptors.bin");
static EXTENSIONS: &str = include_str!("../../data/envoy-extensions.json");

/// Every message of Envoy's v3 API, its dependencies (`google.protobuf`, `xds`, `udpa`) and
/// `validate.proto`, so that field options carry `validate.rules`.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("model/data/envoy-descriptors.bin is valid")
    })
}

/// The message a type name (`envoy.config.route.v3.Route`) or type URL names.
pub fn message(type_name_or_url: &str) -> Option<MessageDescriptor> {
    pool().get_message_by_name(type_name(type_name_or_url))
}

/// `type.googleapis.com/x.y.Z` (or any `host/x.y.Z`) → `x.y.Z`.
pub fn type_name(url: &str) -> &str {
    url.rsplit_once('/').map_or(url, |(_, name)| name)
}

/// One extension the Envoy binary registers.
#[derive(Debug, Clone, Deserialize)]
pub struct Extension {
    /// `envoy.filters.http.router`.
    pub name: String,
    /// `envoy.filters.http`: the factory category a `typed_config` is looked up in.
    pub category: String,
    /// The config types the factory accepts (`envoy.extensions.filters.http.router.v3.Router`).
    pub type_urls: Vec<String>,
}

/// The registered extensions, indexed the ways Envoy looks them up.
#[derive(Debug)]
pub struct Registry {
    pub envoy: String,
    extensions: Vec<Extension>,
    by_type: HashMap<String, Vec<usize>>,
}

impl Registry {
    /// The extensions of `category` whose config type is `type_name`, as Envoy's
    /// `getFactoryByType` finds them.
    pub fn by_type<'a>(
        &'a self,
        category: &'a str,
        type_name: &str,
    ) -> impl Iterator<Item = &'a Extension> + 'a {
        self.by_type
            .get(type_name)
            .into_iter()
            .flatten()
            .map(|&i| &self.extensions[i])
            .filter(move |e| e.category == category)
    }

    /// Whether an extension of `category` is registered under `name`.
    pub fn has_name(&self, category: &str, name: &str) -> bool {
        self.extensions
            .iter()
            .any(|e| e.category == category && e.name == name)
    }

    /// Whether any extension of any category accepts this config type.
    pub fn registers_type(&self, type_name: &str) -> bool {
        self.by_type.contains_key(type_name)
    }

    /// The categories whose factories accept this config type.
    pub fn categories_of(&self, type_name: &str) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .by_type
            .get(type_name)
            .into_iter()
            .flatten()
            .map(|&i| self.extensions[i].category.as_str())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The config types registered in a category, for "did you mean".
    pub fn types_in<'a>(&'a self, category: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.extensions
            .iter()
            .filter(move |e| e.category == category)
            .flat_map(|e| e.type_urls.iter().map(String::as_str))
    }
}

/// The extensions of the Envoy release we target.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        #[derive(Deserialize)]
        struct File {
            envoy: String,
            extensions: Vec<Extension>,
        }
        let file: File =
            serde_json::from_str(EXTENSIONS).expect("model/data/envoy-extensions.json is valid");
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in file.extensions.iter().enumerate() {
            for t in &e.type_urls {
                by_type.entry(t.clone()).or_default().push(i);
            }
        }
        Registry {
            envoy: file.envoy,
            extensions: file.extensions,
            by_type,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_describes_the_targeted_release() {
        assert_eq!(registry().envoy, ENVOY_VERSION);
        assert!(message("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy").is_some());
        assert!(message("type.googleapis.com/envoy.config.route.v3.Route").is_some());
        assert!(pool().get_extension_by_name("validate.rules").is_some());
        let router = "envoy.extensions.filters.http.router.v3.Router";
        assert_eq!(registry().categories_of(router), vec!["envoy.filters.http"]);
        assert!(!registry().registers_type("envoy.config.route.v3.Route"));
    }
}
