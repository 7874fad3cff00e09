//! Kubernetes label selectors (matchLabels and matchExpressions).

use std::collections::BTreeMap;

pub struct Expression<'a> {
    pub key: &'a str,
    pub operator: &'a str,
    pub values: &'a [String],
}

/// Whether `labels` satisfy the selector. An empty selector matches everything, as in
/// Kubernetes; an unknown operator matches nothing.
pub fn matches(
    match_labels: Option<&BTreeMap<String, String>>,
    exprs: &[Expression<'_>],
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && exprs.iter().all(|e| {
            let have = labels.get(e.key);
            match e.operator {
                "In" => have.is_some_and(|v| e.values.contains(v)),
                "NotIn" => have.is_none_or(|v| !e.values.contains(v)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects() {
        let labels: BTreeMap<String, String> =
            [("shared-gateway-access".to_string(), "true".to_string())].into();
        let want: BTreeMap<String, String> = labels.clone();
        assert!(matches(Some(&want), &[], &labels));
        assert!(!matches(Some(&want), &[], &BTreeMap::new()));
        let vals = vec!["a".to_string()];
        let e = [Expression {
            key: "x",
            operator: "NotIn",
            values: &vals,
        }];
        assert!(matches(None, &e, &labels));
    }
}
