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

use std::sync::Arc;

use crate::load::{load_str, LoadOptions};
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

/// Where an object's version was read: the file's text (shared by every object of that file
/// version) and the object's position among the file's objects.
#[derive(Debug, Clone)]
pub struct Version {
    pub text: Arc<str>,
    pub index: usize,
}

/// The objects of the last load that was taken, by identity and by file: not the objects
/// themselves but the text they were read from, parsed again only for an object that has to
/// fall back. Keeping the texts costs a fraction of keeping the parsed objects.
#[derive(Default)]
pub struct LastGood {
    by_ref: HashMap<ObjectRef, (Source, Version)>,
}

impl LastGood {
    /// Remember where the objects now in force were read (objects of unknown kinds too: they
    /// keep an unreadable file's contents whole).
    pub fn remember(&mut self, objects: &[Object], versions: Vec<Option<Version>>) {
        self.by_ref.clear();
        for (o, v) in objects.iter().zip(versions) {
            if let Some(v) = v {
                self.by_ref
                    .insert(o.reference(), (o.origin.source.clone(), v));
            }
        }
    }

    /// The last good versions for one load: each remembered file text is parsed at most once,
    /// however many of its objects fall back.
    pub fn fallback<'a>(&'a self, opts: &'a LoadOptions) -> Fallback<'a> {
        Fallback {
            last: self,
            opts,
            parsed: HashMap::new(),
        }
    }
}

/// Last good objects, parsed again from their texts (see [`LastGood::fallback`]).
pub struct Fallback<'a> {
    last: &'a LastGood,
    opts: &'a LoadOptions,
    /// The objects of each text parsed so far, by the text's address (a text is shared by
    /// every object of one file version).
    parsed: HashMap<*const u8, Vec<Object>>,
}

impl Fallback<'_> {
    /// The last good version of `object` and where it was read, if there was one.
    pub fn object(&mut self, object: &ObjectRef) -> Option<(Object, Version)> {
        let (source, version) = self.last.by_ref.get(object)?;
        self.parse(source, version)
    }

    /// The last good objects that came from `file`, in file order, with where they were read.
    pub fn file(&mut self, file: &Source) -> Vec<(Object, Version)> {
        let last = self.last;
        let mut versions: Vec<&Version> = last
            .by_ref
            .values()
            .filter(|(source, _)| source == file)
            .map(|(_, version)| version)
            .collect();
        versions.sort_by_key(|v| v.index);
        versions
            .into_iter()
            .filter_map(|version| self.parse(file, version))
            .collect()
    }

    /// One object of a remembered file version, as the agent holds objects (slim, without
    /// lines).
    fn parse(&mut self, source: &Source, version: &Version) -> Option<(Object, Version)> {
        let opts = self.opts;
        let objects = self.parsed.entry(version.text.as_ptr()).or_insert_with(|| {
            let mut objects = load_str(&version.text, source.clone(), opts).unwrap_or_default();
            for o in &mut objects {
                o.slim();
                o.forget_lines();
            }
            objects
        });
        Some((objects.get(version.index)?.clone(), version.clone()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{FileSource, Input};

    #[test]
    fn a_refused_version_falls_back_to_the_text_it_was_read_from() {
        let dir = std::env::temp_dir().join(format!("mesh-lastgood-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let route = |path: &str| {
            format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: default}}\nspec:\n  rules: [{{matches: [{{path: {{type: PathPrefix, value: '{path}'}}}}]}}]\n")
        };
        std::fs::write(dir.join("r.yaml"), route("/good")).unwrap();
        let source = FileSource {
            inputs: vec![Input::Path(dir.clone())],
        };
        let opts = LoadOptions::default();
        let mut last = LastGood::default();
        let first = crate::rules::check_partial(&source, &opts, Some(&last));
        last.remember(first.snapshot.objects(), first.versions);
        // A version admission would refuse: the last good one is parsed again and serves.
        std::fs::write(dir.join("r.yaml"), route("bad")).unwrap();
        let second = crate::rules::check_partial(&source, &opts, Some(&last));
        assert_eq!(second.left_out.len(), 1);
        assert!(second.left_out[0].kept_last_good);
        let kept = &second.snapshot.objects()[0];
        let crate::resource::Resource::HttpRoute(spec, _) = &kept.resource else {
            panic!("{kept:?}");
        };
        let value = spec.rules.as_ref().unwrap()[0].matches.as_ref().unwrap()[0]
            .path
            .as_ref()
            .unwrap()
            .value
            .clone();
        assert_eq!(value.as_deref(), Some("/good"));
        // Remembered again from the old text, so a third refusal still finds it.
        last.remember(second.snapshot.objects(), second.versions);
        std::fs::write(dir.join("r.yaml"), "not: [yaml\n").unwrap();
        let third = crate::rules::check_partial(&source, &opts, Some(&last));
        assert_eq!(third.snapshot.objects().len(), 1, "{:?}", third.left_out);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
