//! One Kubernetes object as loaded: where it came from, its raw JSON, and its typed form.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::kind::Kind;
use crate::resource::{Resource, SchemaProblem};
use crate::yaml::Lines;

/// Where an object came from. Files carry a path and the line of the document; objects read
/// from a cluster carry the cluster's name and no line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    File(Arc<str>),
    Stdin,
    Cluster(Arc<str>),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => f.write_str(p),
            Source::Stdin => f.write_str("<stdin>"),
            Source::Cluster(c) => write!(f, "cluster {c}"),
        }
    }
}

/// A position: a source and, for files, a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub source: Source,
    pub line: Option<u32>,
}

impl Origin {
    /// The file path, when the origin is a file or stdin (for SARIF and editors).
    pub fn file(&self) -> Option<&str> {
        match &self.source {
            Source::File(p) => Some(p),
            Source::Stdin => Some("<stdin>"),
            Source::Cluster(_) => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}", self.source),
            None => write!(f, "{}", self.source),
        }
    }
}

/// Names an object: `HTTPRoute shop/cart`, or `GatewayClass cilium` when cluster-scoped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// An object of the input, typed when its kind is one we know.
#[derive(Debug, Clone)]
pub struct Object {
    /// `apiVersion` as written, e.g. `gateway.networking.k8s.io/v1beta1`.
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// The namespace, defaulted for namespaced kinds; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Where the document starts.
    pub origin: Origin,
    pub lines: Lines,
    pub raw: Value,
    /// The kind, when it is one the model knows (whatever the version).
    pub known: Option<Kind>,
    pub resource: Resource,
    /// Why the object does not fit its schema, as the API server would say.
    pub problems: Vec<SchemaProblem>,
}

impl Object {
    pub fn reference(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// The origin of a field of this object: same source, the field's own line.
    pub fn origin_of(&self, field: &str) -> Origin {
        Origin {
            source: self.origin.source.clone(),
            line: self.origin.line.map(|_| self.lines.line_of(field)),
        }
    }

    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    /// The version part of `apiVersion`.
    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(_, v)| v)
            .unwrap_or(&self.api_version)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.raw
            .pointer("/metadata/annotations")?
            .get(key)?
            .as_str()
    }

    /// Drop the document tree except what is read once object-scope rules have run:
    /// `metadata.annotations` (suppressions) and `metadata.creationTimestamp` (precedence).
    /// Cross-object rules and the compiler read the typed resource. For processes that keep
    /// many objects (mesh-agent); the field lines stay, so findings still point at lines.
    pub fn slim(&mut self) {
        let mut metadata = serde_json::Map::new();
        for key in ["annotations", "creationTimestamp"] {
            if let Some(v) = self.raw.pointer_mut(&format!("/metadata/{key}")) {
                metadata.insert(key.to_string(), v.take());
            }
        }
        self.raw = serde_json::json!({ "metadata": metadata });
    }

    /// Drop the field lines (keeping where the document starts): once findings are made,
    /// nothing else reads them.
    pub fn forget_lines(&mut self) {
        self.lines = crate::yaml::Lines::Leaf(self.lines.line());
    }

    /// `metadata.creationTimestamp`, which decides route precedence (oldest first). Files
    /// rarely carry it; then the tie goes to namespace/name, as the spec says.
    pub fn creation_timestamp(&self) -> Option<&str> {
        self.raw.pointer("/metadata/creationTimestamp")?.as_str()
    }
}
