//! The Snapshot: every object of the input, indexed by kind, namespace and name, plus the
//! cross-object indexes the rules need (built once, so no rule scans every route per object).

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use crate::kind::Kind;
use crate::object::Object;
use crate::resource::Resource;

type Key = (Kind, Option<String>, String);

pub struct Snapshot {
    objects: Vec<Object>,
    by_key: HashMap<Key, usize>,
    by_kind: HashMap<Kind, Vec<usize>>,
    /// Objects shadowed by a later definition of the same kind/namespace/name.
    duplicates: Vec<(usize, usize)>,
    index: OnceLock<crate::index::Index>,
}

impl Snapshot {
    /// Index objects; a later object with the same kind, namespace and name replaces an earlier
    /// one (as a later `kubectl apply` would), and the pair is remembered for a warning.
    pub fn new(objects: Vec<Object>) -> Snapshot {
        let mut by_key = HashMap::new();
        let mut duplicates = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            if let Some(k) = o.known {
                if let Some(prev) = by_key.insert((k, o.namespace.clone(), o.name.clone()), i) {
                    duplicates.push((prev, i));
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
            duplicates,
            index: OnceLock::new(),
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

    /// Whether the input holds any object of `kind`. Rules that report a missing referent skip
    /// kinds the input never had: a folder of routes without Services says nothing about
    /// whether the Services exist.
    pub fn has_kind(&self, kind: Kind) -> bool {
        self.by_kind.get(&kind).is_some_and(|v| !v.is_empty())
    }

    /// Pairs (shadowed, winner) of objects defined twice.
    pub fn duplicates(&self) -> impl Iterator<Item = (&Object, &Object)> {
        self.duplicates
            .iter()
            .map(|&(a, b)| (&self.objects[a], &self.objects[b]))
    }

    /// Labels of a Namespace, when the input has it.
    pub fn namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        match &self.get(Kind::Namespace, None, name)?.resource {
            Resource::Namespace(ns) => Some(ns.metadata.labels.clone().unwrap_or_default()),
            _ => None,
        }
    }

    /// Cross-object indexes, built on first use.
    pub fn index(&self) -> &crate::index::Index {
        self.index.get_or_init(|| crate::index::Index::build(self))
    }
}
