//! Visit the values at a field-path pattern such as `spec.rules[*].backendRefs[*].port`.
//!
//! Schema limits apply to the same field in many places (rule filters and backendRef filters,
//! every route kind); one table of patterns per limit says where, instead of one loop per type.

use serde_json::Value;

/// Call `f(path, value)` for every value matching `pattern`; `[*]` matches every index.
pub fn each<'a>(root: &'a Value, pattern: &str, f: &mut dyn FnMut(String, &'a Value)) {
    let parts: Vec<&str> = split(pattern);
    visit(root, &parts, String::new(), f);
}

/// The values matching `pattern`, in document order.
pub fn collect<'a>(root: &'a Value, pattern: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    each(root, pattern, &mut |_, v| out.push(v));
    out
}

fn split(pattern: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for piece in pattern.split('.') {
        match piece.strip_suffix("[*]") {
            Some(key) => {
                out.push(key);
                out.push("[*]");
            }
            None => out.push(piece),
        }
    }
    out
}

fn visit<'a>(v: &'a Value, parts: &[&str], path: String, f: &mut dyn FnMut(String, &'a Value)) {
    let Some((first, rest)) = parts.split_first() else {
        f(path, v);
        return;
    };
    if *first == "[*]" {
        if let Value::Array(items) = v {
            for (i, item) in items.iter().enumerate() {
                visit(item, rest, format!("{path}[{i}]"), f);
            }
        }
        return;
    }
    if let Some(child) = v.get(*first) {
        if !child.is_null() {
            visit(child, rest, crate::path::join(&path, first), f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcard_paths() {
        let v = json!({"spec": {"rules": [{"backendRefs": [{"port": 1}, {"port": 2}]}, {"backendRefs": [{"port": 3}]}]}});
        let mut seen = Vec::new();
        each(&v, "spec.rules[*].backendRefs[*].port", &mut |p, v| {
            seen.push((p, v.as_i64().unwrap()))
        });
        assert_eq!(
            seen[2],
            ("spec.rules[1].backendRefs[0].port".to_string(), 3)
        );
        assert_eq!(seen.len(), 3);
    }
}
