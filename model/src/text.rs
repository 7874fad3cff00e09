//! Small text helpers for messages: "did you mean" and proto JSON name spellings.

/// Edit distance between two strings (Levenshtein, by characters).
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is within `max` edits (and not `word` itself).
pub fn closest(
    word: &str,
    candidates: impl IntoIterator<Item = String>,
    max: usize,
) -> Option<String> {
    candidates
        .into_iter()
        .filter(|c| c != word)
        .map(|c| (distance(word, &c), c))
        .filter(|(d, _)| *d <= max)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
        .map(|(_, c)| c)
}

/// `cluster_name` -> `clusterName`: proto3 JSON accepts both spellings of a field.
pub fn lower_camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(
            closest("Servce", ["Service".into(), "Secret".into()], 2),
            Some("Service".into())
        );
        assert_eq!(closest("zzz", ["Service".into()], 2), None);
        assert_eq!(lower_camel("eds_cluster_config"), "edsClusterConfig");
    }
}
