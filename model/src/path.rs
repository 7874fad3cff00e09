//! Field paths as people read them: `spec.rules[0].backendRefs[1].port`.
//!
//! Diagnostics name fields this way (it is how `kubectl explain` and the API server's own
//! messages spell them), and [`crate::yaml::Lines`] resolves them back to a line.

/// One step of a field path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Split `spec.rules[0].matches` into `spec`, `rules`, `0`, `matches`. Keys that contain
/// dots or brackets (annotation names) can be written in brackets with quotes:
/// `metadata.annotations["mesh.io/x"]`.
pub fn segments(path: &str) -> impl Iterator<Item = Segment<'_>> {
    let mut rest = path;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]").unwrap_or(r.len());
            let key = &r[..end];
            rest = r.get(end + 2..).unwrap_or("");
            return Some(Segment::Key(key));
        }
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            let idx = &r[..end];
            rest = r.get(end + 1..).unwrap_or("");
            match idx.parse() {
                Ok(i) => return Some(Segment::Index(i)),
                Err(_) => return Some(Segment::Key(idx)),
            }
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let key = &rest[..end];
        rest = &rest[end..];
        return Some(Segment::Key(key));
    })
}

/// Append a key to a path, quoting it when it would not read back as one segment.
pub fn join(base: &str, key: &str) -> String {
    let quoted = key.contains(['.', '[', ']']);
    match (base.is_empty(), quoted) {
        (_, true) => format!("{base}[\"{key}\"]"),
        (true, false) => key.to_string(),
        (false, false) => format!("{base}.{key}"),
    }
}

/// A field path kept as steps while a walk descends, and written out only when a finding
/// needs it: walks over every node of large objects would otherwise format a path string per
/// node.
#[derive(Debug, Default, Clone)]
pub struct Trail<'a> {
    steps: Vec<Step<'a>>,
}

#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Trail<'a> {
    pub fn key(&mut self, key: &'a str) {
        self.steps.push(Step::Key(key));
    }

    pub fn index(&mut self, i: usize) {
        self.steps.push(Step::Index(i));
    }

    pub fn pop(&mut self) {
        self.steps.pop();
    }

    pub fn depth(&self) -> usize {
        self.steps.len()
    }

    /// The path below `base`, written as [`join`] would write it.
    pub fn render(&self, base: &str) -> String {
        let mut out = base.to_string();
        for s in &self.steps {
            match s {
                Step::Key(k) => out = join(&out, k),
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// Append a relative path (`a.b[0]`, `["k"]`, or empty) to a base path.
pub fn join_path(base: &str, rel: &str) -> String {
    let rel = rel.trim_start_matches('.');
    match (base.is_empty(), rel.is_empty() || rel.starts_with('[')) {
        (true, _) => rel.to_string(),
        (false, true) => format!("{base}{rel}"),
        (false, false) => format!("{base}.{rel}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = join(&join("metadata", "annotations"), "mesh.io/suppress");
        assert_eq!(p, "metadata.annotations[\"mesh.io/suppress\"]");
        let segs: Vec<_> = segments(&p).collect();
        assert_eq!(
            segs,
            vec![
                Segment::Key("metadata"),
                Segment::Key("annotations"),
                Segment::Key("mesh.io/suppress")
            ]
        );
        let segs: Vec<_> = segments("spec.rules[2].matches[0]").collect();
        assert_eq!(segs[2], Segment::Index(2));
        assert_eq!(segs.len(), 5);
    }
}
