//! `x-kubernetes-validations`: a CRD's CEL rules, evaluated as kube-apiserver does.
//!
//! Each rule runs with `self` bound to the (defaulted) value of the node that declares it;
//! transition rules (those naming `oldSelf`) run only on an update, with the old value of the
//! same node. Kubernetes' CEL libraries that the Gateway API rules use beyond the standard
//! ones are here too: the strings extension (`split`, `substring`), `isIP`, and the format
//! library's `format.dns1123Label().validate(s)`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cel::common::traits::{Adder, Container, Indexer, Iterable, Sizer, Zeroer};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::types::{Type, DYN_TYPE};
use cel::common::value::{Builtin, BuiltinRef, CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Program};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::memo::{self, Reads};
use super::schema::{type_name, Constraint, Schema, Scope, Violation};
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
    rule: Option<Arc<Program>>,
    message: Option<Arc<Program>>,
    transition: bool,
    /// What the rule and its message expression read of `self`, to remember verdicts by.
    reads: Reads,
}

/// Two rules are the same when they say the same; what was compiled from them is not compared.
impl PartialEq for ValidationRule {
    fn eq(&self, other: &ValidationRule) -> bool {
        (
            &self.rule,
            &self.message,
            &self.message_expression,
            &self.reason,
            &self.field_path,
            self.optional_old_self,
        ) == (
            &other.rule,
            &other.message,
            &other.message_expression,
            &other.reason,
            &other.field_path,
            other.optional_old_self,
        )
    }
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
            let rule = compile(&self.rule);
            let transition = rule
                .as_ref()
                .is_some_and(|p| p.references().has_variable("oldSelf"));
            let message = self.message_expression.as_deref().and_then(compile);
            let reads = Reads::of(rule.iter().chain(message.iter()).map(|p| p.as_ref()));
            Compiled {
                rule,
                message,
                transition,
                reads,
            }
        })
    }
}

/// Compile an expression once per process: the catalog repeats each of its 96 distinct rules
/// in every version and both channels (622 in all), and compiling is the costly part of a
/// rule's first use.
fn compile(source: &str) -> Option<Arc<Program>> {
    static PROGRAMS: OnceLock<Mutex<HashMap<String, Option<Arc<Program>>>>> = OnceLock::new();
    let programs = PROGRAMS.get_or_init(Default::default);
    if let Some(p) = programs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(source)
    {
        return p.clone();
    }
    let program = env().compile(source).ok().map(Arc::new);
    programs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(source.to_string(), program.clone());
    program
}

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings)
            .expect("the strings extension declares no standard overload");
        env.add_extension(kubernetes)
            .expect("Kubernetes' libraries declare no standard overload");
        Arc::new(env)
    })
    .clone()
}

/// What Kubernetes adds to CEL that the Gateway API rules use, declared once on the Env (a
/// function added to each evaluation's Context would be registered again for every node).
fn kubernetes(env: &mut Env) -> Result<(), cel::DeclarationError> {
    cel::add_overload!(env, fn matches: (CelString, CelString) -> Result<CelBool>, id = "matches")?;
    cel::add_member_overload!(env, fn matches: (CelString, CelString) -> Result<CelBool>)?;
    cel::add_overload!(env, fn is_ip: (CelString) -> CelBool, name = "isIP")?;
    // `format.<name>()` names a format; `.validate(s)` is null when `s` fits it, else a list of
    // what is wrong (Kubernetes' format library).
    cel::add_overload!(env, fn dns1123_label: () -> CelString, name = "format.dns1123Label")?;
    cel::add_overload!(env, fn dns1123_subdomain: () -> CelString,
        name = "format.dns1123Subdomain")?;
    env.add_member_overload(
        "validate",
        "string.validate(string)",
        CelString::cel_type().to_owned(),
        vec![CelString::cel_type().to_owned()],
        validate,
    )
}

/// `s.matches(re)`, with each pattern compiled once: the catalog's rules use a handful of
/// constant patterns on every object, and compiling one costs more than the rest of a rule.
fn matches(this: &CelString<'_>, re: &CelString<'_>) -> Result<CelBool, cel::ExecutionError> {
    /// Patterns kept; a rule set with more distinct patterns than this starts over.
    const KEPT: usize = 256;
    thread_local! {
        static CACHE: RefCell<HashMap<String, Regex>> = RefCell::default();
    }
    let compiled = CACHE.with_borrow_mut(|cache| {
        if let Some(r) = cache.get(re.inner()) {
            return Ok(r.clone());
        }
        let r = Regex::new(re.inner()).map_err(|e| cel::ExecutionError::FunctionError {
            function: "matches".into(),
            message: format!("'{}' not a valid regex:\n{e}", re.inner()),
        })?;
        if cache.len() >= KEPT {
            cache.clear();
        }
        cache.insert(re.inner().to_string(), r.clone());
        Ok(r)
    })?;
    Ok(CelBool::from(compiled.is_match(this.inner())))
}

fn is_ip(s: &CelString<'_>) -> CelBool {
    CelBool::from(s.inner().parse::<std::net::IpAddr>().is_ok())
}

fn dns1123_label() -> CelString<'static> {
    CelString::from("dns1123Label")
}

fn dns1123_subdomain() -> CelString<'static> {
    CelString::from("dns1123Subdomain")
}

/// `format.<name>().validate(s)`: null when `s` fits the format, else the list of what is wrong.
fn validate<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, cel::ExecutionError> {
    let strings: Vec<&str> = args
        .iter()
        .filter_map(|a| a.downcast_ref::<CelString>().map(CelString::inner))
        .collect();
    let [format, s] = strings[..] else {
        return Err(cel::ExecutionError::invalid_argument_count(2, args.len()));
    };
    let ok = match format {
        "dns1123Label" => crate::validate::namespace(s),
        "dns1123Subdomain" => crate::validate::dns_subdomain(s),
        _ => true,
    };
    Ok(if ok {
        CowVal::owned(CelNull)
    } else {
        let problem: Box<dyn Val + 'v> =
            Box::new(CelString::from(format!("must be a valid {format}")));
        CowVal::owned(CelList::from(vec![problem]))
    })
}

/// JSON as Kubernetes hands it to CEL (integers are `int`, objects are maps, null members are
/// absent), borrowing its strings rather than copying them.
fn to_cel(v: &Value) -> Box<dyn Val + '_> {
    match v {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => Box::new(Shared::List(Arc::new(CelList::from(
            items.iter().map(to_cel).collect::<Vec<_>>(),
        )))),
        Value::Object(map) => Box::new(Shared::Map(Arc::new(CelMap::from(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (CelMapKey::from(k.as_str()), to_cel(v)))
                .collect::<HashMap<_, _>>(),
        )))),
    }
}

/// A map or list of a converted object, shared where CEL copies a value (every item a
/// comprehension such as `all` or `exists_one` visits is copied, and the rules nest them):
/// otherwise a copy is the whole subtree, made again for every rule.
#[derive(Debug, Clone)]
enum Shared<'v> {
    Map(Arc<CelMap<'v>>),
    List(Arc<CelList<'v>>),
}

impl<'v> Shared<'v> {
    fn inner(&self) -> &(dyn Val + 'v) {
        match self {
            Shared::Map(m) => m.as_ref(),
            Shared::List(l) => l.as_ref(),
        }
    }
}

impl<'v> Val for Shared<'v> {
    fn get_type(&self) -> &Type {
        self.inner().get_type()
    }

    /// Per value, as for a struct: registering a function over this type is not meant.
    fn cel_type() -> &'static Type {
        &DYN_TYPE
    }

    fn as_adder<'b, 'w>(&'b self) -> Option<&'b (dyn Adder + 'w)>
    where
        Self: 'w,
    {
        match self {
            Shared::Map(m) => m.as_adder(),
            Shared::List(l) => l.as_adder(),
        }
    }

    fn as_container(&self) -> Option<&dyn Container> {
        self.inner().as_container()
    }

    fn as_indexer<'b, 'w>(&'b self) -> Option<&'b (dyn Indexer + 'w)>
    where
        Self: 'w,
    {
        match self {
            Shared::Map(m) => m.as_indexer(),
            Shared::List(l) => l.as_indexer(),
        }
    }

    fn into_indexer<'w>(self: Box<Self>) -> Option<Box<dyn Indexer + 'w>>
    where
        Self: 'w,
    {
        match *self {
            Shared::Map(m) => Box::new(Arc::unwrap_or_clone(m)).into_indexer(),
            Shared::List(l) => Box::new(Arc::unwrap_or_clone(l)).into_indexer(),
        }
    }

    fn as_iterable<'b, 'w>(&'b self) -> Option<&'b (dyn Iterable + 'w)>
    where
        Self: 'w,
    {
        match self {
            Shared::Map(m) => m.as_iterable(),
            Shared::List(l) => l.as_iterable(),
        }
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        self.inner().as_sizer()
    }

    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        self.inner().as_zeroer()
    }

    fn equals(&self, other: &dyn Val) -> bool {
        self.inner().equals(other)
    }

    fn clone_as_boxed<'w>(&self) -> Box<dyn Val + 'w>
    where
        Self: 'w,
    {
        Box::new(self.clone())
    }

    fn as_builtin<'b, 'w>(&'b self) -> BuiltinRef<'b, 'w>
    where
        Self: 'w,
    {
        match self {
            Shared::Map(m) => BuiltinRef::Map(m),
            Shared::List(l) => BuiltinRef::List(l),
        }
    }

    fn into_builtin<'w>(self: Box<Self>) -> Option<Builtin<'w>>
    where
        Self: 'w,
    {
        Some(match *self {
            Shared::Map(m) => Builtin::Map(Arc::unwrap_or_clone(m)),
            Shared::List(l) => Builtin::List(Arc::unwrap_or_clone(l)),
        })
    }
}

/// A value and its CEL form: an object is converted once, and each node with rules reads its
/// part of that conversion.
/// `'a` is the object's, `'c` its conversion's.
#[derive(Clone, Copy)]
struct Node<'a, 'c> {
    json: &'a Value,
    cel: &'c (dyn Val + 'c),
}

impl<'a: 'c, 'c> Node<'a, 'c> {
    fn key(self, k: &'a str) -> Option<Node<'a, 'c>> {
        let cel = self
            .cel
            .downcast_ref::<CelMap>()?
            .inner()
            .get(&CelMapKey::from(k))?;
        Some(Node {
            json: self.json.get(k)?,
            cel: cel.as_ref(),
        })
    }

    fn index(self, i: usize) -> Option<Node<'a, 'c>> {
        Some(Node {
            json: self.json.get(i)?,
            cel: self.cel.downcast_ref::<CelList>()?.inner().get(i)?.as_ref(),
        })
    }
}

/// `self` and `oldSelf` of one node, lent to the evaluation rather than copied into it.
struct Selves<'a> {
    this: &'a (dyn Val + 'a),
    old: Option<&'a (dyn Val + 'a)>,
}

impl VariableResolver for Selves<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        match variable {
            "self" => Some(CowVal::Borrowed(self.this)),
            "oldSelf" => self.old.map(CowVal::Borrowed),
            _ => None,
        }
    }
}

/// Run the rules of `schema` and of every node below it against `value`.
pub(super) fn check<'a>(
    scope: Scope,
    base: &str,
    schema: &Schema,
    value: &'a Value,
    old: Option<&'a Value>,
    trail: &mut Trail<'a>,
    out: &mut Vec<Violation>,
) {
    let this = to_cel(value);
    let old_cel = old.map(to_cel);
    let node = Node {
        json: value,
        cel: this.as_ref(),
    };
    let old = old
        .zip(old_cel.as_deref())
        .map(|(json, cel)| Node { json, cel });
    check_node(scope, base, schema, node, old, trail, out);
}

fn check_node<'a: 'c, 'c>(
    scope: Scope,
    base: &str,
    schema: &Schema,
    node: Node<'a, 'c>,
    old: Option<Node<'a, 'c>>,
    trail: &mut Trail<'a>,
    out: &mut Vec<Violation>,
) {
    if node.json.is_null() || schema.skipped(scope) {
        return;
    }
    if !schema.validations.is_empty() {
        let selves = Selves {
            this: node.cel,
            old: old.map(|o| o.cel),
        };
        let mut ctx = Context::with_env(env());
        ctx.set_variable_resolver(&selves);
        for rule in &schema.validations {
            evaluate(base, rule, &ctx, node.json, old.is_some(), trail, out);
        }
    }
    match node.json {
        Value::Object(map) => {
            for k in map.keys() {
                if let (Some(s), Some(child)) = (schema.property(k), node.key(k)) {
                    trail.key(k);
                    let old = old.and_then(|o| o.key(k));
                    check_node(scope, base, s, child, old, trail, out);
                    trail.pop();
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = &schema.items {
                for (i, v) in items.iter().enumerate() {
                    let Some(child) = node.index(i) else { continue };
                    let old = old.and_then(|o| o.index(correlate(schema, o.json, v)?));
                    trail.index(i);
                    check_node(scope, base, s, child, old, trail, out);
                    trail.pop();
                }
            }
        }
        _ => {}
    }
}

/// Where in the old list the item corresponds to: only map lists correlate (by their keys), as
/// in Kubernetes.
fn correlate(schema: &Schema, old: &Value, item: &Value) -> Option<usize> {
    if schema.list_type.as_deref() != Some("map") || schema.list_map_keys.is_empty() {
        return None;
    }
    old.as_array()?
        .iter()
        .position(|o| schema.list_map_keys.iter().all(|k| o.get(k) == item.get(k)))
}

/// An evaluation error as the API server words it (Go's CEL: "no such key: NAME").
fn evaluation_error(e: &cel::ExecutionError) -> String {
    match e {
        cel::ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            chars
                .next()
                .map_or(String::new(), |c| c.to_lowercase().chain(chars).collect())
        }
    }
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
    let run =
        || -> memo::Verdict {
            match program.execute(ctx) {
                Ok(cel::Value::Bool(false)) => Some(Ok(compiled.message.as_ref().and_then(|m| {
                    match m.execute(ctx) {
                        Ok(cel::Value::String(s)) if !s.is_empty() => Some(s.to_string()),
                        _ => None,
                    }
                }))),
                // A rule that fails to evaluate (a key it did not guard) refuses the object in the
                // API server too, which says why: "no such key: certificateRefs evaluating rule:
                // MESSAGE".
                Err(e) => Some(Err(evaluation_error(&e))),
                Ok(_) => None,
            }
        };
    // A transition rule reads `oldSelf` too, which the remembered verdicts are not keyed by.
    let verdict = if compiled.transition {
        run()
    } else {
        let id = (
            Arc::as_ptr(program) as usize,
            compiled
                .message
                .as_ref()
                .map_or(0, |m| Arc::as_ptr(m) as usize),
        );
        memo::verdict(id, &compiled.reads, value, run)
    };
    let Some(outcome) = verdict else {
        return;
    };
    let rule_message = || {
        rule.message
            .clone()
            .unwrap_or_else(|| format!("failed rule: {}", rule.rule))
    };
    let (message, reason) = match outcome {
        Ok(said) => (said.unwrap_or_else(rule_message), rule.reason.as_deref()),
        Err(error) => (format!("{error} evaluating rule: {}", rule_message()), None),
    };
    let mut field = trail.render(base);
    if let Some(extra) = &rule.field_path {
        field = crate::path::join_path(&field, extra);
    }
    let message = match reason {
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
