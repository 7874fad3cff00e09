//! Verdicts of CEL rules remembered by what each rule reads of `self`.
//!
//! A rule is a pure function of `self`, and most Gateway API rules read only a few members of
//! it: an HTTPRoute filter carries 16 rules of the shape `self.type == 'X' ? has(self.x) :
//! !has(self.x)`, which depend on the filter's `type` and on whether one member is present,
//! not on its contents. Keying a remembered verdict by exactly those reads (the value of what
//! is read, the presence of what is only tested with `has()`) answers the same rule on the
//! next filter of the same type without running it; a rule that reads `self` whole (a list's
//! `all()`, `size(self)`) is keyed by the whole value, and only when that value is small.
//!
//! The key is the reads written out byte for byte, never a hash of them: a remembered verdict
//! is reused only for input the rule cannot tell apart. Transition rules (those reading
//! `oldSelf`) are never remembered.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::Program;
use serde_json::Value;

/// Values of `self` larger than this, written as JSON, are not remembered: large values seldom
/// repeat, and a key is a copy of them.
const WHOLE_VALUE_LIMIT: usize = 1024;

/// Remembered verdicts per thread; the table starts over when it reaches this many.
const ENTRIES_LIMIT: usize = 65_536;

/// How a rule reads a member of `self`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// Only `has(self.member)`.
    Presence,
    /// The member's value.
    Value,
}

/// What a rule (with its message expression) reads of `self`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reads {
    /// Members by name, in name order.
    Members(BTreeMap<String, Read>),
    /// `self` as a whole (or in a way this walk does not take apart).
    Whole,
}

impl Reads {
    /// The reads of these programs together.
    pub(super) fn of<'p>(programs: impl IntoIterator<Item = &'p Program>) -> Reads {
        let mut members = BTreeMap::new();
        for p in programs {
            if !walk(p.expression(), &mut members) {
                return Reads::Whole;
            }
        }
        Reads::Members(members)
    }

    /// The key of `value` under these reads, written into `out`; `false` when the value is too
    /// large to remember.
    fn key(&self, value: &Value, out: &mut Vec<u8>) -> bool {
        out.clear();
        match self {
            Reads::Whole => {
                if serde_json::to_writer(LimitedWriter(out), value).is_err() {
                    return false;
                }
            }
            Reads::Members(members) => {
                for (name, read) in members {
                    let member = value.get(name).filter(|v| !v.is_null());
                    match (read, member) {
                        (_, None) => out.push(b'-'),
                        (Read::Presence, Some(_)) => out.push(b'+'),
                        (Read::Value, Some(v)) => {
                            out.push(b'=');
                            if serde_json::to_writer(LimitedWriter(out), v).is_err() {
                                return false;
                            }
                        }
                    }
                    // A separator no JSON text contains unescaped.
                    out.push(0);
                }
            }
        }
        true
    }
}

/// Collect the members of `self` that `e` reads; `false` when it reads `self` otherwise.
fn walk(e: &IdedExpr, members: &mut BTreeMap<String, Read>) -> bool {
    match &e.expr {
        Expr::Select(s) if matches!(&s.operand.expr, Expr::Ident(n) if n == "self") => {
            let read = if s.test { Read::Presence } else { Read::Value };
            let entry = members.entry(s.field.clone()).or_insert(read);
            if read == Read::Value {
                *entry = Read::Value;
            }
            true
        }
        Expr::Ident(n) => n != "self",
        Expr::Select(s) => walk(&s.operand, members),
        Expr::Call(c) => {
            c.target.as_deref().is_none_or(|t| walk(t, members))
                && c.args.iter().all(|a| walk(a, members))
        }
        Expr::Comprehension(c) => {
            // A comprehension that names a variable `self` would shadow it.
            c.iter_var != "self"
                && c.iter_var2.as_deref() != Some("self")
                && c.accu_var != "self"
                && [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ]
                .into_iter()
                .all(|x| walk(x, members))
        }
        Expr::List(l) => l.elements.iter().all(|x| walk(x, members)),
        Expr::Map(m) => m.entries.iter().all(|x| entry(&x.expr, members)),
        Expr::Struct(s) => s.entries.iter().all(|x| entry(&x.expr, members)),
        Expr::Literal(_) | Expr::Unspecified => true,
    }
}

fn entry(e: &EntryExpr, members: &mut BTreeMap<String, Read>) -> bool {
    match e {
        EntryExpr::StructField(f) => walk(&f.value, members),
        EntryExpr::MapEntry(m) => walk(&m.key, members) && walk(&m.value, members),
    }
}

/// A writer that refuses to grow its buffer past [`WHOLE_VALUE_LIMIT`].
struct LimitedWriter<'a>(&'a mut Vec<u8>);

impl Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > WHOLE_VALUE_LIMIT {
            return Err(std::io::ErrorKind::OutOfMemory.into());
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A rule's verdict on one value: `None` when it holds; `Some(Ok(said))` when it fails, with
/// what its message expression said (`None` when it has none or it said nothing usable);
/// `Some(Err(error))` when it cannot be evaluated on the value.
pub(super) type Verdict = Option<Result<Option<String>, String>>;

#[derive(Default)]
struct Table {
    /// Per rule, verdicts by key.
    verdicts: HashMap<(usize, usize), HashMap<Vec<u8>, Verdict>>,
    entries: usize,
}

#[cfg(test)]
thread_local! {
    /// Tests compare what is found with and without remembered verdicts.
    pub(super) static BYPASS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::default();
    /// The key being written, kept to reuse its allocation.
    static KEY: RefCell<Vec<u8>> = RefCell::default();
}

/// The verdict of the rule identified by `id` (stable for the process: the addresses of its
/// compiled rule and message programs) with these `reads` on `value`: remembered, or worked out by `run` and
/// remembered.
pub(super) fn verdict(
    id: (usize, usize),
    reads: &Reads,
    value: &Value,
    run: impl FnOnce() -> Verdict,
) -> Verdict {
    KEY.with(|key| {
        let mut key = key.borrow_mut();
        #[cfg(test)]
        if BYPASS.get() {
            return run();
        }
        if !reads.key(value, &mut key) {
            return run();
        }
        let known = TABLE.with(|t| {
            let t = t.borrow();
            t.verdicts.get(&id)?.get(key.as_slice()).cloned()
        });
        if let Some(v) = known {
            return v;
        }
        let v = run();
        TABLE.with(|t| {
            let mut t = t.borrow_mut();
            if t.entries >= ENTRIES_LIMIT {
                t.verdicts.clear();
                t.entries = 0;
            }
            t.entries += 1;
            t.verdicts
                .entry(id)
                .or_default()
                .insert(key.clone(), v.clone());
        });
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(source: &str) -> Reads {
        Reads::of([&Program::compile(source).unwrap()])
    }

    fn members(list: &[(&str, Read)]) -> Reads {
        Reads::Members(list.iter().map(|(k, r)| (k.to_string(), *r)).collect())
    }

    #[test]
    fn a_rule_reads_the_members_it_selects() {
        assert_eq!(
            reads("self.type == 'X' ? has(self.x) : !has(self.x)"),
            members(&[("type", Read::Value), ("x", Read::Presence)])
        );
        // A member tested and also read is read.
        assert_eq!(
            reads("has(self.x) && self.x.size() > 0"),
            members(&[("x", Read::Value)])
        );
        // `has()` of a deeper member reads the member it lies in.
        assert_eq!(
            reads("!has(self.a.b) || self.c == 1"),
            members(&[("a", Read::Value), ("c", Read::Value)])
        );
        assert_eq!(reads("1 == 1"), members(&[]));
    }

    #[test]
    fn a_rule_that_reads_self_otherwise_reads_it_whole() {
        for source in [
            "self.all(x, x.name != '')",
            "size(self) <= 8",
            "self == 'a'",
            "[self].size() == 1",
            "self.exists(self, self == 1)",
        ] {
            assert_eq!(reads(source), Reads::Whole, "{source}");
        }
    }

    #[test]
    fn keys_tell_apart_what_is_read_and_nothing_else() {
        let r = members(&[("type", Read::Value), ("x", Read::Presence)]);
        let key = |v: Value| {
            let mut out = Vec::new();
            assert!(r.key(&v, &mut out));
            out
        };
        use serde_json::json;
        assert_eq!(
            key(json!({"type": "A", "x": {"k": 1}})),
            key(json!({"type": "A", "x": {"k": 2}, "other": 3}))
        );
        assert_ne!(
            key(json!({"type": "A", "x": {}})),
            key(json!({"type": "A"}))
        );
        // A null member is absent, as CEL sees it.
        assert_eq!(
            key(json!({"type": "A", "x": null})),
            key(json!({"type": "A"}))
        );
        assert_ne!(key(json!({"type": "A"})), key(json!({"type": "B"})));
        // Too large to remember whole.
        let mut out = Vec::new();
        assert!(!Reads::Whole.key(&json!("x".repeat(WHOLE_VALUE_LIMIT)), &mut out));
    }
}
