//! Where `analyze` and Envoy 1.40's `envoy --mode validate` knowingly differ on a
//! CiliumEnvoyConfig, and why. The differential test (`model/tests/envoy_differential.rs`)
//! fails on any disagreement not listed here, and docs/rules.md prints the list.

/// One known difference.
#[derive(Debug, Clone, Copy)]
pub struct Difference {
    /// A part of the differential test's case id (`seed:path:mutation`) that names the cases.
    pub case: &'static str,
    /// `true`: analyze refuses what Envoy accepts, on purpose (Cilium refuses it, or it can
    /// only break traffic). `false`: Envoy refuses what analyze lets through.
    pub stricter: bool,
    pub reason: &'static str,
}

pub const KNOWN: &[Difference] = &[];
