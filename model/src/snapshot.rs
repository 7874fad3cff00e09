//! The Snapshot: every object of the input, indexed by kind, namespace and name, plus the
//! cross-object indexes the rules need (built once, so no rule scans every route per object).

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use crate::kind::Kind;
use crate::object::Object;
use crate::resource::Resource;

/// The label the API server puts on every Namespace, with its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

type Key = (Kind, Option<String>, String);

pub struct Snapshot {
    objects: Vec<Object>,
    by_key: HashMap<Key, usize>,
    by_kind: HashMap<Kind, Vec<usize>>,
    /// For each object that replaced earlier definitions of itself, those definitions.
    replaced: HashMap<usize, Vec<usize>>,
    index: OnceLock<crate::index::Index>,
    /// Kinds the source holds completely (a cluster's watched kinds): an absent object of such
    /// a kind is known not to exist, even when the snapshot has none of that kind.
    complete: Vec<Kind>,
}

impl Snapshot {
    /// Index objects; a later object with the same kind, namespace and name replaces an earlier
    /// one (as a later `kubectl apply` would), and the pair is remembered for a warning.
    pub fn new(mut objects: Vec<Object>) -> Snapshot {
        crate::load::settle_channel(&mut objects);
        let mut by_key = HashMap::new();
        let mut replaced: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, o) in objects.iter().enumerate() {
            if let Some(k) = o.known {
                if let Some(prev) = by_key.insert((k, o.namespace.clone(), o.name.clone()), i) {
                    let mut earlier = replaced.remove(&prev).unwrap_or_default();
                    earlier.push(prev);
                    replaced.insert(i, earlier);
                }
            }
        }
        let mut by_kind: HashMap<Kind, Vec<usize>> = HashMap::new();
        let mut live: Vec<usize> = by_key.values().copied().collect();
        live.sort_unstable();
        for i in live {
            if let Some(k) = objects[i].known {
                by_kind.entry(k).or_default().push(i);
            }
        }
        Snapshot {
            objects,
            by_key,
            by_kind,
            replaced,
            index: OnceLock::new(),
            complete: Vec::new(),
        }
    }

    /// The objects, in input order, for a new snapshot of changed objects.
    pub fn into_objects(self) -> Vec<Object> {
        self.objects
    }

    /// A snapshot whose source holds every object of `kinds` (a cluster cache, or a part of
    /// one chosen to contain every object a check can look at).
    pub fn complete(objects: Vec<Object>, kinds: &[Kind]) -> Snapshot {
        Snapshot {
            complete: kinds.to_vec(),
            ..Snapshot::new(objects)
        }
    }

    /// Files over a cluster: objects of `overlay` replace those of `base` with the same key.
    pub fn layered(base: Vec<Object>, overlay: Vec<Object>) -> Snapshot {
        let mut all = base;
        all.extend(overlay);
        let snap = Snapshot::new(all);
        let keep: std::collections::HashSet<usize> = snap.by_key.values().copied().collect();
        let objects = snap
            .objects
            .into_iter()
            .enumerate()
            .filter(|(i, o)| o.known.is_none() || keep.contains(i))
            .map(|(_, o)| o)
            .collect();
        Snapshot::new(objects)
    }

    /// Every object, in input order (including unknown kinds and replaced duplicates).
    pub fn objects(&self) -> &[Object] {
        &self.objects
    }

    pub fn get(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<&Object> {
        let ns = if kind.info().namespaced {
            namespace.map(str::to_string)
        } else {
            None
        };
        self.by_key
            .get(&(kind, ns, name.to_string()))
            .map(|&i| &self.objects[i])
    }

    /// The current objects of a kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Object> {
        self.indexed(kind).map(|(_, o)| o)
    }

    /// The current objects of a kind with their positions in [`Snapshot::objects`].
    pub fn indexed(&self, kind: Kind) -> impl Iterator<Item = (usize, &Object)> {
        self.by_kind
            .get(&kind)
            .into_iter()
            .flatten()
            .map(|&i| (i, &self.objects[i]))
    }

    /// The position of an object of this snapshot in [`Snapshot::objects`], in O(1).
    pub fn position(&self, object: &Object) -> Option<usize> {
        let size = std::mem::size_of::<Object>();
        let base = self.objects.as_ptr() as usize;
        let at = object as *const Object as usize;
        let offset = at.checked_sub(base)?;
        let i = offset / size;
        (offset % size == 0 && i < self.objects.len()).then_some(i)
    }

    /// Whether `i` is the current definition of its object (not replaced by a later one).
    pub fn is_current(&self, i: usize) -> bool {
        let o = &self.objects[i];
        match o.known {
            Some(k) => self.by_key.get(&(k, o.namespace.clone(), o.name.clone())) == Some(&i),
            None => true,
        }
    }

    /// Whether the input holds any object of `kind`, or holds all of them. Rules that report a
    /// missing referent skip kinds the input never had: a folder of routes without Services
    /// says nothing about whether the Services exist; a cluster's does.
    pub fn has_kind(&self, kind: Kind) -> bool {
        self.complete.contains(&kind) || self.by_kind.get(&kind).is_some_and(|v| !v.is_empty())
    }

    /// How many objects replaced an earlier definition of themselves.
    pub fn duplicates_count(&self) -> usize {
        self.replaced.len()
    }

    /// Earlier definitions of the same kind, namespace and name that `object` replaced.
    pub fn replaced_by(&self, object: &Object) -> impl Iterator<Item = &Object> {
        self.position(object)
            .and_then(|i| self.replaced.get(&i))
            .into_iter()
            .flatten()
            .map(|&i| &self.objects[i])
    }

    /// Labels of a Namespace, when the input has it, with the `kubernetes.io/metadata.name`
    /// label the API server sets on every Namespace (to its name, whatever was written): a
    /// selector on it is how routes name a namespace, and a file seldom spells it out.
    pub fn namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        match &self.get(Kind::Namespace, None, name)?.resource {
            Resource::Namespace(ns) => {
                let mut labels = ns.metadata.labels.clone().unwrap_or_default();
                labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
                Some(labels)
            }
            _ => None,
        }
    }

    /// Cross-object indexes, built on first use.
    pub fn index(&self) -> &crate::index::Index {
        self.index.get_or_init(|| crate::index::Index::build(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load_str, LoadOptions};
    use crate::object::Source;

    fn objects(text: &str, source: &str) -> Vec<Object> {
        load_str(text, Source::File(source.into()), &LoadOptions::default()).unwrap()
    }

    const SVC: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: PORT}]}\n";

    #[test]
    fn later_definitions_replace_earlier_ones() {
        let mut all = objects(&SVC.replace("PORT", "80"), "one.yaml");
        all.extend(objects(&SVC.replace("PORT", "81"), "two.yaml"));
        let snap = Snapshot::new(all);
        let current = snap.get(Kind::Service, Some("default"), "a").unwrap();
        assert_eq!(current.origin.to_string(), "two.yaml:1");
        assert_eq!(snap.replaced_by(current).count(), 1);
        assert_eq!(snap.of_kind(Kind::Service).count(), 1);
        assert!(!snap.is_current(0) && snap.is_current(1));
    }

    #[test]
    fn files_layer_over_a_cluster() {
        let cluster = objects(
            &(SVC.replace("PORT", "80")
                + "---\n"
                + &SVC.replace("PORT", "90").replace("name: a", "name: b")),
            "cluster",
        );
        let files = objects(&SVC.replace("PORT", "81"), "change.yaml");
        let snap = Snapshot::layered(cluster, files);
        assert_eq!(snap.objects().len(), 2);
        assert_eq!(
            snap.get(Kind::Service, Some("default"), "a")
                .unwrap()
                .origin
                .to_string(),
            "change.yaml:1"
        );
        assert!(snap.get(Kind::Service, Some("default"), "b").is_some());
        assert_eq!(
            snap.duplicates_count(),
            0,
            "the overlay replaces, it is not a duplicate"
        );
    }
}
