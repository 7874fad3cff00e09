//! `-S/--suppress 'CODE=Kind namespace/name'`, as istioctl's `-S`.

use mesh_model::Diagnostic;

#[derive(Debug, Clone, PartialEq)]
pub struct Suppression {
    code: String,
    kind: String,
    name: String,
}

impl Suppression {
    /// Parse `CODE=Kind namespace/name` (or `CODE=Kind name`, or `CODE=*`).
    pub fn parse(s: &str) -> Result<Suppression, String> {
        let (code, target) = s.split_once('=').ok_or_else(|| {
            format!("suppression {s:?} is not of the form 'CODE=Kind namespace/name'")
        })?;
        let target = target.trim();
        let (kind, name) = match target.split_once(' ') {
            Some((k, n)) => (k.trim(), n.trim()),
            None if target == "*" => ("*", "*"),
            None => {
                return Err(format!(
                    "suppression {s:?}: expected 'Kind namespace/name' after '=' (use '*' for any)"
                ))
            }
        };
        Ok(Suppression {
            code: code.trim().to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        })
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn matches(&self, d: &Diagnostic) -> bool {
        let full = match &d.resource.namespace {
            Some(ns) => format!("{ns}/{}", d.resource.name),
            None => d.resource.name.clone(),
        };
        glob(&self.code, d.code) && glob(&self.kind, &d.resource.kind) && glob(&self.name, &full)
    }
}

/// `*` matches any run of characters; everything else matches itself (case-sensitively, but
/// codes compare case-insensitively via the caller's upper-casing).
fn glob(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("shop/*", "shop/cart"));
        assert!(!glob("shop/*", "hr/cart"));
        assert!(glob("*", "x"));
        assert!(glob("MESH21*", "mesh2104"));
        assert!(glob("*/cart", "shop/cart"));
        assert!(Suppression::parse("MESH2104").is_err());
        assert!(Suppression::parse("MESH2104=HTTPRoute").is_err());
        assert!(Suppression::parse("MESH2104=*").is_ok());
    }
}
