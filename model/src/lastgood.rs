//! Partial validity for sources that change under a running agent: the last good version of
//! every object.
//!
//! The API server refuses an object that fails its schema or CEL rules and keeps serving the
//! version it has; Envoy keeps a resource it NACKs. A folder of YAML has no such gate, so the
//! agent applies it here: an object whose new version has an object-scope Error finding (what
//! admission would refuse), or whose file can no longer be read or parsed, keeps its last good
//! version, and the change is reported. Nothing else in the folder is held back by it.
//! Cross-object problems are not refusals: they give the object its spec outcome in the Plan
//! (a backend's share answers 500, a route is not attached), so permission changes such as a
//! deleted ReferenceGrant take effect at once.

use std::collections::HashMap;

use crate::object::{Object, ObjectRef, Origin, Source};

/// What a load did not take as written, and why. One per refused object or unreadable file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeftOut {
    /// `HTTPRoute shop/cart`, or the file when a whole file could not be read.
    pub what: String,
    /// Where the refused version is (file and line).
    pub origin: String,
    /// The first reason (a finding or a load error).
    pub reason: String,
    /// Whether the previous version still serves (`false`: the object is not served at all).
    pub kept_last_good: bool,
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let outcome = if self.kept_last_good {
            "its last good version serves"
        } else {
            "not served"
        };
        write!(
            f,
            "{} ({}) {outcome}: {}",
            self.what, self.origin, self.reason
        )
    }
}

/// The objects of the last load that was taken, by identity and by file.
#[derive(Default)]
pub struct LastGood {
    by_ref: HashMap<ObjectRef, Object>,
    by_file: HashMap<Source, Vec<ObjectRef>>,
}

impl LastGood {
    /// The last good version of `object`, if there was one.
    pub fn get(&self, object: &ObjectRef) -> Option<&Object> {
        self.by_ref.get(object)
    }

    /// The last good objects that came from `file`.
    pub fn from_file(&self, file: &Source) -> Vec<Object> {
        self.by_file
            .get(file)
            .into_iter()
            .flatten()
            .filter_map(|r| self.by_ref.get(r))
            .filter(|o| &o.origin.source == file)
            .cloned()
            .collect()
    }

    /// Remember the objects now in force (objects of unknown kinds too: they cost little and
    /// keep an unreadable file's contents whole). Taken, not copied: once compiled, the
    /// snapshot's objects are only needed here.
    pub fn remember(&mut self, objects: Vec<Object>) {
        self.by_ref.clear();
        self.by_file.clear();
        for o in objects {
            let r = o.reference();
            self.by_file
                .entry(o.origin.source.clone())
                .or_default()
                .push(r.clone());
            self.by_ref.insert(r, o);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_ref.is_empty()
    }
}

/// A report line for an object refused by its own findings.
pub fn refused(object: &Object, reason: String, kept_last_good: bool) -> LeftOut {
    LeftOut {
        what: object.reference().to_string(),
        origin: object.origin.to_string(),
        reason,
        kept_last_good,
    }
}

/// A report line for a file that could not be read or parsed.
pub fn unreadable(file: &Source, origin: &Origin, reason: String, kept: usize) -> LeftOut {
    LeftOut {
        what: match kept {
            0 => format!("file {file}"),
            n => format!("file {file} ({n} objects)"),
        },
        origin: origin.to_string(),
        reason,
        kept_last_good: kept > 0,
    }
}
