//! Report formats: text for people, JSON/YAML for scripts, SARIF 2.1.0 for code-scanning UIs.

use mesh_model::{rules, Diagnostic, Level};
use serde_json::{json, Value};

use crate::cli::Format;

fn paint(text: &str, level: Level, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match level {
        Level::Error => "31;1",
        Level::Warning => "33;1",
        Level::Info => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// One finding per line, then its hint indented:
/// `Error [MESH2104] HTTPRoute shop/cart (routes.yaml:14) spec.rules[0].backendRefs[0]: ...`
pub fn text(diags: &[Diagnostic], color: bool) -> String {
    let mut out = String::new();
    for d in diags {
        let line = d.to_string();
        let level = d.level.as_str();
        out.push_str(&paint(level, d.level, color));
        out.push_str(&line[level.len()..]);
        out.push('\n');
        if !d.hint.is_empty() {
            out.push_str("    hint: ");
            out.push_str(&d.hint);
            out.push('\n');
        }
    }
    out
}

/// A finding as data: the same fields in JSON and YAML.
pub fn finding(d: &Diagnostic) -> Value {
    json!({
        "code": d.code,
        "level": d.level.as_str(),
        "message": d.message,
        "hint": d.hint,
        "resource": d.resource,
        "field": d.field,
        "file": d.origin.file(),
        "line": d.origin.line,
        "reason": d.reason,
        "documentationUrl": d.doc_url(),
    })
}

pub fn json(diags: &[Diagnostic]) -> String {
    let list: Vec<Value> = diags.iter().map(finding).collect();
    serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
}

pub fn yaml(diags: &[Diagnostic]) -> String {
    let list: Vec<Value> = diags.iter().map(finding).collect();
    if list.is_empty() {
        return "[]\n".into();
    }
    serde_yaml_ng::to_string(&list).unwrap_or_default()
}

fn sarif_level(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "note",
    }
}

/// SARIF 2.1.0: one run, the catalog as the driver's rules, one result per finding with its
/// file and line.
pub fn sarif(diags: &[Diagnostic]) -> String {
    let catalog = rules::catalog();
    let rule_list: Vec<Value> = catalog
        .iter()
        .map(|r| {
            json!({
                "id": r.code,
                "name": r.name,
                "shortDescription": {"text": r.title},
                "fullDescription": {"text": r.doc},
                "help": {"text": r.hint},
                "helpUri": rules::doc_url(r.code),
                "defaultConfiguration": {"level": sarif_level(r.level)},
            })
        })
        .collect();
    let results: Vec<Value> = diags
        .iter()
        .map(|d| {
            let mut result = json!({
                "ruleId": d.code,
                "ruleIndex": catalog.iter().position(|r| r.code == d.code),
                "level": sarif_level(d.level),
                "message": {"text": format!("{} {}: {} ({})", d.resource, d.field, d.message, d.hint)},
                "logicalLocations": [{"fullyQualifiedName": format!("{}/{}", d.resource, d.field), "kind": "object"}],
            });
            if let Some(file) = d.origin.file() {
                let mut physical = json!({"artifactLocation": {"uri": file}});
                if let Some(line) = d.origin.line {
                    physical["region"] = json!({"startLine": line});
                }
                result["locations"] = json!([{"physicalLocation": physical}]);
            }
            result
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "kubectl-mesh",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/kubectl-mesh/kubectl-mesh",
                "rules": rule_list,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// `--list-rules`: a table, or the catalog as data.
pub fn rules(format: Format, color: bool) -> String {
    let catalog = rules::catalog();
    match format {
        Format::Text => {
            let mut out = format!("{:<9} {:<8} {:<36} {}\n", "CODE", "LEVEL", "NAME", "TITLE");
            for r in catalog {
                let level = format!("{:<8}", r.level.as_str());
                out.push_str(&format!(
                    "{:<9} {} {:<36} {}\n",
                    r.code,
                    paint(&level, r.level, color),
                    r.name,
                    r.title
                ));
            }
            out
        }
        _ => {
            let list: Vec<Value> = catalog
                .iter()
                .map(|r| json!({"code": r.code, "name": r.name, "level": r.level.as_str(), "title": r.title, "reason": r.reason, "scope": format!("{:?}", r.scope), "documentationUrl": rules::doc_url(r.code)}))
                .collect();
            if format == Format::Yaml {
                serde_yaml_ng::to_string(&list).unwrap_or_default()
            } else {
                serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
            }
        }
    }
}
