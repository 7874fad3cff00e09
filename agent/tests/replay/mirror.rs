//! Upstream's mirror checks, read from what the backends received instead of their pods' logs.
//!
//! `http.ExpectMirroredRequest` looks in each mirror backend's logs for "Echoing back request
//! made to PATH"; HTTPRouteRequestPercentageMirror sends 500 requests with a fresh
//! `gateway-api-conformance-request-id` and holds the number the mirror backend got within
//! three binomial standard deviations of its percentage, trying five times. Here every backend
//! records what it received (`mesh_echo::Args::seen`), so the same counts are read from that.

use serde_json::{json, Value};

/// One `MirroredTo` entry of an expected response.
pub struct Mirror {
    /// The backend (its Deployment's name, which its pods' names begin with).
    pub name: String,
    pub namespace: String,
    /// `Percent`, when the mirror takes only part of the requests.
    pub percent: Option<f64>,
}

pub fn mirrors(expected: &Value) -> Vec<Mirror> {
    expected
        .get("MirroredTo")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| Mirror {
            name: text(m, "/BackendRef/Name"),
            namespace: text(m, "/BackendRef/Namespace"),
            percent: m.get("Percent").and_then(Value::as_f64),
        })
        .collect()
}

fn text(v: &Value, path: &str) -> String {
    v.pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// How many requests for `target` (path and query, as the echo server logs them) the pods of
/// `mirror` received among `seen`.
pub fn count(seen: &[Value], mirror: &Mirror, target: &str) -> usize {
    let prefix = format!("{}-", mirror.name);
    seen.iter()
        .filter(|r| {
            let pod = r["pod"].as_str().unwrap_or_default();
            let got = r["path"].as_str().unwrap_or_default();
            pod.starts_with(&prefix) && r["namespace"] == mirror.namespace.as_str() && got == target
        })
        .count()
}

/// The exchange's expectation with `gateway-api-conformance-request-id=ID` added to the
/// request's path and to the path the backend must see (`AddRequestIDQueryParam`).
pub fn with_request_id(expected: &Value, id: &str) -> Value {
    let add = |path: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}gateway-api-conformance-request-id={id}")
    };
    let mut e = expected.clone();
    let path = add(e
        .pointer("/Request/Path")
        .and_then(Value::as_str)
        .unwrap_or("/"));
    let backend_path = match e
        .pointer("/ExpectedRequest/Request/Path")
        .and_then(Value::as_str)
    {
        Some(p) if !p.is_empty() => add(p),
        _ => path.clone(),
    };
    e["Request"]["Path"] = json!(path);
    if e.get("ExpectedRequest").is_some_and(|r| !r.is_null()) {
        e["ExpectedRequest"]["Request"]["Path"] = json!(backend_path);
    }
    e
}

/// testMirroredRequestsDistribution's band: `mirrored` of `total` requests within three
/// binomial standard deviations of `percent`.
pub fn within_band(mirrored: usize, total: usize, percent: f64) -> Result<(), String> {
    let p = percent / 100.0;
    let n = total as f64;
    let want = n * p;
    let band = 3.0 * (n * p * (1.0 - p)).sqrt();
    if (mirrored as f64 - want).abs() <= band {
        Ok(())
    } else {
        Err(format!(
            "{mirrored} of {total} requests mirrored, expected {want:.0} ± {band:.1} ({percent}%)"
        ))
    }
}
