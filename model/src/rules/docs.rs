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
