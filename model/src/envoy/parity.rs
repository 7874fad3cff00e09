//! Where `analyze` and Envoy 1.40's `envoy --mode validate` knowingly differ on a
//! CiliumEnvoyConfig, and why. The differential test (`model/tests/envoy_differential.rs`)
//! fails on any disagreement not listed in [`KNOWN`]; docs/rules.md prints both lists.

/// One known difference the differential test meets.
#[derive(Debug, Clone, Copy)]
pub struct Difference {
    /// A part of the differential test's case id (`seed:path:mutation`) that names the cases.
    pub case: &'static str,
    /// `true`: analyze refuses what Envoy accepts, on purpose (Cilium refuses it, or it can
    /// only break traffic). `false`: Envoy refuses what analyze lets through.
    pub stricter: bool,
    pub reason: &'static str,
}

/// Disagreements of the differential test, each explained. Empty: on every generated case,
/// analyze's verdict is Envoy's.
pub const KNOWN: &[Difference] = &[];

/// Differences by design or by the oracle's limits, which the differential test does not
/// exercise: (what, why).
pub const LIMITS: &[(&str, &str)] = &[
    (
        "Files named by a config (`filename:` of certificates, keys, CAs, Lua sources) are not read",
        "analyze runs where the config is written, not in the Cilium Envoy pod; Envoy refuses a file it cannot read there.",
    ),
    (
        "Regular expressions are compiled with Rust's `regex`, not RE2",
        "The two accept the same syntax for what configs use (no look-around, no back-references); RE2's program-size limit (`re2.max_program_size.error_level`) is not modelled, so a huge pattern Envoy refuses may pass.",
    ),
    (
        "Load-balancing policy payloads (`load_balancing_policy.policies[].typed_extension_config`) are not checked field by field",
        "Envoy 1.40 does not validate them when it loads them (a LeastRequest `choice_count: 1` passes; a negative slow-start window passes in a cluster with health checks and fails in one without).",
    ),
    (
        "RouteConfigurations no listener of the object uses are checked",
        "Cilium serves them by RDS and Envoy never loads one nobody asks for; a broken one is still a mistake waiting for its listener.",
    ),
    (
        "A route to a cluster nobody defines is a Warning (MESH5019) for RouteConfigurations of `spec.resources`",
        "Cilium delivers them by RDS, where Envoy's `validate_clusters` defaults to false: Envoy accepts them and answers 503. A route configuration inline in a connection manager is checked by Envoy, and by MESH5006 as an Error.",
    ),
    (
        "`max_requests: 0` and other zero circuit-breaker thresholds are Warnings (MESH5012)",
        "Envoy accepts them; every request to the cluster then overflows.",
    ),
    (
        "Cilium's own refusals are Errors although Envoy alone would accept them",
        "Unnamed resources (MESH5003) and duplicate names after Cilium's qualification (MESH5004) make Cilium drop the whole object.",
    ),
    (
        "UDP listeners and SDS validation contexts in upstream transport socket matches are not in the differential corpus",
        "`envoy --mode validate` 1.40 crashes (SIGSEGV) on them, so it cannot be the oracle there; analyze checks their declared constraints and registered types as everywhere else.",
    ),
];
