//! MESH00xx: what the API server rejects for any kind, found while loading.

use super::{fixture, Report, Rule, Scope};
use crate::diagnostic::Level;
use crate::object::Object;
use crate::resource::ProblemKind;
use crate::snapshot::Snapshot;

pub static RULES: &[&Rule] = &[
    &SCHEMA_INVALID,
    &UNKNOWN_FIELD,
    &UNSERVED_VERSION,
    &NOT_AN_OBJECT,
    &DUPLICATE_KEY,
    &DUPLICATE_OBJECT,
    &VALIDATION_RULE,
    &STANDARD_CHANNEL_ONLY,
];

/// The rule's share of the object's schema problems (see [`ProblemKind`]).
pub(super) fn problems(kind: ProblemKind) -> impl Fn(&Object, &Snapshot, &mut Report<'_>) {
    move |o, _, r| {
        for p in o
            .problems
            .iter()
            .filter(|p| p.kind == kind && !p.standard_only)
        {
            r.at(p.field.clone(), p.message.clone());
        }
    }
}

pub static SCHEMA_INVALID: Rule = Rule {
    code: "MESH0001",
    name: "SchemaInvalid",
    level: Level::Error,
    title: "The object does not fit its kind's schema",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "A field has the wrong type, an enum field has a value the CRD does not list, or a required field is missing. The API server rejects the object, so nothing else about it is checked.",
    hint: "Fix the field's type or value as the message says (`kubectl explain <kind>.<field>` lists what is allowed).",
    bad: fixture!("MESH0001", "bad"),
    good: fixture!("MESH0001", "good"),
    check: |o, s, r| problems(ProblemKind::Invalid)(o, s, r),
};

pub static UNKNOWN_FIELD: Rule = Rule {
    code: "MESH0002",
    name: "UnknownField",
    level: Level::Error,
    title: "A field the schema does not have",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "kubectl validates fields strictly by default and rejects unknown ones; with validation off, the API server silently drops them, so the setting you wrote (often a misspelling such as `hostname` for `hostnames`, or a field of a newer API version) never takes effect.",
    hint: "Check the spelling and nesting of the field against `kubectl explain`; remove it if it belongs to another version.",
    bad: fixture!("MESH0002", "bad"),
    good: fixture!("MESH0002", "good"),
    check: |o, s, r| problems(ProblemKind::UnknownField)(o, s, r),
};

pub static UNSERVED_VERSION: Rule = Rule {
    code: "MESH0003",
    name: "UnservedVersion",
    level: Level::Error,
    title: "apiVersion or kind is not served",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "The API server only accepts the versions a CRD serves. Gateway API v1.5 serves v1 for every standard kind (and v1beta1/v1alpha2 for some); a kind misspelt within a known group (`HttpRoute`) is not found at all.",
    hint: "Use a served apiVersion (normally gateway.networking.k8s.io/v1) and the exact kind name.",
    bad: fixture!("MESH0003", "bad"),
    good: fixture!("MESH0003", "good"),
    check: |o, s, r| problems(ProblemKind::UnservedVersion)(o, s, r),
};

pub static NOT_AN_OBJECT: Rule = Rule {
    code: "MESH0004",
    name: "NotAnObject",
    level: Level::Error,
    title: "Not a Kubernetes object, or no name",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "Every document must have apiVersion, kind and metadata.name (or generateName). kubectl refuses documents without them.",
    hint: "Add apiVersion, kind and metadata.name.",
    bad: fixture!("MESH0004", "bad"),
    good: fixture!("MESH0004", "good"),
    check: |o, s, r| problems(ProblemKind::MissingName)(o, s, r),
};

pub static DUPLICATE_KEY: Rule = Rule {
    code: "MESH0005",
    name: "DuplicateKey",
    level: Level::Warning,
    title: "A key is written twice in one mapping",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "YAML mappings should not repeat a key. kubectl keeps the last value, so the first one is silently ignored: usually a merge or copy-paste mistake (two `matches:` in one rule).",
    hint: "Keep one of the two keys, merging their contents if both were meant.",
    bad: fixture!("MESH0005", "bad"),
    good: fixture!("MESH0005", "good"),
    check: |o, s, r| problems(ProblemKind::DuplicateKey)(o, s, r),
};

pub static DUPLICATE_OBJECT: Rule = Rule {
    code: "MESH0006",
    name: "DuplicateObject",
    level: Level::Warning,
    title: "The same object is defined twice",
    kinds: &[],
    scope: Scope::Cluster,
    reason: None,
    doc: "Two documents with the same kind, namespace and name: applying them both leaves only the later one, which is easy to miss when one file is a copy of another (the article's load-balancing route reused the name `gamma-route` and replaced the earlier route).",
    hint: "Rename one of them, or delete the stale copy.",
    bad: fixture!("MESH0006", "bad"),
    good: fixture!("MESH0006", "good"),
    check: |o, s, r| {
        for earlier in s.replaced_by(o) {
            r.at(
                "metadata.name",
                format!("also defined at {}; that definition is replaced by this one", earlier.origin),
            );
        }
    },
};

pub static VALIDATION_RULE: Rule = Rule {
    code: "MESH0007",
    name: "ValidationRuleFailed",
    level: Level::Error,
    title: "The object breaks one of its CRD's validation rules",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "Gateway API CRDs carry CEL rules (`x-kubernetes-validations`) for what a schema alone cannot say: a TLS listener needs `tls`, a `PathPrefix` value must start with `/`, a filter's type must match the field that is set, a route may have fewer than 128 matches in all. The API server evaluates them on every create and update (transition rules, such as an immutable `controllerName`, only on update) and refuses the object with the rule's message (and a rule that cannot be evaluated on the object, such as one reading a field it does not guard, with the evaluation error: `no such key: certificateRefs evaluating rule: ...`); the model evaluates the same rules of the targeted release, and agrees with kube-apiserver on every Gateway API object of upstream's examples and invalid examples, the rule fixtures and this project's examples (`tests/cluster/tests/cel_parity.rs`). A finding that a more specific rule already explains at the same field is reported once, under that rule.",
    hint: "Change the object as the rule's message says; `kubectl explain` shows the field's documentation.",
    bad: fixture!("MESH0007", "bad"),
    good: fixture!("MESH0007", "good"),
    check: |o, s, r| problems(ProblemKind::Rule)(o, s, r),
};

pub static STANDARD_CHANNEL_ONLY: Rule = Rule {
    code: "MESH0008",
    name: "ExperimentalChannelOnly",
    level: Level::Warning,
    title: "Only the experimental channel's CRDs accept this",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "Gateway API ships two sets of CRDs: the standard channel, and the experimental channel, which adds fields (HTTPRoute `retry`, ExternalAuth filters), values and API versions (TLSRoute v1alpha2, XBackendTrafficPolicy). A cluster runs one of them. When the channel is not known (no `--channel`, and no Gateway API CRD among the inputs whose `gateway.networking.k8s.io/channel` annotation says), objects are checked against the experimental channel, and what the standard channel's CRDs would refuse is this warning instead of an error.",
    hint: "Pass `--channel standard` or `--channel experimental` (or include the cluster's Gateway API CRDs among the inputs); on a standard-channel cluster remove the field or install the experimental CRDs.",
    bad: fixture!("MESH0008", "bad"),
    good: fixture!("MESH0008", "good"),
    check: |o, _, r| {
        for p in o.problems.iter().filter(|p| p.standard_only) {
            r.at(p.field.clone(), format!("the standard channel's CRDs refuse this: {}", p.message));
        }
    },
};
