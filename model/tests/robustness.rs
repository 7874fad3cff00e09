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
