//! The constraints Envoy declares on its own API, enforced the way Envoy enforces them.
//!
//! Envoy's protos carry protoc-gen-validate (PGV) annotations (`validate.rules` on fields,
//! `validate.required` on oneofs, `validate.disabled`/`ignored` on messages); Envoy runs the
//! generated validators on every resource and on every `typed_config` it unpacks, and refuses
//! the configuration at the first violation. This module reads the annotations from the
//! descriptor pool ([`super::api`]) and checks a parsed message against them, recursing into
//! sub-messages, list items, map values and `Any` payloads, so every extension is covered
//! without a line of per-type code. It also applies the two checks Envoy runs on every message
//! beyond PGV: durations must not be negative (`MessageUtil::validateDurationFields`), and a
//! deprecated field that is `disallowed_by_default` may not be set.
//!
//! Messages follow PGV's wording ("value must be greater than 0s", "value length must be at
//! least 1 runes") so that they read like Envoy's own error for the same field.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    OneofDescriptor, ReflectMessage, Value,
};

use super::api;

/// One constraint a message breaks: where (relative to the message checked) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
    pub kind: ViolationKind,
}

/// Which of Envoy's checks a violation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// A protoc-gen-validate annotation, a negative duration or a disallowed field.
    Declared,
    /// A `RegexMatcher` whose pattern does not compile (Envoy compiles each with RE2).
    Regex,
    /// A value Envoy parses when it builds the config and refuses (a CIDR range's address):
    /// one of the checks of [`super::semantics::CHECKS`].
    Semantic,
}

/// Messages whose payloads Envoy never unpacks and validates as configuration (opaque
/// metadata), so neither do we.
const OPAQUE: &[&str] = &["envoy.config.core.v3.Metadata"];

/// `Any` payloads whose factories Envoy 1.40 does not validate when it loads them: the
/// load-balancing policies take their config as it is (a LeastRequest `choice_count: 1`
/// passes, and a negative slow-start window passes in some clusters), so refusing them would
/// refuse what Envoy accepts.
const UNVALIDATED_PAYLOADS: &[&str] = &["envoy.extensions.load_balancing_policies."];

/// Nesting at which the walk stops: Envoy's own parser stops at 100 levels of nesting, and
/// nothing checkable lies deeper in a config that parsed.
const MAX_DEPTH: usize = 100;

/// Check `msg` and everything it contains. Paths are proto field names joined with `.` and
/// `[i]` / `["key"]`, relative to `msg`.
pub fn check(msg: &DynamicMessage) -> Vec<Violation> {
    let mut out = Vec::new();
    walk(msg, "", 0, &mut out);
    out
}

/// The annotations of one message type, decoded once.
struct Plan {
    skip: bool,
    fields: Vec<FieldPlan>,
    required_oneofs: Vec<OneofDescriptor>,
}

struct FieldPlan {
    field: FieldDescriptor,
    rules: Option<DynamicMessage>,
    /// Deprecated and `envoy.annotations.disallowed_by_default`: setting it is an error.
    disallowed: bool,
    /// What the walk asks of every field, worked out once (a descriptor's `kind()` builds a
    /// new value on each call).
    single_enum: bool,
    single_message: bool,
    in_oneof: bool,
    /// The values of this enum field that are `disallowed_by_default_enum`.
    disallowed_values: Vec<i32>,
}

fn extension(name: &str) -> Option<ExtensionDescriptor> {
    api::pool().get_extension_by_name(name)
}

struct Extensions {
    rules: Option<ExtensionDescriptor>,
    required: Option<ExtensionDescriptor>,
    disabled: Option<ExtensionDescriptor>,
    ignored: Option<ExtensionDescriptor>,
    disallowed: Option<ExtensionDescriptor>,
    disallowed_enum: Option<ExtensionDescriptor>,
}

fn extensions() -> &'static Extensions {
    static EXT: OnceLock<Extensions> = OnceLock::new();
    EXT.get_or_init(|| Extensions {
        rules: extension("validate.rules"),
        required: extension("validate.required"),
        disabled: extension("validate.disabled"),
        ignored: extension("validate.ignored"),
        disallowed: extension("envoy.annotations.disallowed_by_default"),
        disallowed_enum: extension("envoy.annotations.disallowed_by_default_enum"),
    })
}

fn flag(options: &DynamicMessage, ext: &Option<ExtensionDescriptor>) -> bool {
    ext.as_ref().is_some_and(|e| {
        options.has_extension(e) && options.get_extension(e).as_bool() == Some(true)
    })
}

fn plan_of(desc: &MessageDescriptor) -> Arc<Plan> {
    static CACHE: OnceLock<RwLock<HashMap<String, Arc<Plan>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache
        .read()
        .ok()
        .and_then(|c| c.get(desc.full_name()).cloned())
    {
        return p;
    }
    let ext = extensions();
    let options = desc.options();
    let skip = flag(&options, &ext.disabled) || flag(&options, &ext.ignored);
    let fields = desc
        .fields()
        .map(|field| {
            let options = field.options();
            let rules = ext.rules.as_ref().and_then(|e| {
                options
                    .has_extension(e)
                    .then(|| options.get_extension(e).as_message().cloned())
                    .flatten()
            });
            let deprecated = options
                .get_field_by_name("deprecated")
                .is_some_and(|v| v.as_bool() == Some(true));
            let disallowed = deprecated && flag(&options, &ext.disallowed);
            let single = !field.is_list() && !field.is_map();
            let disallowed_values = match field.kind() {
                Kind::Enum(e) => e
                    .values()
                    .filter(|v| flag(&v.options(), &ext.disallowed_enum))
                    .map(|v| v.number())
                    .collect(),
                _ => Vec::new(),
            };
            FieldPlan {
                disallowed_values,
                single_enum: single && matches!(field.kind(), Kind::Enum(_)),
                single_message: single && matches!(field.kind(), Kind::Message(_)),
                in_oneof: field.containing_oneof().is_some_and(|o| !o.is_synthetic()),
                field,
                rules,
                disallowed,
            }
        })
        .collect();
    let required_oneofs = desc
        .oneofs()
        .filter(|o| !o.is_synthetic() && flag(&o.options(), &ext.required))
        .collect();
    let plan = Arc::new(Plan {
        skip,
        fields,
        required_oneofs,
    });
    if let Ok(mut c) = cache.write() {
        c.insert(desc.full_name().to_string(), plan.clone());
    }
    plan
}

/// The `validate.rules` Envoy's descriptors declare on a field.
pub fn rules_of(field: &FieldDescriptor) -> Option<DynamicMessage> {
    plan_of(field.parent_message())
        .fields
        .iter()
        .find(|f| f.field == *field)
        .and_then(|f| f.rules.clone())
}

/// The oneofs of a message that must have a member set (`validate.required`).
pub fn required_oneofs(desc: &MessageDescriptor) -> Vec<OneofDescriptor> {
    plan_of(desc).required_oneofs.clone()
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

fn walk(msg: &DynamicMessage, path: &str, depth: usize, out: &mut Vec<Violation>) {
    let desc = msg.descriptor();
    if depth > MAX_DEPTH || OPAQUE.contains(&desc.full_name()) {
        return;
    }
    match desc.full_name() {
        "google.protobuf.Any" => return any_payload(msg, path, depth, out),
        "google.protobuf.Duration" => return duration_sign(msg, path, out),
        "envoy.type.matcher.v3.RegexMatcher" => regex_compiles(msg, path, out),
        "envoy.config.core.v3.CidrRange" => cidr_address(msg, path, out),
        _ => {}
    }
    let plan = plan_of(&desc);
    if plan.skip {
        return;
    }
    for oneof in &plan.required_oneofs {
        if !oneof.fields().any(|f| msg.has_field(&f)) {
            out.push(Violation {
                kind: ViolationKind::Declared,
                path: join(path, oneof.name()),
                message: format!(
                    "value is required: set one of {}",
                    oneof
                        .fields()
                        .map(|f| f.name().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    for fp in &plan.fields {
        let f = &fp.field;
        let set = msg.has_field(f);
        // An enum's default value can be a disallowed one, so enums are looked at unset too.
        if !set && fp.rules.is_none() && !fp.single_enum {
            continue; // nothing to check and nothing below
        }
        // A oneof member that is not the one set is not validated (PGV).
        if fp.in_oneof && !set {
            continue;
        }
        let here = join(path, f.name());
        if fp.disallowed && set {
            out.push(Violation {
                kind: ViolationKind::Declared,
                path: here.clone(),
                message: format!(
                    "{} is deprecated and disallowed by default in Envoy {}",
                    f.full_name(),
                    api::ENVOY_VERSION
                ),
            });
        }
        // An unset message field is only checked for being required: no default message is
        // built for it.
        let value = if !set && fp.single_message {
            std::borrow::Cow::Owned(Value::Bool(false))
        } else {
            msg.get_field(f)
        };
        if let (true, Value::EnumNumber(n)) = (fp.single_enum, value.as_ref()) {
            if fp.disallowed_values.contains(n) {
                if let Kind::Enum(e) = f.kind() {
                    disallowed_enum(&e, *n, &here, out);
                }
            }
        }
        if let Some(rules) = &fp.rules {
            field_rules(f, rules, &value, set, &here, out);
        }
        match value.as_ref() {
            Value::Message(m) if set => walk(m, &here, depth + 1, out),
            Value::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    if let Value::Message(m) = v {
                        walk(m, &format!("{here}[{i}]"), depth + 1, out);
                    }
                }
            }
            Value::Map(map) => {
                for (k, v) in sorted(map) {
                    if let Value::Message(m) = v {
                        walk(m, &format!("{here}[{}]", key_text(k)), depth + 1, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// An enum value Envoy marks deprecated and `disallowed_by_default_enum` may not be used
/// (the plan lists which values are).
fn disallowed_enum(
    e: &prost_reflect::EnumDescriptor,
    n: i32,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let Some(v) = e.get_value(n) else { return };
    out.push(Violation {
        kind: ViolationKind::Declared,
        path: path.to_string(),
        message: format!(
            "{} is deprecated and disallowed by default in Envoy {}",
            v.full_name(),
            api::ENVOY_VERSION
        ),
    });
}

fn sorted(map: &HashMap<MapKey, Value>) -> Vec<(&MapKey, &Value)> {
    let mut v: Vec<_> = map.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

fn key_text(k: &MapKey) -> String {
    match k {
        MapKey::String(s) => format!("{s:?}"),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

/// An `Any` is checked as the message it carries (Envoy validates a `typed_config` when it
/// unpacks it). `TypedStruct` payloads are checked as the type they name.
fn any_payload(msg: &DynamicMessage, path: &str, depth: usize, out: &mut Vec<Violation>) {
    let url = msg
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let Some(desc) = api::message(&url) else {
        return;
    };
    if UNVALIDATED_PAYLOADS
        .iter()
        .any(|p| desc.full_name().starts_with(p))
    {
        return;
    }
    let bytes = msg
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let Ok(inner) = DynamicMessage::decode(desc, bytes) else {
        return;
    };
    walk(&inner, path, depth + 1, out);
}

fn regex_compiles(msg: &DynamicMessage, path: &str, out: &mut Vec<Violation>) {
    let Some(re) = msg.get_field_by_name("regex") else {
        return;
    };
    let Some(re) = re.as_str() else { return };
    if let Err(e) = regex::Regex::new(re) {
        let why = e
            .to_string()
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_string();
        out.push(Violation {
            path: join(path, "regex"),
            message: format!("regex {re:?} does not compile: {why}"),
            kind: ViolationKind::Regex,
        });
    }
}

fn cidr_address(msg: &DynamicMessage, path: &str, out: &mut Vec<Violation>) {
    let Some(ip) = msg.get_field_by_name("address_prefix") else {
        return;
    };
    let Some(ip) = ip.as_str() else { return };
    if ip.parse::<std::net::IpAddr>().is_err() {
        out.push(Violation {
            path: join(path, "address_prefix"),
            message: format!(
                "malformed IP address: {ip} (a CIDR range takes an IP address and prefix_len)"
            ),
            kind: ViolationKind::Semantic,
        });
    }
}

fn duration_sign(msg: &DynamicMessage, path: &str, out: &mut Vec<Violation>) {
    let (secs, nanos) = duration_parts(msg);
    if secs < 0 || nanos < 0 {
        out.push(Violation {
            kind: ViolationKind::Declared,
            path: path.to_string(),
            message: format!(
                "Invalid duration: Expected positive duration: {}",
                duration_text(secs, nanos)
            ),
        });
    }
}

fn duration_parts(msg: &DynamicMessage) -> (i64, i32) {
    let secs = msg
        .get_field_by_name("seconds")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let nanos = msg
        .get_field_by_name("nanos")
        .and_then(|v| v.as_i32())
        .unwrap_or(0);
    (secs, nanos)
}

/// `1.5s`, `0s`, `-1s`: how PGV prints a duration bound.
fn duration_text(secs: i64, nanos: i32) -> String {
    if nanos == 0 {
        return format!("{secs}s");
    }
    let total = secs as i128 * 1_000_000_000 + nanos as i128;
    let sign = if total < 0 { "-" } else { "" };
    let abs = total.unsigned_abs();
    let frac = format!("{:09}", abs % 1_000_000_000);
    format!(
        "{sign}{}.{}s",
        abs / 1_000_000_000,
        frac.trim_end_matches('0')
    )
}

/// A number as PGV compares it: integers exactly, floats as floats.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn of(v: &Value) -> Option<Num> {
        Some(match v {
            Value::I32(n) => Num::Int(*n as i128),
            Value::I64(n) => Num::Int(*n as i128),
            Value::U32(n) => Num::Int(*n as i128),
            Value::U64(n) => Num::Int(*n as i128),
            Value::EnumNumber(n) => Num::Int(*n as i128),
            Value::F32(n) => Num::Float(*n as f64),
            Value::F64(n) => Num::Float(*n),
            _ => return None,
        })
    }

    fn cmp(self, other: Num) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.float().partial_cmp(&b.float()),
        }
    }

    fn float(self) -> f64 {
        match self {
            Num::Int(n) => n as f64,
            Num::Float(f) => f,
        }
    }

    fn text(self) -> String {
        match self {
            Num::Int(n) => n.to_string(),
            Num::Float(f) => f.to_string(),
        }
    }
}

/// A value PGV can bound: a number, or a duration in nanoseconds printed as a duration.
#[derive(Clone, Copy)]
struct Bounded {
    num: Num,
    duration: bool,
}

impl Bounded {
    fn text(self) -> String {
        match (self.duration, self.num) {
            (true, Num::Int(n)) => {
                let secs = (n / 1_000_000_000) as i64;
                let nanos = (n % 1_000_000_000) as i32;
                duration_text(secs, nanos)
            }
            (_, n) => n.text(),
        }
    }
}

fn duration_value(m: &DynamicMessage) -> Num {
    let (s, n) = duration_parts(m);
    Num::Int(s as i128 * 1_000_000_000 + n as i128)
}

/// The value a wrapper message (`google.protobuf.UInt32Value`) holds.
fn unwrap(v: &Value) -> Option<Value> {
    match v {
        Value::Message(m) if m.descriptor().full_name().starts_with("google.protobuf.") => {
            m.get_field_by_name("value").map(|c| c.into_owned())
        }
        other => Some(other.clone()),
    }
}

fn push(out: &mut Vec<Violation>, path: &str, message: String) {
    out.push(Violation {
        kind: ViolationKind::Declared,
        path: path.to_string(),
        message,
    });
}

/// Apply one field's `validate.rules`. `set` says whether the field is present (for message
/// fields; scalars are always checked, as PGV does for proto3).
fn field_rules(
    field: &FieldDescriptor,
    rules: &DynamicMessage,
    value: &Value,
    set: bool,
    path: &str,
    out: &mut Vec<Violation>,
) {
    // The oneof of FieldRules that is set: message, string, uint32, repeated, ...
    for (which, r) in rules.fields() {
        let Value::Message(r) = r else { continue };
        match which.name() {
            "message" => {
                if bool_rule(r, "required") && !set {
                    push(out, path, "value is required".into());
                }
            }
            "repeated" => repeated_rules(field, r, value, path, out),
            "map" => map_rules(field, r, value, path, out),
            kind => {
                if field.is_list() {
                    continue; // scalar rules on a list apply through repeated.items
                }
                let is_message = matches!(field.kind(), Kind::Message(_));
                if is_message && !set && !matches!(kind, "duration" | "timestamp" | "any") {
                    continue; // rules of an unset wrapper apply only when it is set
                }
                scalar_rules(kind, enum_of(field).as_ref(), r, value, set, path, out);
            }
        }
    }
}

// Rule messages set only a few of their many fields, so lookups scan the set ones rather than
// resolve every asked-for name through the descriptor.
fn set_field<'r>(r: &'r DynamicMessage, name: &str) -> Option<&'r Value> {
    r.fields().find(|(f, _)| f.name() == name).map(|(_, v)| v)
}

fn bool_rule(r: &DynamicMessage, name: &str) -> bool {
    set_field(r, name).and_then(Value::as_bool).unwrap_or(false)
}

fn get(r: &DynamicMessage, name: &str) -> Option<Value> {
    set_field(r, name).cloned()
}

/// The size bounds of a list (`min_items`/`max_items`) or map (`min_pairs`/`max_pairs`).
fn count_bounds(
    r: &DynamicMessage,
    (min_rule, max_rule, unit): (&str, &str, &str),
    len: usize,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let len = len as u64;
    if let Some(min) = get(r, min_rule).and_then(|v| v.as_u64()) {
        if len < min {
            push(
                out,
                path,
                format!("value must contain at least {min} {unit}"),
            );
        }
    }
    if let Some(max) = get(r, max_rule).and_then(|v| v.as_u64()) {
        if len > max {
            push(
                out,
                path,
                format!("value must contain no more than {max} {unit}"),
            );
        }
    }
}

fn repeated_rules(
    field: &FieldDescriptor,
    r: &DynamicMessage,
    value: &Value,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let Value::List(items) = value else { return };
    if bool_rule(r, "ignore_empty") && items.is_empty() {
        return;
    }
    count_bounds(
        r,
        ("min_items", "max_items", "item(s)"),
        items.len(),
        path,
        out,
    );
    if bool_rule(r, "unique") {
        for (i, v) in items.iter().enumerate() {
            if items[..i].contains(v) {
                push(
                    out,
                    &format!("{path}[{i}]"),
                    "repeated value must contain unique items".into(),
                );
            }
        }
    }
    if let Some(Value::Message(item_rules)) = get(r, "items") {
        for (i, v) in items.iter().enumerate() {
            item_field_rules(field, &item_rules, v, &format!("{path}[{i}]"), out);
        }
    }
}

fn map_rules(
    field: &FieldDescriptor,
    r: &DynamicMessage,
    value: &Value,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let Value::Map(map) = value else { return };
    if bool_rule(r, "ignore_empty") && map.is_empty() {
        return;
    }
    count_bounds(
        r,
        ("min_pairs", "max_pairs", "pair(s)"),
        map.len(),
        path,
        out,
    );
    let key_rules = get(r, "keys");
    let value_rules = get(r, "values");
    for (k, v) in sorted(map) {
        let here = format!("{path}[{}]", key_text(k));
        if let Some(Value::Message(kr)) = &key_rules {
            let key = match k {
                MapKey::String(s) => Value::String(s.clone()),
                MapKey::Bool(b) => Value::Bool(*b),
                MapKey::I32(n) => Value::I32(*n),
                MapKey::I64(n) => Value::I64(*n),
                MapKey::U32(n) => Value::U32(*n),
                MapKey::U64(n) => Value::U64(*n),
            };
            for (which, kr) in kr.fields() {
                if let Value::Message(kr) = kr {
                    let mut found = Vec::new();
                    scalar_rules(which.name(), None, kr, &key, true, &here, &mut found);
                    out.extend(found.into_iter().map(|mut x| {
                        x.message = format!("key {}", x.message);
                        x
                    }));
                }
            }
        }
        if let Some(Value::Message(vr)) = &value_rules {
            let entry = match field.kind() {
                Kind::Message(m) => m,
                _ => continue,
            };
            item_field_rules(&entry.map_entry_value_field(), vr, v, &here, out);
        }
    }
}

/// The `items` (or map `values`) rules applied to one element.
fn item_field_rules(
    field: &FieldDescriptor,
    rules: &DynamicMessage,
    v: &Value,
    path: &str,
    out: &mut Vec<Violation>,
) {
    for (which, r) in rules.fields() {
        let Value::Message(r) = r else { continue };
        match which.name() {
            "message" => {}
            kind => scalar_rules(kind, enum_of(field).as_ref(), r, v, true, path, out),
        }
    }
}

fn enum_of(field: &FieldDescriptor) -> Option<prost_reflect::EnumDescriptor> {
    match field.kind() {
        Kind::Enum(e) => Some(e),
        _ => None,
    }
}

/// Rules on one value: numbers (and wrappers), strings, bytes, enums, durations, Any.
fn scalar_rules(
    kind: &str,
    enum_desc: Option<&prost_reflect::EnumDescriptor>,
    r: &DynamicMessage,
    value: &Value,
    set: bool,
    path: &str,
    out: &mut Vec<Violation>,
) {
    match kind {
        "string" => {
            if let Some(Value::String(s)) = unwrap(value) {
                string_rules(r, &s, path, out);
            }
        }
        "bytes" => {
            if let Some(Value::Bytes(b)) = unwrap(value) {
                bytes_rules(r, &b, path, out);
            }
        }
        "enum" => {
            let Value::EnumNumber(n) = value else { return };
            numeric_rules(
                r,
                Bounded {
                    num: Num::Int(*n as i128),
                    duration: false,
                },
                path,
                out,
                Num::of,
            );
            let defined = |e: &prost_reflect::EnumDescriptor| e.get_value(*n).is_some();
            if bool_rule(r, "defined_only") && enum_desc.is_some_and(|e| !defined(e)) {
                push(
                    out,
                    path,
                    "value must be one of the defined enum values".into(),
                );
            }
        }
        "duration" => {
            if !set {
                if bool_rule(r, "required") {
                    push(out, path, "value is required".into());
                }
                return;
            }
            let Value::Message(m) = value else { return };
            let d = duration_value(m);
            numeric_rules(
                r,
                Bounded {
                    num: d,
                    duration: true,
                },
                path,
                out,
                |v| match v {
                    Value::Message(m) => Some(duration_value(m)),
                    _ => None,
                },
            );
        }
        "timestamp" => {
            if !set && bool_rule(r, "required") {
                push(out, path, "value is required".into());
            }
        }
        "any" => {
            if !set {
                if bool_rule(r, "required") {
                    push(out, path, "value is required".into());
                }
                return;
            }
            let Value::Message(m) = value else { return };
            let url = m
                .get_field_by_name("type_url")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            if let Some(Value::List(allowed)) = get(r, "in") {
                if !allowed.iter().any(|a| a.as_str() == Some(&url)) {
                    push(
                        out,
                        path,
                        format!("type URL must be in list {}", list_text(&allowed)),
                    );
                }
            }
            if let Some(Value::List(denied)) = get(r, "not_in") {
                if denied.iter().any(|a| a.as_str() == Some(&url)) {
                    push(
                        out,
                        path,
                        format!("type URL must not be in list {}", list_text(&denied)),
                    );
                }
            }
        }
        "bool" => {
            if let (Some(Value::Bool(want)), Some(Value::Bool(have))) =
                (get(r, "const"), unwrap(value))
            {
                if want != have {
                    push(out, path, format!("value must equal {want}"));
                }
            }
        }
        _ => {
            let Some(v) = unwrap(value) else { return };
            let Some(num) = Num::of(&v) else { return };
            if bool_rule(r, "ignore_empty") && num.float() == 0.0 {
                return;
            }
            numeric_rules(
                r,
                Bounded {
                    num,
                    duration: false,
                },
                path,
                out,
                Num::of,
            );
        }
    }
}

fn list_text(items: &[Value]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => Num::of(other).map(Num::text).unwrap_or_default(),
        })
        .collect();
    format!("[{}]", parts.join(" "))
}

/// const, lt/lte/gt/gte (with PGV's range wording), in, not_in; and `defined_only` for enums.
fn numeric_rules(
    r: &DynamicMessage,
    v: Bounded,
    path: &str,
    out: &mut Vec<Violation>,
    num: impl Fn(&Value) -> Option<Num>,
) {
    let bound = |name: &str| {
        get(r, name).and_then(|x| num(&x)).map(|n| Bounded {
            num: n,
            duration: v.duration,
        })
    };
    let lt = |a: Num, b: Num| a.cmp(b) == Some(std::cmp::Ordering::Less);
    if let Some(c) = bound("const") {
        if v.num.cmp(c.num) != Some(std::cmp::Ordering::Equal) {
            push(out, path, format!("value must equal {}", c.text()));
        }
    }
    let upper = bound("lt")
        .map(|b| (b, false))
        .or(bound("lte").map(|b| (b, true)));
    let lower = bound("gt")
        .map(|b| (b, false))
        .or(bound("gte").map(|b| (b, true)));
    let below_upper = |(b, incl): (Bounded, bool)| {
        if incl {
            !lt(b.num, v.num)
        } else {
            lt(v.num, b.num)
        }
    };
    let above_lower = |(b, incl): (Bounded, bool)| {
        if incl {
            !lt(v.num, b.num)
        } else {
            lt(b.num, v.num)
        }
    };
    match (lower, upper) {
        (Some(lo), Some(hi)) => {
            let (open, close) = (if lo.1 { '[' } else { '(' }, if hi.1 { ']' } else { ')' });
            if lt(lo.0.num, hi.0.num) || lo.0.num == hi.0.num {
                if !(above_lower(lo) && below_upper(hi)) {
                    push(
                        out,
                        path,
                        format!(
                            "value must be inside range {open}{}, {}{close}",
                            lo.0.text(),
                            hi.0.text()
                        ),
                    );
                }
            } else if !(above_lower(lo) || below_upper(hi)) {
                // An exclusive range: lt < gt means "outside [lt, gt]".
                let (open, close) = (if hi.1 { '(' } else { '[' }, if lo.1 { ')' } else { ']' });
                push(
                    out,
                    path,
                    format!(
                        "value must be outside range {open}{}, {}{close}",
                        hi.0.text(),
                        lo.0.text()
                    ),
                );
            }
        }
        (Some(lo), None) if !above_lower(lo) => {
            let rel = if lo.1 {
                "greater than or equal to"
            } else {
                "greater than"
            };
            push(out, path, format!("value must be {rel} {}", lo.0.text()));
        }
        (None, Some(hi)) if !below_upper(hi) => {
            let rel = if hi.1 {
                "less than or equal to"
            } else {
                "less than"
            };
            push(out, path, format!("value must be {rel} {}", hi.0.text()));
        }
        _ => {}
    }
    if let Some(Value::List(allowed)) = get(r, "in") {
        if !allowed
            .iter()
            .any(|a| num(a).is_some_and(|n| n.cmp(v.num) == Some(std::cmp::Ordering::Equal)))
        {
            push(
                out,
                path,
                format!("value must be in list {}", list_text(&allowed)),
            );
        }
    }
    if let Some(Value::List(denied)) = get(r, "not_in") {
        if denied
            .iter()
            .any(|a| num(a).is_some_and(|n| n.cmp(v.num) == Some(std::cmp::Ordering::Equal)))
        {
            push(
                out,
                path,
                format!("value must not be in list {}", list_text(&denied)),
            );
        }
    }
}

const HEADER_NAME: &str = "^:?[0-9a-zA-Z!#$%&'*+-.^_|~`]+$";
const HEADER_VALUE: &str = "^[^\u{0}-\u{8}\u{A}-\u{1F}\u{7F}]*$";
const HEADER_LOOSE: &str = "^[^\u{0}\u{A}\u{D}]*$";

fn header_name_ok(s: &str) -> bool {
    let s = s.strip_prefix(':').unwrap_or(s);
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_|~`".contains(&b))
}

fn header_value_ok(s: &str) -> bool {
    !s.chars()
        .any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{A}'..='\u{1F}' | '\u{7F}'))
}

fn loose_ok(s: &str) -> bool {
    !s.contains(['\0', '\n', '\r'])
}

/// A PGV `pattern`, compiled once: the patterns come from Envoy's descriptors, a fixed set.
fn pattern(p: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<RwLock<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(re) = cache.read().ok().and_then(|c| c.get(p).cloned()) {
        return re;
    }
    let re = regex::Regex::new(p).ok();
    if let Ok(mut c) = cache.write() {
        c.insert(p.to_string(), re.clone());
    }
    re
}

fn string_rules(r: &DynamicMessage, s: &str, path: &str, out: &mut Vec<Violation>) {
    if bool_rule(r, "ignore_empty") && s.is_empty() {
        return;
    }
    let runes = s.chars().count() as u64;
    let bytes = s.len() as u64;
    let u = |name: &str| get(r, name).and_then(|v| v.as_u64());
    let text = |name: &str| get(r, name).and_then(|v| v.as_str().map(str::to_string));
    if let Some(c) = text("const") {
        if s != c {
            push(out, path, format!("value must equal {c:?}"));
        }
    }
    if let Some(n) = u("len") {
        if runes != n {
            push(out, path, format!("value length must be {n} runes"));
        }
    }
    if let Some(n) = u("min_len") {
        if runes < n {
            push(
                out,
                path,
                format!("value length must be at least {n} runes"),
            );
        }
    }
    if let Some(n) = u("max_len") {
        if runes > n {
            push(out, path, format!("value length must be at most {n} runes"));
        }
    }
    if let Some(n) = u("len_bytes") {
        if bytes != n {
            push(out, path, format!("value length must be {n} bytes"));
        }
    }
    if let Some(n) = u("min_bytes") {
        if bytes < n {
            push(
                out,
                path,
                format!("value length must be at least {n} bytes"),
            );
        }
    }
    if let Some(n) = u("max_bytes") {
        if bytes > n {
            push(out, path, format!("value length must be at most {n} bytes"));
        }
    }
    if let Some(p) = text("pattern") {
        if let Some(re) = pattern(&p) {
            if !re.is_match(s) {
                push(
                    out,
                    path,
                    format!("value does not match regex pattern {p:?}"),
                );
            }
        }
    }
    if let Some(p) = text("prefix") {
        if !s.starts_with(&p) {
            push(out, path, format!("value does not have prefix {p:?}"));
        }
    }
    if let Some(p) = text("suffix") {
        if !s.ends_with(&p) {
            push(out, path, format!("value does not have suffix {p:?}"));
        }
    }
    if let Some(p) = text("contains") {
        if !s.contains(&p) {
            push(out, path, format!("value does not contain substring {p:?}"));
        }
    }
    if let Some(p) = text("not_contains") {
        if s.contains(&p) {
            push(out, path, format!("value contains substring {p:?}"));
        }
    }
    if let Some(Value::List(allowed)) = get(r, "in") {
        if !allowed.iter().any(|a| a.as_str() == Some(s)) {
            push(
                out,
                path,
                format!("value must be in list {}", list_text(&allowed)),
            );
        }
    }
    if let Some(Value::List(denied)) = get(r, "not_in") {
        if denied.iter().any(|a| a.as_str() == Some(s)) {
            push(
                out,
                path,
                format!("value must not be in list {}", list_text(&denied)),
            );
        }
    }
    well_known(r, s, path, out);
}

fn well_known(r: &DynamicMessage, s: &str, path: &str, out: &mut Vec<Violation>) {
    let strict = r
        .descriptor()
        .get_field_by_name("strict")
        .map(|f| {
            if r.has_field(&f) {
                r.get_field(&f).as_bool().unwrap_or(true)
            } else {
                true
            }
        })
        .unwrap_or(true);
    let bad = |what: &str| format!("value must be a valid {what}");
    if bool_rule(r, "ip") && s.parse::<std::net::IpAddr>().is_err() {
        push(out, path, bad("IP address"));
    }
    if bool_rule(r, "ipv4") && s.parse::<std::net::Ipv4Addr>().is_err() {
        push(out, path, bad("IPv4 address"));
    }
    if bool_rule(r, "ipv6") && s.parse::<std::net::Ipv6Addr>().is_err() {
        push(out, path, bad("IPv6 address"));
    }
    if bool_rule(r, "hostname") && !hostname_ok(s) {
        push(out, path, bad("hostname"));
    }
    if bool_rule(r, "address") && s.parse::<std::net::IpAddr>().is_err() && !hostname_ok(s) {
        push(out, path, bad("hostname, or ip address"));
    }
    if bool_rule(r, "uuid") && uuid_shape(s).is_none() {
        push(out, path, bad("UUID"));
    }
    if bool_rule(r, "uri") && !s.contains(':') {
        push(out, path, bad("URI"));
    }
    if let Some(n) = get(r, "well_known_regex").and_then(|v| v.as_enum_number()) {
        // KnownRegex: 1 HTTP_HEADER_NAME, 2 HTTP_HEADER_VALUE.
        let (ok, pattern) = match (n, strict) {
            (1, true) => (header_name_ok(s), HEADER_NAME),
            (2, true) => (header_value_ok(s), HEADER_VALUE),
            (1 | 2, false) => (loose_ok(s), HEADER_LOOSE),
            _ => (true, ""),
        };
        if !ok {
            push(
                out,
                path,
                format!("value does not match regex pattern {pattern:?}"),
            );
        }
    }
}

/// PGV's hostname: at most 253 characters, labels of 1 to 63 letters, digits and inner hyphens.
fn hostname_ok(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn uuid_shape(s: &str) -> Option<()> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    (groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit())))
    .then_some(())
}

fn bytes_rules(r: &DynamicMessage, b: &[u8], path: &str, out: &mut Vec<Violation>) {
    if bool_rule(r, "ignore_empty") && b.is_empty() {
        return;
    }
    let n = b.len() as u64;
    let u = |name: &str| get(r, name).and_then(|v| v.as_u64());
    if let Some(m) = u("len") {
        if n != m {
            push(out, path, format!("value length must be {m} bytes"));
        }
    }
    if let Some(m) = u("min_len") {
        if n < m {
            push(
                out,
                path,
                format!("value length must be at least {m} bytes"),
            );
        }
    }
    if let Some(m) = u("max_len") {
        if n > m {
            push(out, path, format!("value length must be at most {m} bytes"));
        }
    }
}
