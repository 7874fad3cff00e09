//! The Gateway API CRDs of the release we target, both channels, and the API server's
//! validation with them.
//!
//! `data/gateway-api-crds.json` is generated from the release's own `config/crd` by
//! `scripts/gateway-api/regenerate.sh`: the schemas (types, formats, limits, defaults, list
//! types, CEL rules) are upstream's, not a hand-kept copy, so analyze, the webhook and the agent
//! refuse what kube-apiserver with those CRDs installed refuses, field for field.
//!
//! Which channel a cluster runs is a fact about the cluster: given (`--channel`) or read from
//! the CRDs (their `gateway.networking.k8s.io/channel` annotation). Until it is known, an object
//! is checked against the experimental channel (a superset) and what only the standard channel
//! would refuse is reported apart, as [`ChannelProblems::standard_only`].

mod cel;
mod memo;
mod schema;

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

pub use schema::{Constraint, Schema, Scope, Violation};

/// A Gateway API release channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Standard,
    Experimental,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Standard => "standard",
            Channel::Experimental => "experimental",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "standard" => Some(Channel::Standard),
            "experimental" => Some(Channel::Experimental),
            _ => None,
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Channel, String> {
        Channel::parse(s).ok_or_else(|| {
            format!("{s:?} is not a Gateway API channel: use standard or experimental")
        })
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The annotation Gateway API puts on its CRDs to say which channel they belong to.
pub const CHANNEL_ANNOTATION: &str = "gateway.networking.k8s.io/channel";
/// The annotation with the release (bundle version) of a Gateway API CRD.
pub const BUNDLE_VERSION_ANNOTATION: &str = "gateway.networking.k8s.io/bundle-version";

/// Every kind of one release, per channel.
#[derive(Debug, Deserialize)]
pub struct Catalog {
    /// The release, `v1.6.3`.
    pub release: String,
    channels: Channels,
}

#[derive(Debug, Deserialize)]
struct Channels {
    standard: Vec<CrdKind>,
    experimental: Vec<CrdKind>,
}

/// One CRD.
#[derive(Debug, Deserialize)]
pub struct CrdKind {
    pub kind: String,
    pub group: String,
    pub plural: String,
    pub namespaced: bool,
    pub versions: Vec<CrdVersion>,
}

/// One served version of a CRD and its schema.
#[derive(Debug, Deserialize)]
pub struct CrdVersion {
    pub name: String,
    pub storage: bool,
    pub schema: Schema,
}

/// The embedded catalog, parsed on first use.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut catalog: Catalog =
            serde_json::from_str(include_str!("../../data/gateway-api-crds.json"))
                .expect("the generated CRD catalog parses");
        catalog.mark_standard_nodes();
        catalog
    })
}

impl Catalog {
    /// Mark where each standard-channel schema is the experimental channel's, so an object of
    /// unknown channel is checked twice only where the channels differ.
    fn mark_standard_nodes(&mut self) {
        let Channels {
            standard,
            experimental,
        } = &mut self.channels;
        for kind in standard {
            let Some(exp) = experimental
                .iter()
                .find(|e| e.group == kind.group && e.kind == kind.kind)
            else {
                continue;
            };
            for version in &mut kind.versions {
                if let Some(e) = exp.version(&version.name) {
                    version.schema.mark_same_as(&e.schema);
                }
            }
        }
    }

    pub fn kinds(&self, channel: Channel) -> &[CrdKind] {
        match channel {
            Channel::Standard => &self.channels.standard,
            Channel::Experimental => &self.channels.experimental,
        }
    }

    pub fn kind(&self, channel: Channel, group: &str, kind: &str) -> Option<&CrdKind> {
        self.kinds(channel)
            .iter()
            .find(|k| k.group == group && k.kind == kind)
    }
}

impl CrdKind {
    pub fn version(&self, name: &str) -> Option<&CrdVersion> {
        self.versions.iter().find(|v| v.name == name)
    }

    /// `group/version` for every served version, storage version first.
    pub fn served(&self) -> Vec<String> {
        let mut v: Vec<&CrdVersion> = self.versions.iter().collect();
        v.sort_by_key(|v| !v.storage);
        v.iter()
            .map(|v| format!("{}/{}", self.group, v.name))
            .collect()
    }
}

/// Kubernetes' order of API versions (`v1` > `v2beta1` > `v1beta2` > `v1beta1` > `v1alpha1`;
/// anything else lowest), as a sortable key.
pub fn version_priority(version: &str) -> (u8, u32, u32) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(major) = rest[..digits].parse::<u32>() else {
        return (0, 0, 0);
    };
    let (stage, minor) = match &rest[digits..] {
        "" => return (3, major, 0),
        s => match (s.strip_prefix("beta"), s.strip_prefix("alpha")) {
            (Some(n), _) => (2, n),
            (_, Some(n)) => (1, n),
            _ => return (0, 0, 0),
        },
    };
    match minor.parse::<u32>() {
        Ok(minor) => (stage, major, minor),
        Err(_) => (0, 0, 0),
    }
}

/// The top-level fields every object may have besides `spec` (`status` is the controller's
/// and ignored on create, as a status subresource makes it).
const TOP_LEVEL: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// What the API server says about `object` (a whole object, as written) for one CRD version:
/// unknown top-level fields, then the defaulted `spec` against the schema, CEL rules included.
/// `old` is the object being replaced, for transition rules.
pub fn validate(version: &CrdVersion, object: &Value, old: Option<&Value>) -> Vec<Violation> {
    validate_in(Scope::All, version, object, old)
}

/// As [`validate`], in `scope`.
fn validate_in(
    scope: Scope,
    version: &CrdVersion,
    object: &Value,
    old: Option<&Value>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(map) = object.as_object() {
        for k in map.keys().filter(|k| !TOP_LEVEL.contains(&k.as_str())) {
            out.push(Violation {
                field: k.clone(),
                constraint: Constraint::Unknown,
                message: format!("unknown field \"{k}\""),
            });
        }
    }
    let Some(spec_schema) = version.schema.properties.get("spec") else {
        return out;
    };
    if spec_schema.skipped(scope) {
        return out;
    }
    if object.get("spec").is_none() && version.schema.required.iter().any(|r| r == "spec") {
        out.push(Violation {
            field: "spec".into(),
            constraint: Constraint::Required,
            message: "Required value".into(),
        });
        return out;
    }
    let mut spec = object
        .get("spec")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    spec_schema.apply_defaults(&mut spec);
    let mut old_spec = old.and_then(|o| o.get("spec")).cloned();
    if let Some(o) = &mut old_spec {
        spec_schema.apply_defaults(o);
    }
    out.extend(spec_schema.validate_in(scope, "spec", &spec, old_spec.as_ref()));
    out
}

/// The findings for one object under a channel that may not be known yet.
#[derive(Debug, Default)]
pub struct ChannelProblems {
    /// Refused in the channel checked (experimental, when the channel is not known).
    pub refused: Vec<Violation>,
    /// Refused only by the standard channel's CRDs: experimental fields, values and versions.
    /// Empty when the channel is known.
    pub standard_only: Vec<Violation>,
}

/// Check a Gateway API object of `kind` at `version` under `channel` (`None`: not known).
/// `None` when the kind is no Gateway API CRD; an unserved version is a finding on
/// `apiVersion`.
pub fn check(
    channel: Option<Channel>,
    group: &str,
    kind: &str,
    version: &str,
    object: &Value,
    old: Option<&Value>,
) -> Option<ChannelProblems> {
    let cat = catalog();
    let checked = channel.unwrap_or(Channel::Experimental);
    let not_standard = || {
        Violation {
        field: "kind".into(),
        constraint: Constraint::Enum,
        message: format!(
            "{kind} is not part of the Gateway API {} standard channel; only the experimental channel CRDs serve it",
            cat.release
        ),
    }
    };
    let mut out = ChannelProblems::default();
    let Some(crd) = cat.kind(checked, group, kind) else {
        // Checked against the standard channel, a kind only the experimental one has.
        cat.kind(Channel::Experimental, group, kind)?;
        out.refused.push(not_standard());
        return Some(out);
    };
    let unserved = |crd: &CrdKind, channel: Channel| {
        Violation {
        field: "apiVersion".into(),
        constraint: Constraint::Enum,
        message: format!(
            "{group}/{version} {kind} is not served by the Gateway API {} {channel} channel CRDs; served versions: {}",
            cat.release,
            if crd.versions.is_empty() { "none".to_string() } else { crd.served().join(", ") }
        ),
    }
    };
    let Some(v) = crd.version(version) else {
        out.refused.push(unserved(crd, checked));
        return Some(out);
    };
    out.refused = validate(v, object, old);
    if channel.is_none() {
        match cat
            .kind(Channel::Standard, group, kind)
            .map(|k| (k, k.version(version)))
        {
            Some((_, Some(std_version))) => {
                let experimental: std::collections::HashSet<&Violation> =
                    out.refused.iter().collect();
                // A type error blocked CEL in the experimental check; elsewhere the nodes the
                // channels share found all they can find already.
                let scope = if out.refused.iter().any(|v| v.constraint == Constraint::Type) {
                    Scope::All
                } else {
                    Scope::DifferingFromExperimental
                };
                out.standard_only = validate_in(scope, std_version, object, old)
                    .into_iter()
                    .filter(|v| !experimental.contains(v))
                    .collect();
            }
            Some((k, None)) => out.standard_only.push(unserved(k, Channel::Standard)),
            None => out.standard_only.push(not_standard()),
        }
    }
    Some(out)
}

/// The channel a set of objects declares through Gateway API CRDs among them, if any.
pub fn channel_of_crds<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Option<Channel> {
    objects.into_iter().find_map(|o| {
        (o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            && o.pointer("/spec/group")
                .and_then(Value::as_str)
                .is_some_and(|g| g.starts_with("gateway.networking.")))
        .then(|| {
            o.pointer("/metadata/annotations")
                .and_then(|a| a.get(CHANNEL_ANNOTATION))
                .and_then(Value::as_str)
                .and_then(Channel::parse)
        })
        .flatten()
    })
}

#[cfg(test)]
mod tests;
