//! `x-kubernetes-validations`: a CRD's CEL rules, evaluated as kube-apiserver does.
//!
//! Each rule runs with `self` bound to the (defaulted) value of the node that declares it;
//! transition rules (those naming `oldSelf`) run only on an update, with the old value of the
//! same node. Kubernetes' CEL libraries that the Gateway API rules use beyond the standard
//! ones are here too: the strings extension (`split`, `substring`), `isIP`, and the format
//! library's `format.dns1123Label().validate(s)`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::extractors::This;
use cel::{Context, Env, Program};
use serde::Deserialize;
use serde_json::Value;

use super::schema::{type_name, Constraint, Schema, Violation};
use crate::path::Trail;

/// One rule as the CRD declares it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRule {
    pub rule: String,
    pub message: Option<String>,
    pub message_expression: Option<String>,
    pub reason: Option<String>,
    pub field_path: Option<String>,
    #[serde(default)]
    pub optional_old_self: bool,
    #[serde(skip)]
    compiled: OnceLock<Compiled>,
}

/// A rule's programs, compiled on first use (most rules of a large CRD never run in a session).
#[derive(Debug)]
struct Compiled {
    /// `None` when it does not compile (a test proves every rule of the catalog does).
    rule: Option<Program>,
    message: Option<Program>,
    transition: bool,
}

impl ValidationRule {
    /// Whether the rule (and its message expression) compiles.
    #[cfg(test)]
    pub(super) fn compiles(&self) -> bool {
        let c = self.compiled();
        c.rule.is_some() && (self.message_expression.is_none() || c.message.is_some())
    }

    fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| {
            let rule = env().compile(&self.rule).ok();
            let transition = rule
                .as_ref()
                .is_some_and(|p| p.references().has_variable("oldSelf"));
            Compiled {
                rule,
                message: self
                    .message_expression
                    .as_deref()
                    .and_then(|m| env().compile(m).ok()),
                transition,
            }
        })
    }
}

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings)
            .expect("the strings extension declares no standard overload");
        Arc::new(env)
    })
    .clone()
}

/// JSON as Kubernetes hands it to CEL: integers are `int`, objects are maps.
pub(super) fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let m: HashMap<String, cel::Value> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect();
            cel::Value::from(m)
        }
    }
}

fn context(this: &Value, old: Option<&Value>) -> Context<'static, 'static> {
    let mut ctx = Context::with_env(env());
    ctx.add_variable_from_value("self", to_cel(this));
    if let Some(old) = old {
        ctx.add_variable_from_value("oldSelf", to_cel(old));
    }
    // `format.<name>()` names a format; `.validate(s)` is null when `s` fits it, else a list of
    // what is wrong (Kubernetes' format library).
    ctx.add_variable_from_value("format", cel::Value::Null);
    let _ = ctx.add_function("dns1123Label", |This(_): This<cel::Value>| {
        cel::Value::String(Arc::new("dns1123Label".into()))
    });
    let _ = ctx.add_function("dns1123Subdomain", |This(_): This<cel::Value>| {
        cel::Value::String(Arc::new("dns1123Subdomain".into()))
    });
    let _ = ctx.add_function(
        "validate",
        |This(format): This<Arc<String>>, s: Arc<String>| -> cel::Value {
            let ok = match format.as_str() {
                "dns1123Label" => crate::validate::namespace(&s),
                "dns1123Subdomain" => crate::validate::dns_subdomain(&s),
                _ => true,
            };
            if ok {
                cel::Value::Null
            } else {
                cel::Value::List(Arc::new(vec![cel::Value::String(Arc::new(format!(
                    "must be a valid {format}"
                )))]))
            }
        },
    );
    let _ = ctx.add_function("isIP", |s: Arc<String>| {
        s.parse::<std::net::IpAddr>().is_ok()
    });
    ctx
}

/// Run the rules of `schema` and of every node below it against `value`.
pub(super) fn check<'a>(
    base: &str,
    schema: &Schema,
    value: &'a Value,
    old: Option<&'a Value>,
    trail: &mut Trail<'a>,
    out: &mut Vec<Violation>,
) {
    if value.is_null() {
        return;
    }
    if !schema.validations.is_empty() {
        // One context per node: its value is converted once for all of its rules.
        let ctx = context(value, old);
        for rule in &schema.validations {
            evaluate(base, rule, &ctx, value, old.is_some(), trail, out);
        }
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(s) = schema.property(k) {
                    trail.key(k);
                    check(base, s, v, old.and_then(|o| o.get(k)), trail, out);
                    trail.pop();
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = &schema.items {
                for (i, v) in items.iter().enumerate() {
                    let old_item = old.and_then(|o| correlate(schema, o, v));
                    trail.index(i);
                    check(base, s, v, old_item, trail, out);
                    trail.pop();
                }
            }
        }
        _ => {}
    }
}

/// The old item an item of a list corresponds to: only map lists correlate (by their keys), as
/// in Kubernetes.
fn correlate<'a>(schema: &Schema, old: &'a Value, item: &Value) -> Option<&'a Value> {
    if schema.list_type.as_deref() != Some("map") || schema.list_map_keys.is_empty() {
        return None;
    }
    old.as_array()?
        .iter()
        .find(|o| schema.list_map_keys.iter().all(|k| o.get(k) == item.get(k)))
}

/// Run one rule in its node's context (`self`, and `oldSelf` on an update).
fn evaluate(
    base: &str,
    rule: &ValidationRule,
    ctx: &Context<'_, '_>,
    value: &Value,
    update: bool,
    trail: &Trail<'_>,
    out: &mut Vec<Violation>,
) {
    let compiled = rule.compiled();
    if compiled.transition && !update && !rule.optional_old_self {
        return;
    }
    let Some(program) = &compiled.rule else {
        return;
    };
    // An error (a missing key the rule did not guard) is what the API server reports as an
    // internal error of the rule, not as the user's mistake: nothing is said here.
    if !matches!(program.execute(ctx), Ok(cel::Value::Bool(false))) {
        return;
    }
    let message = compiled
        .message
        .as_ref()
        .and_then(|m| match m.execute(ctx) {
            Ok(cel::Value::String(s)) if !s.is_empty() => Some(s.to_string()),
            _ => None,
        })
        .or_else(|| rule.message.clone())
        .unwrap_or_else(|| format!("failed rule: {}", rule.rule));
    let mut field = trail.render(base);
    if let Some(extra) = &rule.field_path {
        field = crate::path::join_path(&field, extra);
    }
    let message = match rule.reason.as_deref() {
        Some("FieldValueRequired") => format!("Required value: {message}"),
        Some("FieldValueForbidden") => format!("Forbidden: {message}"),
        Some("FieldValueDuplicate") => format!("Duplicate value: {message}"),
        _ => format!("Invalid value: \"{}\": {message}", type_name(value)),
    };
    out.push(Violation {
        field,
        constraint: Constraint::Rule,
        message,
    });
}
