//! Findings: what a rule says about one field of one object.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::object::{ObjectRef, Origin};

/// How bad a finding is. Ordered from most to least severe, as istioctl orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl Level {
    /// Whether this level is at or above `threshold` in severity.
    pub fn at_least(self, threshold: Level) -> bool {
        self <= threshold
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "Error",
            Level::Warning => "Warning",
            Level::Info => "Info",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Level::Error),
            "warning" | "warn" => Ok(Level::Warning),
            "info" => Ok(Level::Info),
            _ => Err(format!("unknown level {s:?}: use error, warning or info")),
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub level: Level,
    pub resource: ObjectRef,
    /// The field path, e.g. `spec.rules[0].backendRefs[0]`; empty for the whole object.
    pub field: String,
    pub origin: Origin,
    pub message: String,
    pub hint: String,
    /// The Gateway API status reason the problem would produce, when there is one.
    pub reason: Option<&'static str>,
}

impl Diagnostic {
    /// Where the documentation of this finding's rule lives.
    pub fn doc_url(&self) -> String {
        crate::rules::doc_url(self.code)
    }
}

impl fmt::Display for Diagnostic {
    /// `Error [MESH2104] HTTPRoute shop/cart (routes.yaml:14) spec.rules[0].backendRefs[0]: ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {} ({})",
            self.level, self.code, self.resource, self.origin
        )?;
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}
