//! Random AdmissionReviews never panic decoding, validation or mutation: every body gets a
//! response or a clear error. Bounded for CI; `PROPTEST_CASES=N` for a longer run.

use proptest::prelude::*;
use serde_json::{json, Value};

use mesh_webhook::review;

fn operation() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!("CREATE"),
        json!("UPDATE"),
        json!("DELETE"),
        json!("CONNECT"),
        json!("PATCH"),
        json!(7),
        Value::Null,
    ])
}

fn envelope() -> impl Strategy<Value = Value> {
    (mesh_model::testing::document(), operation(), prop::bool::ANY, prop::sample::select(vec!["admission.k8s.io/v1", "admission.k8s.io/v1beta1", ""]))
        .prop_map(|(object, op, with_request, api)| {
            let api_version = object["apiVersion"].as_str().unwrap_or("").to_string();
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version.as_str()));
            let mut review = json!({"apiVersion": api, "kind": "AdmissionReview"});
            if with_request {
                review["request"] = json!({"uid": "u", "kind": {"group": group, "version": version, "kind": object["kind"]},
                    "name": "n", "namespace": "ns", "operation": op, "object": object, "oldObject": object});
            }
            review
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_reviews_never_panic(review in envelope()) {
        let body = serde_json::to_vec(&review).unwrap();
        if let Ok(req) = review::parse(&body) {
            let _ = review::validate(&req, &review::ClusterView::default());
            let _ = review::mutate(&req);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let _ = review::parse(&bytes);
    }
}
