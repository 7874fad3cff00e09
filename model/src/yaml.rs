//! YAML (and therefore JSON, a YAML subset) to `serde_json::Value`, keeping the line of
//! every node.
//!
//! Kubernetes clients turn YAML into JSON before the API server sees it, so the rules work on
//! JSON values. What JSON loses is where each field came from, and "which line" is the first
//! thing a person fixing a manifest wants. Each document therefore comes with a [`Lines`] tree
//! that mirrors the value and answers "what line is `spec.rules[0].backendRefs[1]` on?".
//!
//! Scalars are resolved the way kubectl resolves them (sigs.k8s.io/yaml over go-yaml v2):
//! the YAML 1.2 core schema plus the YAML 1.1 booleans `yes`/`no`/`on`/`off`, so `port: 80`
//! is a number, `value: "80"` a string and `enabled: on` a boolean.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// One YAML document as JSON, with the line of each node.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub lines: Lines,
    /// Keys that appeared twice in one mapping (the last one wins, as in kubectl): path and line.
    pub duplicate_keys: Vec<(String, u32)>,
}

/// Line numbers (1-based) of a value and, for mappings and sequences, of its children.
#[derive(Debug, Clone, PartialEq)]
pub enum Lines {
    Leaf(u32),
    Map(u32, Vec<(String, Lines)>),
    Seq(u32, Vec<Lines>),
}

impl Lines {
    /// The line where this node starts.
    pub fn line(&self) -> u32 {
        match self {
            Lines::Leaf(l) | Lines::Map(l, _) | Lines::Seq(l, _) => *l,
        }
    }

    fn child_key(&self, key: &str) -> Option<&Lines> {
        match self {
            Lines::Map(_, entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn child_index(&self, i: usize) -> Option<&Lines> {
        match self {
            Lines::Seq(_, items) => items.get(i),
            _ => None,
        }
    }

    /// The line of the deepest node on `path` (a field path such as `spec.rules[0].matches`)
    /// that exists: a finding about a missing field points at its parent.
    pub fn line_of(&self, path: &str) -> u32 {
        let mut node = self;
        for seg in crate::path::segments(path) {
            let next = match seg {
                crate::path::Segment::Key(k) => node.child_key(k),
                crate::path::Segment::Index(i) => node.child_index(i),
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.line()
    }

    /// A tree where every node is on `line`: for objects that came from somewhere without lines.
    pub fn flat(line: u32) -> Lines {
        Lines::Leaf(line)
    }
}

/// A YAML syntax error, with the 1-based line and column where the parser stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SyntaxError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// How deep mappings and sequences may nest. Kubernetes objects nest a few dozen levels at
/// most; a limit keeps hostile input (`[[[[...`) from exhausting the stack when values are
/// checked or dropped.
pub const MAX_DEPTH: usize = 256;

/// Nodes that aliases may add to one document, beyond [`ALIAS_RATIO`] per node written: a
/// 600-byte "billion laughs" document would otherwise expand to billions of nodes. Like the
/// Kubernetes YAML library's "excessive aliasing" check, ordinary anchors and merge keys stay
/// far below it.
pub const ALIAS_BUDGET: u64 = 100_000;
/// Nodes aliases may add per node written in the document.
pub const ALIAS_RATIO: u64 = 10;

/// Parse every document of a YAML stream. Empty documents (a lone `---`, comments only) are
/// dropped, as kubectl drops them.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxError {
            line: e.marker().line() as u32,
            column: e.marker().col() as u32 + 1,
            message: e.info().to_string(),
        })?;
        if let Some(doc) = builder.event(event, span)? {
            if !doc.value.is_null() {
                docs.push(doc);
            }
        }
    }
    Ok(docs)
}

/// A node under construction.
enum Frame {
    Map {
        line: u32,
        anchor: usize,
        /// Nodes in this subtree so far, aliases expanded.
        size: u64,
        map: Map<String, Value>,
        lines: Vec<(String, Lines)>,
        key: Option<(String, u32)>,
        /// Keys that came from a `<<` merge: an explicit key may override them.
        merged: Vec<String>,
    },
    Seq {
        line: u32,
        anchor: usize,
        size: u64,
        items: Vec<Value>,
        lines: Vec<Lines>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Anchored nodes with their size in nodes.
    anchors: HashMap<usize, (Value, Lines, u64)>,
    root: Option<(Value, Lines)>,
    duplicate_keys: Vec<(String, u32)>,
    /// Nodes written in the document, and nodes its aliases added.
    written: u64,
    expanded: u64,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<Option<Document>, SyntaxError> {
        let line = span.start.line() as u32;
        match event {
            Event::DocumentStart(_) => {
                self.root = None;
                self.anchors.clear();
                self.duplicate_keys.clear();
                self.written = 0;
                self.expanded = 0;
            }
            Event::DocumentEnd => {
                let (value, lines) = self.root.take().unwrap_or((Value::Null, Lines::Leaf(line)));
                return Ok(Some(Document {
                    value,
                    lines,
                    duplicate_keys: std::mem::take(&mut self.duplicate_keys),
                }));
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| t.suffix.clone());
                let value = resolve_scalar(&text, style, tag.as_deref());
                self.written += 1;
                self.value(value, Lines::Leaf(line), anchor, line, 1)?;
            }
            Event::Alias(id) => {
                let error = |message: String| SyntaxError {
                    line,
                    column: span.start.col() as u32 + 1,
                    message,
                };
                let size = self
                    .anchors
                    .get(&id)
                    .map(|(_, _, size)| *size)
                    .ok_or_else(|| error("alias to an unknown anchor".into()))?;
                // Counted before the copy is made: the budget bounds the work, not just the
                // result.
                self.expanded += size;
                let allowed = ALIAS_BUDGET + ALIAS_RATIO * self.written;
                if self.expanded > allowed {
                    return Err(error(format!(
                        "excessive aliasing: aliases expand to more than {allowed} nodes \
                         (a YAML alias bomb?); write the repeated parts out or use fewer aliases"
                    )));
                }
                let (value, lines, _) = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| error("alias to an unknown anchor".into()))?;
                self.value(value, lines, 0, line, size)?;
            }
            Event::MappingStart(..) | Event::SequenceStart(..) if self.stack.len() >= MAX_DEPTH => {
                return Err(SyntaxError {
                    line,
                    column: span.start.col() as u32 + 1,
                    message: format!("nested deeper than {MAX_DEPTH} levels"),
                });
            }
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                line,
                anchor,
                size: 1,
                map: Map::new(),
                lines: Vec::new(),
                key: None,
                merged: Vec::new(),
            }),
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                line,
                anchor,
                size: 1,
                items: Vec::new(),
                lines: Vec::new(),
            }),
            Event::MappingEnd | Event::SequenceEnd => {
                // Finished nodes are trimmed to their size: every object of a load is kept
                // whole (for findings), so growth slack would be paid per node.
                self.written += 1;
                let (value, lines, anchor, start, size) = match self.stack.pop() {
                    Some(Frame::Map {
                        line,
                        anchor,
                        size,
                        map,
                        mut lines,
                        ..
                    }) => {
                        lines.shrink_to_fit();
                        let map: Map<String, Value> = map.into_iter().collect();
                        (
                            Value::Object(map),
                            Lines::Map(line, lines),
                            anchor,
                            line,
                            size,
                        )
                    }
                    Some(Frame::Seq {
                        line,
                        anchor,
                        size,
                        mut items,
                        mut lines,
                    }) => {
                        items.shrink_to_fit();
                        lines.shrink_to_fit();
                        (
                            Value::Array(items),
                            Lines::Seq(line, lines),
                            anchor,
                            line,
                            size,
                        )
                    }
                    None => return Ok(None),
                };
                self.value(value, lines, anchor, start, size)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(None)
    }

    /// Attach a finished node to its parent (or make it the document root).
    fn value(
        &mut self,
        value: Value,
        lines: Lines,
        anchor: usize,
        line: u32,
        size: u64,
    ) -> Result<(), SyntaxError> {
        if anchor != 0 {
            self.anchors
                .insert(anchor, (value.clone(), lines.clone(), size));
        }
        match self.stack.last_mut() {
            Some(Frame::Map { size: s, .. } | Frame::Seq { size: s, .. }) => *s += size,
            None => {}
        }
        let parent_path = if matches!(self.stack.last(), Some(Frame::Map { key: Some((k, _)), map, .. }) if map.contains_key(k))
        {
            // Only a repeated key needs its path, for the message.
            self.path()
        } else {
            String::new()
        };
        match self.stack.last_mut() {
            None => self.root = Some((value, lines)),
            Some(Frame::Seq {
                items, lines: l, ..
            }) => {
                items.push(value);
                l.push(lines);
            }
            Some(Frame::Map {
                map,
                lines: l,
                key,
                merged,
                ..
            }) => match key.take() {
                None => {
                    let k = match value {
                        Value::String(s) => s,
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    *key = Some((k, line));
                }
                Some((k, _)) => {
                    if k == "<<" {
                        // YAML merge key: copy the merged mapping's entries that are not set.
                        if let (Value::Object(src), Lines::Map(_, src_lines)) = (value, lines) {
                            for (mk, mv) in src {
                                if !map.contains_key(&mk) {
                                    let ml = src_lines
                                        .iter()
                                        .find(|(n, _)| *n == mk)
                                        .map(|(_, l)| l.clone())
                                        .unwrap_or(Lines::Leaf(line));
                                    l.push((mk.clone(), ml));
                                    merged.push(mk.clone());
                                    map.insert(mk, mv);
                                }
                            }
                        }
                        return Ok(());
                    }
                    if let Some(i) = merged.iter().position(|m| *m == k) {
                        merged.swap_remove(i);
                    } else if map.contains_key(&k) {
                        self.duplicate_keys
                            .push((crate::path::join(&parent_path, &k), line));
                    }
                    l.push((k.clone(), lines));
                    map.insert(k, value);
                }
            },
        }
        Ok(())
    }

    /// The field path of the node being built, for messages about duplicate keys.
    fn path(&self) -> String {
        let mut out = String::new();
        let parents = self.stack.len().saturating_sub(1);
        for frame in &self.stack[..parents] {
            match frame {
                Frame::Map {
                    key: Some((k, _)), ..
                } => out = crate::path::join(&out, k),
                Frame::Seq { items, .. } => out = format!("{out}[{}]", items.len()),
                _ => {}
            }
        }
        out
    }
}

/// Resolve a scalar as go-yaml v2 does for kubectl: quoted scalars are strings, plain ones may
/// be null, booleans, integers or floats.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text.to_string()),
        Some("int") | Some("float") | Some("bool") | Some("null") | None => {}
        Some(_) => return Value::String(text.to_string()),
    }
    if !matches!(style, ScalarStyle::Plain) {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => {
            return Value::Bool(true)
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => {
            return Value::Bool(false)
        }
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n);
    }
    if let Some(f) = parse_float(text) {
        if let Some(n) = Number::from_f64(f) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

fn parse_int(text: &str) -> Option<Number> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (radix, digits) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix) || c == '_') {
        return None;
    }
    let digits = digits.replace('_', "");
    let magnitude = u64::from_str_radix(&digits, radix).ok()?;
    if neg {
        let v = i64::try_from(magnitude).ok()?;
        Some(Number::from(-v))
    } else {
        Some(Number::from(magnitude))
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E' | '_'))
        && text.chars().any(|c| c.is_ascii_digit());
    if !looks_numeric {
        return None;
    }
    text.replace('_', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_fields() {
        let docs = parse_documents(
            "a: 1\nspec:\n  rules:\n  - name: x\n    backendRefs:\n    - name: b\n      port: 80\n---\n---\nb: 2\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        assert_eq!(d.value["spec"]["rules"][0]["backendRefs"][0]["port"], 80);
        assert_eq!(d.lines.line_of("spec.rules[0].backendRefs[0]"), 6);
        assert_eq!(d.lines.line_of("spec.rules[0].backendRefs[0].port"), 7);
        assert_eq!(d.lines.line_of("spec.rules[0].missing"), 4);
        assert_eq!(docs[1].lines.line_of("b"), 10);
    }

    #[test]
    fn scalars_resolve_like_kubectl() {
        let d = &parse_documents("a: '80'\nb: 80\nc: on\nd: ~\ne: 1.5\nf: 0x10\ng: v1\nh: -3\n")
            .unwrap()[0];
        assert_eq!(d.value["a"], "80");
        assert_eq!(d.value["b"], 80);
        assert_eq!(d.value["c"], true);
        assert!(d.value["d"].is_null());
        assert_eq!(d.value["e"], 1.5);
        assert_eq!(d.value["f"], 16);
        assert_eq!(d.value["g"], "v1");
        assert_eq!(d.value["h"], -3);
    }

    #[test]
    fn json_is_yaml() {
        let d =
            &parse_documents("{\"kind\": \"Service\", \"spec\": {\"ports\": [{\"port\": 80}]}}")
                .unwrap()[0];
        assert_eq!(d.value["spec"]["ports"][0]["port"], 80);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse_documents("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
        assert!(e.column >= 1);
    }

    #[test]
    fn anchors_merge_and_duplicates() {
        let d = &parse_documents("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nk: 1\nk: 2\n")
            .unwrap()[0];
        assert_eq!(d.value["use"]["x"], 1);
        assert_eq!(d.value["k"], 2);
        assert_eq!(d.duplicate_keys, vec![("k".to_string(), 6)]);
    }

    /// "Billion laughs": nine levels of ten aliases each would be 10^9 nodes.
    fn laughs(merge: bool) -> String {
        let mut text = String::from("a0: &a0 [lol]\n");
        for i in 1..10 {
            let refs: Vec<String> = (0..10).map(|_| format!("*a{}", i - 1)).collect();
            if merge {
                // Merge keys take mappings: each level merges the one below ten times over.
                text = "m0: &a0 {x: lol}\n".to_string();
                for j in 1..10 {
                    let merges: Vec<String> = (0..10)
                        .map(|k| format!("k{k}: {{<<: *a{}}}", j - 1))
                        .collect();
                    text.push_str(&format!("m{j}: &a{j} {{{}}}\n", merges.join(", ")));
                }
                return text;
            }
            text.push_str(&format!("a{i}: &a{i} [{}]\n", refs.join(", ")));
        }
        text
    }

    #[test]
    fn alias_bombs_are_refused_without_expanding() {
        for merge in [false, true] {
            let text = laughs(merge);
            assert!(text.len() < 1500, "{}", text.len());
            let e = parse_documents(&text).unwrap_err();
            assert!(e.message.contains("excessive aliasing"), "{e}");
        }
    }

    #[test]
    fn ordinary_anchors_are_within_budget() {
        // A base mapping merged into 50 routes: what real manifests do.
        let mut text = String::from("base: &b {a: 1, b: 2, c: {d: [1, 2, 3]}}\nitems:\n");
        for i in 0..50 {
            text.push_str(&format!("- {{<<: *b, name: r{i}}}\n"));
        }
        let d = &parse_documents(&text).unwrap()[0];
        assert_eq!(d.value["items"][49]["c"]["d"][2], 3);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = parse_documents(&text).unwrap_err();
        // The parser's own recursion limit may be the one that stops it.
        assert!(
            e.message.contains("nested deeper") || e.message.contains("recursion limit"),
            "{e}"
        );
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_documents(&ok).is_ok());
    }
}
