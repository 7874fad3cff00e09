//! A CRD's OpenAPI v3 schema and the API server's checks over it: defaults, types, formats,
//! limits, list types, unknown fields, then the CEL rules (see [`super::cel`]).
//!
//! The order and the wording follow kube-apiserver's: unknown fields are what strict field
//! validation refuses, defaults are applied before anything is validated (CEL rules read
//! defaulted values), and a type error keeps the CEL rules from running at all.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::path::Trail;

/// One node of a structural schema: the subset of `JSONSchemaProps` CRDs may use.
#[derive(Debug, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    #[serde(rename = "type")]
    pub ty: Option<String>,
    pub format: Option<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, Schema>,
    #[serde(default)]
    pub required: Vec<String>,
    pub items: Option<Box<Schema>>,
    pub additional_properties: Option<Box<AdditionalProperties>>,
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<Value>>,
    pub pattern: Option<String>,
    pub max_length: Option<u64>,
    pub min_length: Option<u64>,
    pub max_items: Option<u64>,
    pub min_items: Option<u64>,
    pub max_properties: Option<u64>,
    pub min_properties: Option<u64>,
    pub maximum: Option<f64>,
    pub minimum: Option<f64>,
    #[serde(default)]
    pub exclusive_maximum: bool,
    #[serde(default)]
    pub exclusive_minimum: bool,
    #[serde(default)]
    pub nullable: bool,
    pub default: Option<Value>,
    #[serde(default)]
    pub one_of: Vec<Schema>,
    #[serde(default)]
    pub any_of: Vec<Schema>,
    #[serde(default)]
    pub all_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
    #[serde(rename = "x-kubernetes-list-type")]
    pub list_type: Option<String>,
    #[serde(rename = "x-kubernetes-list-map-keys", default)]
    pub list_map_keys: Vec<String>,
    #[serde(rename = "x-kubernetes-preserve-unknown-fields", default)]
    pub preserve_unknown_fields: bool,
    #[serde(rename = "x-kubernetes-int-or-string", default)]
    pub int_or_string: bool,
    #[serde(rename = "x-kubernetes-embedded-resource", default)]
    pub embedded_resource: bool,
    #[serde(rename = "x-kubernetes-validations", default)]
    pub validations: Vec<super::cel::ValidationRule>,
    #[serde(skip)]
    derived: Derived,
}

/// What is computed from a node rather than declared by it; never part of its equality.
#[derive(Debug, Default)]
struct Derived {
    pattern: OnceLock<Option<Regex>>,
    has_defaults: OnceLock<bool>,
    /// The standard channel's node is the experimental channel's node at the same place, word
    /// for word: what it finds in a value, the experimental check has found already.
    same_as_experimental: bool,
}

impl PartialEq for Derived {
    fn eq(&self, _: &Derived) -> bool {
        true
    }
}

/// `additionalProperties`: a map's value schema, or `true`/`false`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum AdditionalProperties {
    Allowed(bool),
    Schema(Box<Schema>),
}

/// How much of a schema a check covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Only the nodes of a standard-channel schema that differ from the experimental channel's:
    /// what is left to find once a value has been checked against the experimental channel
    /// (a type error found there must have blocked CEL there too, so the caller checks all).
    DifferingFromExperimental,
}

/// What a value broke, as the API server classifies it (`field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Constraint {
    /// A field the schema does not have (strict field validation).
    Unknown,
    Required,
    Type,
    Enum,
    Pattern,
    Format,
    MaxLength,
    MinLength,
    MaxItems,
    MinItems,
    MaxProperties,
    MinProperties,
    Maximum,
    Minimum,
    Duplicate,
    /// `oneOf`/`anyOf`/`not` combinations.
    Combination,
    /// An `x-kubernetes-validations` CEL rule.
    Rule,
}

/// One finding of the API server's validation, at a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Violation {
    pub field: String,
    pub constraint: Constraint,
    /// As kube-apiserver writes it after the path: `Unsupported value: "x": supported values: ...`.
    pub message: String,
}

impl Schema {
    fn pattern(&self) -> Option<&Regex> {
        self.derived
            .pattern
            .get_or_init(|| self.pattern.as_deref().and_then(|p| Regex::new(p).ok()))
            .as_ref()
    }

    /// The schema of a property, following `additionalProperties` for maps.
    pub(super) fn property(&self, key: &str) -> Option<&Schema> {
        self.properties
            .get(key)
            .or(match self.additional_properties.as_deref() {
                Some(AdditionalProperties::Schema(s)) => Some(s),
                _ => None,
            })
    }

    /// Apply the schema's defaults to `value`, as the API server does before validating:
    /// a missing (or null, unless nullable) property with a default gets it, and defaults
    /// apply again inside what was defaulted. A null property without a default is dropped.
    pub fn apply_defaults(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                if map.values().any(Value::is_null) {
                    map.retain(|k, v| {
                        !v.is_null() || self.properties.get(k).is_none_or(|p| p.nullable)
                    });
                }
                // Only the properties that have a default somewhere below them: most of a
                // large schema has none, and an object is defaulted on every check.
                for (key, prop) in &self.properties {
                    if !prop.has_defaults() {
                        continue;
                    }
                    match map.get_mut(key) {
                        Some(v) => prop.apply_defaults(v),
                        None => {
                            if let Some(d) = &prop.default {
                                let mut d = d.clone();
                                prop.apply_defaults(&mut d);
                                map.insert(key.clone(), d);
                            }
                        }
                    }
                }
                if let Some(AdditionalProperties::Schema(s)) = self.additional_properties.as_deref()
                {
                    if s.has_defaults() {
                        for (k, v) in map.iter_mut() {
                            if !self.properties.contains_key(k) {
                                s.apply_defaults(v);
                            }
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = self.items.as_deref().filter(|s| s.has_defaults()) {
                    for v in items {
                        s.apply_defaults(v);
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether this node or any below it declares a default.
    fn has_defaults(&self) -> bool {
        *self.derived.has_defaults.get_or_init(|| {
            self.default.is_some()
                || self.properties.values().any(Schema::has_defaults)
                || self.items.as_deref().is_some_and(Schema::has_defaults)
                || matches!(self.additional_properties.as_deref(),
                    Some(AdditionalProperties::Schema(s)) if s.has_defaults())
        })
    }

    /// Every structural finding for `value` (already defaulted), the CEL rules included unless a
    /// type error blocks them.
    pub fn validate(&self, base: &str, value: &Value, old: Option<&Value>) -> Vec<Violation> {
        self.validate_in(Scope::All, base, value, old)
    }

    /// As [`Schema::validate`], in `scope`.
    pub(super) fn validate_in(
        &self,
        scope: Scope,
        base: &str,
        value: &Value,
        old: Option<&Value>,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut trail = Trail::default();
        self.walk(scope, base, value, &mut trail, &mut out);
        if !out.iter().any(|v| v.constraint == Constraint::Type) {
            let mut trail = Trail::default();
            super::cel::check(scope, base, self, value, old, &mut trail, &mut out);
        }
        out
    }

    /// Whether `scope` leaves this node (and all below it) out.
    pub(super) fn skipped(&self, scope: Scope) -> bool {
        scope == Scope::DifferingFromExperimental && self.derived.same_as_experimental
    }

    /// Mark the nodes of this standard-channel schema that are the same as `experimental`'s at
    /// the same place, so [`Scope::DifferingFromExperimental`] can leave them out.
    pub(super) fn mark_same_as(&mut self, experimental: &Schema) {
        if *self == *experimental {
            self.derived.same_as_experimental = true;
            return;
        }
        for (k, s) in &mut self.properties {
            if let Some(e) = experimental.properties.get(k) {
                s.mark_same_as(e);
            }
        }
        if let (Some(s), Some(e)) = (&mut self.items, &experimental.items) {
            s.mark_same_as(e);
        }
        if let (Some(AdditionalProperties::Schema(s)), Some(AdditionalProperties::Schema(e))) = (
            self.additional_properties.as_deref_mut(),
            experimental.additional_properties.as_deref(),
        ) {
            s.mark_same_as(e);
        }
    }

    fn walk<'a>(
        &self,
        scope: Scope,
        base: &str,
        value: &'a Value,
        trail: &mut Trail<'a>,
        out: &mut Vec<Violation>,
    ) {
        if self.skipped(scope) {
            return;
        }
        let at = |trail: &Trail<'_>| trail.render(base);
        let mut push = |trail: &Trail<'_>, constraint, message: String| {
            out.push(Violation {
                field: at(trail),
                constraint,
                message,
            })
        };
        if value.is_null() {
            return;
        }
        if let Some(expected) = self.type_error(value) {
            push(
                trail,
                Constraint::Type,
                wrong_type(value, &at(trail), expected),
            );
            return;
        }
        if let Some(allowed) = &self.allowed {
            if !allowed.contains(value) {
                let list = allowed
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                push(
                    trail,
                    Constraint::Enum,
                    format!("Unsupported value: {value}: supported values: {list}"),
                );
            }
        }
        match value {
            Value::String(s) => self.string(base, s, value, trail, &mut push),
            Value::Number(n) => self.number(base, n, value, trail, &mut push),
            Value::Array(items) => {
                self.array(base, items, trail, &mut push);
                if let Some(item) = &self.items {
                    for (i, v) in items.iter().enumerate() {
                        trail.index(i);
                        if v.is_null() && !item.nullable {
                            // A null property is as good as absent; a null item is a value of
                            // the wrong type.
                            if let Some(ty) = &item.ty {
                                let field = at(trail);
                                out.push(Violation {
                                    message: wrong_type(v, &field, ty),
                                    field,
                                    constraint: Constraint::Type,
                                });
                            }
                        } else {
                            item.walk(scope, base, v, trail, out);
                        }
                        trail.pop();
                    }
                }
            }
            Value::Object(map) => {
                let n = map.values().filter(|v| !v.is_null()).count() as u64;
                if let Some(max) = self.max_properties.filter(|m| n > *m) {
                    push(
                        trail,
                        Constraint::MaxProperties,
                        format!("Too many: {n}: must have at most {max} items"),
                    );
                }
                if let Some(min) = self.min_properties.filter(|m| n < *m) {
                    push(
                        trail,
                        Constraint::MinProperties,
                        format!("Too few: {n}: must have at least {min} items"),
                    );
                }
                for r in &self.required {
                    if map.get(r).is_none_or(Value::is_null) {
                        out.push(Violation {
                            field: crate::path::join(&at(trail), r),
                            constraint: Constraint::Required,
                            message: "Required value".into(),
                        });
                    }
                }
                let open = self.preserve_unknown_fields
                    || self.embedded_resource
                    || matches!(
                        self.additional_properties.as_deref(),
                        Some(AdditionalProperties::Allowed(true))
                    );
                for (k, v) in map {
                    trail.key(k);
                    match self.property(k) {
                        Some(s) => s.walk(scope, base, v, trail, out),
                        None if !open && !v.is_null() => out.push(Violation {
                            field: at(trail),
                            constraint: Constraint::Unknown,
                            message: format!("unknown field \"{}\"", at(trail)),
                        }),
                        None => {}
                    }
                    trail.pop();
                }
            }
            _ => {}
        }
        self.combinations(base, value, trail, out);
    }

    /// The expected type, when `value` is not of it.
    fn type_error(&self, value: &Value) -> Option<&str> {
        if self.int_or_string {
            return (!(value.is_string() || value.is_i64() || value.is_u64()))
                .then_some("integer or string");
        }
        let ty = self.ty.as_deref()?;
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            _ => true,
        };
        (!ok).then_some(ty)
    }

    fn string(
        &self,
        base: &str,
        s: &str,
        value: &Value,
        trail: &Trail<'_>,
        push: &mut impl FnMut(&Trail<'_>, Constraint, String),
    ) {
        let runes = s.chars().count() as u64;
        if let Some(max) = self.max_length.filter(|m| runes > *m) {
            push(
                trail,
                Constraint::MaxLength,
                format!("Too long: may not be more than {max} bytes"),
            );
        }
        if let Some(min) = self.min_length.filter(|m| runes < *m) {
            push(
                trail,
                Constraint::MinLength,
                invalid(
                    value,
                    &trail.render(base),
                    &format!("should be at least {min} chars long"),
                ),
            );
        }
        if let (Some(p), Some(re)) = (&self.pattern, self.pattern()) {
            if !re.is_match(s) {
                push(
                    trail,
                    Constraint::Pattern,
                    invalid(value, &trail.render(base), &format!("should match '{p}'")),
                );
            }
        }
        if let Some(format) = &self.format {
            if !format_ok(format, s) {
                push(
                    trail,
                    Constraint::Format,
                    invalid(
                        value,
                        &trail.render(base),
                        &format!("must be of type {format}: {value}"),
                    ),
                );
            }
        }
    }

    fn number(
        &self,
        base: &str,
        n: &serde_json::Number,
        value: &Value,
        trail: &Trail<'_>,
        push: &mut impl FnMut(&Trail<'_>, Constraint, String),
    ) {
        let x = n.as_f64().unwrap_or(0.0);
        // Rendered only for a finding: most numbers are within their bounds.
        let field = || trail.render(base);
        let bounds = [
            (self.maximum, self.exclusive_maximum, Constraint::Maximum),
            (self.minimum, self.exclusive_minimum, Constraint::Minimum),
        ];
        for (limit, exclusive, constraint) in bounds {
            let Some(limit) = limit else { continue };
            let (bad, how) = match (constraint, exclusive) {
                (Constraint::Maximum, true) => (x >= limit, "less than"),
                (Constraint::Maximum, false) => (x > limit, "less than or equal to"),
                (_, true) => (x <= limit, "greater than"),
                (_, false) => (x < limit, "greater than or equal to"),
            };
            if bad {
                push(
                    trail,
                    constraint,
                    invalid(value, &field(), &format!("should be {how} {}", num(limit))),
                );
            }
        }
        let range = match self.format.as_deref() {
            Some("int32") => Some((i32::MIN as f64, i32::MAX as f64)),
            Some("int64") => Some((i64::MIN as f64, i64::MAX as f64)),
            _ => None,
        };
        if let Some((lo, hi)) = range {
            if x < lo || x > hi {
                let format = self.format.as_deref().unwrap_or("");
                push(
                    trail,
                    Constraint::Format,
                    invalid(value, &field(), &format!("must be of type {format}")),
                );
            }
        }
    }

    fn array(
        &self,
        base: &str,
        items: &[Value],
        trail: &Trail<'_>,
        push: &mut impl FnMut(&Trail<'_>, Constraint, String),
    ) {
        let n = items.len() as u64;
        if let Some(max) = self.max_items.filter(|m| n > *m) {
            push(
                trail,
                Constraint::MaxItems,
                format!("Too many: {n}: must have at most {max} items"),
            );
        }
        if let Some(min) = self.min_items.filter(|m| n < *m) {
            push(
                trail,
                Constraint::MinItems,
                invalid(
                    &Value::from(n),
                    &trail.render(base),
                    &format!("should have at least {min} items"),
                ),
            );
        }
        // An item's identity: the whole value in a set, its key fields (those set) in a map.
        let set = match self.list_type.as_deref() {
            Some("set") => true,
            Some("map") if !self.list_map_keys.is_empty() => false,
            _ => return,
        };
        let key = |v: &Value| -> Value {
            if set {
                return v.clone();
            }
            Value::Object(
                self.list_map_keys
                    .iter()
                    .filter_map(|k| Some((k.clone(), v.get(k).filter(|x| !x.is_null())?.clone())))
                    .collect(),
            )
        };
        let keys: Vec<Value> = items.iter().map(key).collect();
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].contains(k) {
                let mut t = trail.clone();
                t.index(i);
                push(&t, Constraint::Duplicate, format!("Duplicate value: {k}"));
            }
        }
    }

    /// `oneOf`, `anyOf`, `allOf` and `not`: in CRDs these only constrain values the node's own
    /// schema already types (e.g. "an IPAddress address must be an IP").
    fn combinations(&self, base: &str, value: &Value, trail: &Trail<'_>, out: &mut Vec<Violation>) {
        let fits = |s: &Schema| {
            let mut t = Trail::default();
            let mut v = Vec::new();
            s.walk(Scope::All, base, value, &mut t, &mut v);
            // These schemas only constrain values; the fields are the node's own schema's.
            v.iter().all(|v| v.constraint == Constraint::Unknown)
        };
        let mut found = Vec::new();
        if !self.one_of.is_empty() && self.one_of.iter().filter(|s| fits(s)).count() != 1 {
            found.push("must validate one and only one schema (oneOf)");
        }
        if !self.any_of.is_empty() && !self.any_of.iter().any(fits) {
            found.push("must validate at least one schema (anyOf)");
        }
        if self.not.as_deref().is_some_and(fits) {
            found.push("must not validate the schema (not)");
        }
        if !found.is_empty() {
            let field = trail.render(base);
            out.extend(found.into_iter().map(|what| Violation {
                message: invalid(value, &field, what),
                field: field.clone(),
                constraint: Constraint::Combination,
            }));
        }
        for s in &self.all_of {
            let mut t = trail.clone();
            let mut found = Vec::new();
            s.walk(Scope::All, base, value, &mut t, &mut found);
            out.extend(
                found
                    .into_iter()
                    .filter(|v| v.constraint != Constraint::Unknown),
            );
        }
    }
}

/// The API server's `field.Invalid` message: `Invalid value: <value>: <field> in body <what>`.
fn invalid(value: &Value, field: &str, what: &str) -> String {
    format!("Invalid value: {}: {field} in body {what}", short(value))
}

/// A value of the wrong type, named by its type as the API server names it.
fn wrong_type(value: &Value, field: &str, expected: &str) -> String {
    let t = type_name(value);
    format!("Invalid value: \"{t}\": {field} in body must be of type {expected}: \"{t}\"")
}

/// How the API server names a value's type in its messages.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as it appears in an `Invalid value:` message: scalars as themselves, composites
/// by their type.
pub(super) fn short(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) => format!("\"{}\"", type_name(v)),
        other => other.to_string(),
    }
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// The string formats kube-apiserver checks (the others it accepts as any string).
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "hostname" => crate::validate::dns_subdomain(s),
        _ => true,
    }
}
