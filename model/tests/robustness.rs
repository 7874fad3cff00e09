//! Random bytes and random YAML never panic the loader or a rule.

use mesh_model::testing::document;

use mesh_model::load::{load_str, LoadOptions};
use mesh_model::{rules, Snapshot, Source};
use proptest::prelude::*;

fn analyze(text: &str) {
    if let Ok(objects) = load_str(text, Source::Stdin, &LoadOptions::default()) {
        let snap = Snapshot::new(objects);
        let _ = rules::check(&snap);
    }
}

proptest! {
    // 300 cases in `make test`; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        analyze(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_yaml_text_never_panics(text in "[ a-z:\\-\\[\\]{},'\"#&*!|>\n]{0,200}") {
        analyze(&text);
    }

    #[test]
    fn random_objects_never_panic(docs in prop::collection::vec(document(), 1..6)) {
        let text = docs.iter().map(|d| serde_json::to_string(d).unwrap()).collect::<Vec<_>>().join("\n---\n");
        analyze(&text);
    }
}

/// Every parsed document becomes exactly one object (a `List` its items), never silently none.
fn documents_in(text: &str) -> usize {
    mesh_model::yaml::parse_documents(text)
        .map(|docs| docs.len())
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]

    /// Random text is either refused with a position, or every document is an object.
    #[test]
    fn input_is_an_error_with_a_position_or_objects(text in "[ a-z:\\-\\[\\]{},'\"#&*!|>\n]{0,200}") {
        match load_str(&text, Source::Stdin, &LoadOptions::default()) {
            Err(e) => prop_assert!(e.line.is_some() && e.column.is_some(), "{e}"),
            Ok(objects) => prop_assert!(objects.len() >= documents_in(&text).min(1) || documents_in(&text) == 0),
        }
    }

    /// An object that does not fit its kind's schema is reported (an Error admission refuses it
    /// for: MESH0001, or the rule that files the CRD's finding), never typed as if it did and
    /// never dropped.
    #[test]
    fn schema_misfits_are_findings(docs in prop::collection::vec(document(), 1..4)) {
        let text = docs.iter().map(|d| serde_json::to_string(d).unwrap()).collect::<Vec<_>>().join("\n---\n");
        let objects = load_str(&text, Source::Stdin, &LoadOptions::default()).expect("JSON is YAML");
        prop_assert_eq!(objects.len(), docs.len());
        let snap = Snapshot::new(objects);
        let findings = rules::check(&snap);
        for (i, o) in snap.objects().iter().enumerate() {
            if !snap.is_current(i) {
                continue;
            }
            if matches!(o.resource, mesh_model::resource::Resource::Invalid(_)) {
                prop_assert!(
                    findings.iter().any(|d| rules::refuses(d) && d.resource == o.reference()),
                    "{} is invalid without a finding", o.reference()
                );
            }
        }
    }

    /// Anchors, aliases and merge keys expand to what they name.
    #[test]
    fn aliases_and_merge_keys_expand(v in mesh_model::testing::value(), extra in "[a-z]{1,8}") {
        let flow = serde_json::to_string(&v).unwrap();
        let mut text = format!("base: &b {flow}\nuse: *b\nlist: [*b, *b]\n");
        let merged = v.is_object();
        if merged {
            text.push_str(&format!("merged:\n  <<: *b\n  {extra}x: 1\n"));
        }
        let doc = &mesh_model::yaml::parse_documents(&text).expect("a valid document")[0];
        prop_assert_eq!(&doc.value["use"], &v);
        prop_assert_eq!(&doc.value["list"][1], &v);
        if merged {
            let m = doc.value["merged"].as_object().unwrap();
            for (k, val) in v.as_object().unwrap() {
                prop_assert_eq!(&m[k], val);
            }
            prop_assert_eq!(&m[&format!("{extra}x")], &serde_json::json!(1));
        }
    }

    /// A chain of aliases is expanded when it fits the budget and refused ("excessive
    /// aliasing") when it does not: never expanded without bound.
    #[test]
    fn alias_chains_fit_the_budget_or_are_refused(depth in 1u32..10, fanout in 1u32..12, merge in any::<bool>()) {
        let mut text = if merge { "l0: &l0 {x: 1}\n".to_string() } else { "l0: &l0 [x]\n".to_string() };
        for d in 1..=depth {
            let refs: Vec<String> = (0..fanout).map(|i| if merge { format!("k{i}: {{<<: *l{}}}", d - 1) } else { format!("*l{}", d - 1) }).collect();
            let body = if merge { format!("{{{}}}", refs.join(", ")) } else { format!("[{}]", refs.join(", ")) };
            text.push_str(&format!("l{d}: &l{d} {body}\n"));
        }
        // Nodes the aliases copy: level d holds `fanout` copies of level d-1 (as the loader
        // counts nodes: every scalar, key, sequence and mapping).
        let f = u64::from(fanout);
        let mut size = if merge { 3u64 } else { 2 };
        let mut expanded = 0u64;
        for _ in 1..=depth {
            expanded = expanded.saturating_add(f.saturating_mul(size));
            size = if merge { 1 + f.saturating_mul(3 + size) } else { 1 + f.saturating_mul(size) };
        }
        let allowed = mesh_model::yaml::ALIAS_BUDGET + mesh_model::yaml::ALIAS_RATIO * text.len() as u64;
        match mesh_model::yaml::parse_documents(&text) {
            Ok(_) => prop_assert!(expanded <= allowed, "{expanded} nodes were expanded"),
            Err(e) => {
                prop_assert!(e.message.contains("excessive aliasing"), "{e}");
                prop_assert!(expanded > mesh_model::yaml::ALIAS_BUDGET, "refused only {expanded} nodes");
            }
        }
    }

    /// Normalised paths are absolute, free of dot-segments and stable.
    #[test]
    fn normalised_paths_are_stable(path in "/[a-z./%2eE]{0,40}") {
        use mesh_model::plan::target::normalize_path;
        if let Ok(once) = normalize_path(&path, false) {
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.split('/').any(|s| s == "." || s == ".."), "{once}");
            prop_assert_eq!(normalize_path(&once, false).unwrap(), once.clone());
        }
    }
}
