//! The rule catalog.
//!
//! A rule is a stable code, a level, a title, documentation with a bad and a fixed example,
//! and a pure check over (object, snapshot). The same catalog runs in `kubectl mesh analyze`,
//! in the admission webhook and in the agent, so they cannot disagree. Codes are never reused:
//!
//! | range | what |
//! | --- | --- |
//! | MESH00xx | input and schema: what the API server rejects for any kind |
//! | MESH10xx / 11xx | Gateway and GatewayClass: CEL rules / cross-object |
//! | MESH20xx | HTTPRoute and GRPCRoute schema and CEL rules |
//! | MESH21xx | route references: parents, listeners, backends, ReferenceGrants |
//! | MESH22xx | conflicts and shadowing between routes |
//! | MESH30xx | ReferenceGrant |
//! | MESH50xx | CiliumEnvoyConfig and CiliumClusterwideEnvoyConfig |
//! | MESH90xx | versions and portability notes |
//!
//! Every rule's examples live in `model/fixtures/rules/<CODE>/{bad,good}.yaml`: the docs show
//! them and a test checks that `bad` yields the code and `good` does not.

use crate::diagnostic::{Diagnostic, Level};
use crate::kind::Kind;
use crate::lastgood::{LastGood, LeftOut, Version};
use crate::object::Object;
use crate::snapshot::Snapshot;

mod backend_tls;
mod backendtlspolicy;
mod client_ca;
mod conflicts;
pub mod docs;
mod envoyconfig;
mod fields;
mod gateway;
mod httproute;
mod listenerset;
mod references;
mod schema;
mod versions;

/// Where a rule needs to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The object alone: the webhook can deny on it at admission.
    Object,
    /// Other objects too: the answer depends on what else exists, and on apply order.
    Cluster,
}

pub struct Rule {
    pub code: &'static str,
    /// A CamelCase name, stable like the code.
    pub name: &'static str,
    pub level: Level,
    pub title: &'static str,
    /// Kinds the rule looks at; empty for every object.
    pub kinds: &'static [Kind],
    pub scope: Scope,
    /// The Gateway API status reason the problem produces, if any.
    pub reason: Option<&'static str>,
    /// Why it matters, in a paragraph.
    pub doc: &'static str,
    /// What to do, when a finding does not say more.
    pub hint: &'static str,
    pub bad: &'static str,
    pub good: &'static str,
    pub check: fn(&Object, &Snapshot, &mut Report<'_>),
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.name)
    }
}

/// Collects a rule's findings on one object.
pub struct Report<'a> {
    rule: &'static Rule,
    object: &'a Object,
    out: &'a mut Vec<Diagnostic>,
}

impl Report<'_> {
    /// A finding on `field` with the rule's own hint.
    pub fn at(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let hint = self.rule.hint.to_string();
        self.at_hint(field, message, hint);
    }

    /// A finding on `field` with a hint of its own.
    pub fn at_hint(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let field = field.into();
        self.out.push(Diagnostic {
            code: self.rule.code,
            level: self.rule.level,
            resource: self.object.reference(),
            origin: self.object.origin_of(&field),
            field,
            message: message.into(),
            hint: hint.into(),
            reason: self.rule.reason,
        });
    }
}

macro_rules! fixture {
    ($code:literal, $which:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/rules/",
            $code,
            "/",
            $which,
            ".yaml"
        ))
    };
}
pub(crate) use fixture;

/// Whether a rule reads Secret data (certificates and keys).
pub fn needs_secret_data(rule: &Rule) -> bool {
    gateway::NEEDS_SECRET_DATA.contains(&rule.code)
}

/// Every rule, in code order.
pub fn catalog() -> &'static [&'static Rule] {
    static ALL: std::sync::OnceLock<Vec<&'static Rule>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut v: Vec<&'static Rule> = Vec::new();
        v.extend_from_slice(schema::RULES);
        v.extend_from_slice(fields::RULES);
        v.extend_from_slice(gateway::RULES);
        v.extend_from_slice(client_ca::RULES);
        v.extend_from_slice(backend_tls::RULES);
        v.extend_from_slice(backendtlspolicy::RULES);
        v.extend_from_slice(listenerset::RULES);
        v.extend_from_slice(httproute::RULES);
        v.extend_from_slice(references::RULES);
        v.extend_from_slice(conflicts::RULES);
        v.extend_from_slice(envoyconfig::RULES);
        v.extend_from_slice(versions::RULES);
        v.sort_by_key(|r| r.code);
        v
    })
}

pub fn find(code: &str) -> Option<&'static Rule> {
    catalog()
        .iter()
        .copied()
        .find(|r| r.code.eq_ignore_ascii_case(code))
}

/// The documentation page of a code (`docs/rules.md`, one anchor per code).
pub fn doc_url(code: &str) -> String {
    format!(
        "https://github.com/kubectl-mesh/kubectl-mesh/blob/main/docs/rules.md#{}",
        code.to_ascii_lowercase()
    )
}

/// Annotation that suppresses codes on one object: `"MESH2104,MESH9001"` or `"*"`.
pub const SUPPRESS_ANNOTATION: &str = "kubectl-mesh.io/suppress";

/// Run every rule over every current object of the snapshot. Findings are sorted by origin,
/// then code, so reports are stable; those suppressed by an object's annotation are dropped.
pub fn check(snap: &Snapshot) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let rules = catalog();
    for (i, object) in snap.objects().iter().enumerate() {
        if !snap.is_current(i) {
            continue;
        }
        check_object_with(object, snap, rules, &mut out);
    }
    sort(&mut out);
    out
}

fn sort(findings: &mut [Diagnostic]) {
    findings.sort_by(|a, b| {
        a.origin
            .cmp(&b.origin)
            .then_with(|| a.code.cmp(b.code))
            .then_with(|| a.field.cmp(&b.field))
    });
}

/// Load files and find what `check` finds, without holding every object's document tree at
/// once: object-scope rules run on each file's objects as it is read, the objects are then
/// slimmed (`Object::slim`), and cross-object rules run on the snapshot of slim objects. The
/// snapshot returned is for compiling: its objects no longer carry field lines. For the agent,
/// which reloads whole folders in a long-running process; analyze keeps `check`.
pub fn check_slim(
    source: &crate::load::FileSource,
    opts: &crate::load::LoadOptions,
) -> (Snapshot, Vec<Diagnostic>, Vec<crate::load::LoadError>) {
    let c = check_partial(source, opts, None);
    (c.snapshot, c.findings, c.errors)
}

/// Object-scope Errors the API server accepts: Gateway API gives such an object an outcome
/// instead (every weight 0 answers 500, an unsupported backend kind or an invalid regex makes
/// its share or match fail, conflicting listeners are marked Conflicted, a Service parentRef
/// without `group: ""` is a Gateway reference). The agent serves these objects with that
/// outcome rather than refusing them; every other object-scope Error is what admission refuses.
pub const SERVED_WITH_OUTCOME: &[&str] =
    &["MESH1102", "MESH1103", "MESH2017", "MESH2108", "MESH2203"];

/// Whether a finding makes admission refuse its object (see [`check_partial`]).
pub fn refuses(d: &Diagnostic) -> bool {
    d.level == Level::Error
        && find(d.code).is_some_and(|r| r.scope == Scope::Object)
        && !SERVED_WITH_OUTCOME.contains(&d.code)
}

/// Whether a finding keeps its object out of what mesh-agent serves on a cluster. The API
/// server has admitted the object, so Gateway API's partial validity applies: a finding whose
/// rule names a status reason (`InvalidRouteKinds`, `UnsupportedProtocol`, ...) is served with
/// that outcome and said in the object's status; only what has no such outcome, which the
/// model cannot serve faithfully, is left out (its last accepted version serving).
pub fn refused_on_cluster(d: &Diagnostic) -> bool {
    refuses(d) && find(d.code).is_some_and(|r| r.reason.is_none())
}

/// What a load hands the compiler: the snapshot, every finding, unreadable input, and what was
/// refused (see [`check_partial`]).
pub struct Checked {
    pub snapshot: Snapshot,
    pub findings: Vec<Diagnostic>,
    pub errors: Vec<crate::load::LoadError>,
    pub left_out: Vec<LeftOut>,
    /// Where each of the snapshot's objects was read, in its order: what
    /// `LastGood::remember` keeps.
    pub versions: Vec<Option<Version>>,
}

/// [`check_slim`] with partial validity, for a folder that changes under a running agent.
///
/// With `last_good`, an object whose own (object-scope) rules find an Error, which admission
/// would refuse, is left out of the snapshot and its last good version takes its place; so do
/// the objects of a file that can no longer be read or parsed. Cross-object rules then run on
/// what will be served. The caller remembers the snapshot's objects as the next last good
/// ones once it takes them. Without `last_good`, nothing is refused (what analyze reports).
pub fn check_partial(
    source: &crate::load::FileSource,
    opts: &crate::load::LoadOptions,
    last_good: Option<&LastGood>,
) -> Checked {
    let (object_rules, cluster_rules): (Vec<&'static Rule>, Vec<&'static Rule>) = catalog()
        .iter()
        .copied()
        .partition(|r| r.scope == Scope::Object);
    let alone = Snapshot::new(Vec::new());
    // Findings per object, by position, so that superseded duplicates can be left out below.
    let mut per_object: Vec<Vec<Diagnostic>> = Vec::new();
    let mut versions: Vec<Option<Version>> = Vec::new();
    // Gateway API CRDs among the files settle the channel; objects checked before it was known
    // are then checked again (see `load::settle_channel`, which the findings made here miss).
    let mut declared = None;
    let mut unsettled = false;
    let (objects, errors) = source.objects_with(opts, |objects, text| {
        if opts.channel.is_none() {
            declared = declared.or(crate::crd::channel_of_crds(objects.iter().map(|o| &o.raw)));
            unsettled |= objects
                .iter()
                .any(|o| o.problems.iter().any(|p| p.standard_only));
        }
        for (index, o) in objects.iter_mut().enumerate() {
            let mut found = Vec::new();
            check_object_with(o, &alone, &object_rules, &mut found);
            per_object.push(found);
            if last_good.is_some() {
                versions.push(Some(Version {
                    text: text.clone(),
                    index,
                }));
            }
            o.slim();
        }
    });
    if let (Some(channel), true) = (declared, unsettled) {
        let settled = crate::load::LoadOptions {
            channel: Some(channel),
            ..opts.clone()
        };
        return check_partial(source, &settled, last_good);
    }
    let mut out = Vec::new();
    let mut left_out = Vec::new();
    let (objects, per_object, versions) = match last_good {
        None => (objects, per_object, Vec::new()),
        Some(last) => {
            let mut fallback = last.fallback(opts);
            let mut kept = Vec::with_capacity(objects.len());
            let mut kept_findings = Vec::with_capacity(objects.len());
            let mut kept_versions = Vec::with_capacity(objects.len());
            for ((o, found), version) in objects.into_iter().zip(per_object).zip(versions) {
                let Some(first) = found.iter().find(|d| refuses(d)) else {
                    kept.push(o);
                    kept_findings.push(found);
                    kept_versions.push(version);
                    continue;
                };
                let previous = fallback.object(&o.reference());
                let reason = format!("[{}] {}: {}", first.code, first.field, first.message);
                left_out.push(crate::lastgood::refused(&o, reason, previous.is_some()));
                // The refused version's findings are why: they stay in the report.
                out.extend(found);
                if let Some((p, version)) = previous {
                    kept.push(p);
                    kept_findings.push(Vec::new());
                    kept_versions.push(Some(version));
                }
            }
            for e in &errors {
                let file = &e.origin;
                let previous = fallback.file(file);
                let origin = crate::object::Origin {
                    source: file.clone(),
                    line: e.line,
                };
                left_out.push(crate::lastgood::unreadable(
                    file,
                    &origin,
                    e.message.clone(),
                    previous.len(),
                ));
                for (p, version) in previous {
                    kept.push(p);
                    kept_findings.push(Vec::new());
                    kept_versions.push(Some(version));
                }
            }
            (kept, kept_findings, kept_versions)
        }
    };
    let snap = Snapshot::new(objects);
    for (i, (object, found)) in snap.objects().iter().zip(per_object).enumerate() {
        if !snap.is_current(i) {
            continue;
        }
        out.extend(found);
        check_object_with(object, &snap, &cluster_rules, &mut out);
    }
    sort(&mut out);
    // The findings are made: the field lines and the rules' cross-object index can go.
    let mut objects = snap.into_objects();
    for o in &mut objects {
        o.forget_lines();
    }
    Checked {
        snapshot: Snapshot::new(objects),
        findings: out,
        errors,
        left_out,
        versions,
    }
}

/// Run every rule over one object (the webhook's entry point).
pub fn check_object(object: &Object, snap: &Snapshot) -> Vec<Diagnostic> {
    check_object_where(object, snap, |_| true)
}

/// Run the rules `keep` selects over one object: `rule.scope == Scope::Object` for a webhook
/// that has no view of the cluster.
pub fn check_object_where(
    object: &Object,
    snap: &Snapshot,
    keep: impl Fn(&Rule) -> bool,
) -> Vec<Diagnostic> {
    let rules: Vec<&'static Rule> = catalog().iter().copied().filter(|r| keep(r)).collect();
    let mut out = Vec::new();
    check_object_with(object, snap, &rules, &mut out);
    out
}

fn check_object_with(
    object: &Object,
    snap: &Snapshot,
    rules: &[&'static Rule],
    out: &mut Vec<Diagnostic>,
) {
    let suppressed = object.annotation(SUPPRESS_ANNOTATION).map(|s| {
        s.split(',')
            .map(str::trim)
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    let start = out.len();
    for rule in rules {
        if !rule.kinds.is_empty() && !object.known.is_some_and(|k| rule.kinds.contains(&k)) {
            continue;
        }
        let mut report = Report { rule, object, out };
        (rule.check)(object, snap, &mut report);
    }
    once_per_field(out, start);
    if let Some(codes) = suppressed {
        let mut i = start;
        while i < out.len() {
            if codes
                .iter()
                .any(|c| c == "*" || c.eq_ignore_ascii_case(out[i].code))
            {
                out.remove(i);
            } else {
                i += 1;
            }
        }
    }
}

/// A schema finding (MESH0001, MESH0007: what the CRD refuses, in the API server's words) that
/// a specific rule's Error already names at the same field, or one above or below it, is the same
/// mistake: it is said once, by the rule that explains it.
fn once_per_field(out: &mut Vec<Diagnostic>, start: usize) {
    const GENERIC: &[&str] = &[schema::SCHEMA_INVALID.code, schema::VALIDATION_RULE.code];
    let related = |a: &str, b: &str| {
        a == b
            || b.strip_prefix(a).is_some_and(|r| r.starts_with(['.', '[']))
            || a.strip_prefix(b).is_some_and(|r| r.starts_with(['.', '[']))
    };
    let explained: Vec<bool> = out[start..]
        .iter()
        .map(|d| {
            GENERIC.contains(&d.code)
                && out[start..].iter().any(|e| {
                    !GENERIC.contains(&e.code)
                        && e.level == Level::Error
                        && related(&e.field, &d.field)
                })
        })
        .collect();
    let mut i = 0;
    out.retain(|_| {
        let keep = i < start || !explained[i - start];
        i += 1;
        keep
    });
}

#[cfg(test)]
mod tests;
