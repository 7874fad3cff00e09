//! `docs/rules.md`, generated from the catalog so the reference cannot drift from the code.

use super::{catalog, Scope};

/// The whole rules reference as Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Rules reference\n\n\
         Generated from the rule catalog in `model/src/rules/` (run `make docs` after changing a rule; a test fails when this file is stale).\n\n\
         Every rule runs in `kubectl mesh analyze`, the admission webhook and the agent. *Object* rules need only the object itself; \
         *cluster* rules look at other objects and are skipped when the input holds no object of the kind they refer to \
         (a folder of routes without Services says nothing about whether the Services exist).\n\n\
         Suppress a finding with `-S 'CODE=Kind namespace/name'` or the annotation `kubectl-mesh.io/suppress: \"CODE,CODE\"`.\n\n\
         **Levels.** *Error*: what the API server refuses (the targeted Gateway API release's CRD schemas and CEL rules, \
         in the channel the cluster runs; see [Gateway API channels](#gateway-api-channels)), or what no conformant \
         implementation can serve (a route that cannot attach, a listener that cannot be programmed). *Warning*: what the \
         API accepts and another implementation may serve but mesh-agent does not (the finding names the status reason \
         the route gets here, e.g. `InvalidKind` for a ServiceImport backend), and what is valid but likely a mistake. \
         *Info*: context.\n\n\
         | Code | Level | Name | Title |\n| --- | --- | --- | --- |\n",
    );
    for r in catalog() {
        out.push_str(&format!(
            "| [{}](#{}) | {} | {} | {} |\n",
            r.code,
            r.code.to_ascii_lowercase(),
            r.level,
            r.name,
            r.title
        ));
    }
    for r in catalog() {
        out.push_str(&format!(
            "\n## {}\n\n**{}** · {} · {} scope",
            r.code,
            r.name,
            r.level,
            if r.scope == Scope::Object {
                "object"
            } else {
                "cluster"
            }
        ));
        if let Some(reason) = r.reason {
            out.push_str(&format!(" · status reason `{reason}`"));
        }
        out.push_str(&format!(
            "\n\n{}.\n\n{}\n\n**What to do:** {}\n\n",
            r.title, r.doc, r.hint
        ));
        out.push_str(&format!(
            "Bad:\n\n```yaml\n{}```\n\nFixed:\n\n```yaml\n{}```\n",
            r.bad, r.good
        ));
    }
    out.push_str(&channels());
    out.push_str(&envoy_parity());
    out
}

/// How the Gateway API CRDs are checked, per channel.
fn channels() -> String {
    let cat = crate::crd::catalog();
    let kinds = |c| {
        cat.kinds(c)
            .iter()
            .map(|k| {
                let versions: Vec<&str> = k.versions.iter().map(|v| v.name.as_str()).collect();
                format!("{} ({})", k.kind, versions.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "\n## Gateway API channels\n\n\
         Gateway API objects are validated against the CRDs of Gateway API {release}, generated from the release \
         (`scripts/gateway-api/regenerate.sh`): OpenAPI schemas with their defaults (applied before validation, as the \
         API server does), formats, limits and list types, and every `x-kubernetes-validations` CEL rule (MESH0007; \
         transition rules only on update). Findings use the API server's wording and are filed under the rule that \
         explains them (a port under MESH0011, a list size under MESH0012, a hostname under MESH0010, ...).\n\n\
         The channel is `--channel standard|experimental` (analyze, mesh-agent, mesh-webhook), or the \
         `{annotation}` annotation of Gateway API CRDs among analyze's inputs. While it is unknown, objects are \
         checked against the experimental channel, and what only the standard channel refuses is MESH0008 (a warning).\n\n\
         - **standard**: {standard}\n\
         - **experimental**: {experimental}\n",
        release = cat.release,
        annotation = crate::crd::CHANNEL_ANNOTATION,
        standard = kinds(crate::crd::Channel::Standard),
        experimental = kinds(crate::crd::Channel::Experimental),
    )
}

/// What of Envoy's own checking the MESH50xx rules reproduce, and where they knowingly differ.
fn envoy_parity() -> String {
    use crate::envoy::{api, parity, semantics};
    let mut out = format!(
        "\n## Envoy parity\n\n\
         CiliumEnvoyConfig resources are checked the way Envoy {v} checks them: parsed against Envoy's own descriptors \
         (MESH5001, MESH5002), every protoc-gen-validate annotation of every message and of every `typed_config` \
         Envoy unpacks (MESH5017), every regex matcher compiled (MESH5011), and the checks Envoy runs when it builds \
         the configuration (MESH5018, below). `model/tests/envoy_differential.rs` compares analyze's verdict with \
         `envoy --mode validate` on each seed config and on mutations generated from the descriptors (one that breaks \
         each annotated field's constraint and, for bounds, one that meets it exactly), wrapped in a static bootstrap \
         the way Cilium feeds Envoy; it runs in `make test`.\n\n\
         ### Envoy's checks beyond its annotations (MESH5018)\n\n\
         | Check | Applies to | Envoy says |\n| --- | --- | --- |\n",
        v = api::ENVOY_VERSION
    );
    for c in semantics::CHECKS {
        out.push_str(&format!(
            "| `{}` | {} | `{}` |\n",
            c.id,
            c.on,
            c.envoy_says.replace('|', "\\|")
        ));
    }
    out.push_str("\n### Disagreements of the differential test\n\n");
    if parity::KNOWN.is_empty() {
        out.push_str("None: on every case of the differential test, analyze refuses exactly what Envoy refuses.\n");
    } else {
        out.push_str("| Cases | Direction | Why |\n| --- | --- | --- |\n");
        for d in parity::KNOWN {
            let dir = if d.stricter {
                "analyze refuses, Envoy accepts"
            } else {
                "Envoy refuses, analyze accepts"
            };
            out.push_str(&format!("| `{}` | {dir} | {} |\n", d.case, d.reason));
        }
    }
    out.push_str("\n### Differences by design and limits of the oracle\n\n");
    for (what, why) in parity::LIMITS {
        out.push_str(&format!("- **{what}.** {why}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_rules_md_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/rules.md");
        let want = super::markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).expect("write docs/rules.md");
            return;
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(have == want, "docs/rules.md is stale: run `make docs` (UPDATE_DOCS=1 cargo test -p mesh-model docs_rules_md_is_current)");
    }
}
