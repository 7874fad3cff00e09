//! Reading objects from files, directories and stdin.
//!
//! Only input that is not YAML at all is an error here ([`LoadError`], exit 65 in the CLI).
//! Everything that parses becomes an [`Object`]: unknown kinds are kept (and skipped by the
//! rules), and objects that do not fit their schema carry [`SchemaProblem`]s for a rule to
//! report, as the API server would reject them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::kind::Kind;
use crate::object::{Object, Origin, Source};
use crate::resource::{type_object, ProblemKind, Resource, SchemaProblem};
use crate::yaml::{parse_documents, Lines};

/// Input that could not be read or is not YAML/JSON.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}{}: {message}", position(.line, .column))]
pub struct LoadError {
    pub origin: Source,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
}

fn position(line: &Option<u32>, column: &Option<u32>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// Where objects come from. Files and stdin today; a Kubernetes watch and files layered over a
/// cluster implement the same trait.
pub trait ObjectSource {
    /// Read every object; unreadable input is reported and the rest is still returned.
    fn objects(&self, opts: &LoadOptions) -> (Vec<Object>, Vec<LoadError>);
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Namespace given to namespaced objects that do not name one (kubectl's `-n`).
    pub default_namespace: String,
    /// Files (and stdin) larger than this are refused unread past the limit: a manifest is
    /// text, and the API server takes objects of at most 3 MiB.
    pub max_file_bytes: u64,
    /// The Gateway API channel whose CRDs the cluster runs; `None` until known (objects are
    /// then checked against the experimental channel, and what only the standard channel
    /// refuses is reported apart).
    pub channel: Option<crate::crd::Channel>,
}

/// The default per-file limit: 64 MiB, room for a rendered chart of thousands of objects.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;

/// A size as the flags take it: bytes, or a number with `Ki`, `Mi` or `Gi` (Kubernetes'
/// quantity suffixes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        _ => {
            return Err(format!(
                "{text:?} is not a size: use bytes or a number with Ki, Mi or Gi"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{text:?} is not a size: use bytes or a number with Ki, Mi or Gi"))
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            default_namespace: "default".into(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            channel: None,
        }
    }
}

/// One command-line input: a path (file or directory) or `-` for stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Path(PathBuf),
    Stdin,
}

impl Input {
    pub fn parse(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::Path(PathBuf::from(arg))
        }
    }
}

/// Files, directories and stdin, in the order given.
pub struct FileSource {
    pub inputs: Vec<Input>,
}

impl ObjectSource for FileSource {
    fn objects(&self, opts: &LoadOptions) -> (Vec<Object>, Vec<LoadError>) {
        self.objects_with(opts, |_, _| {})
    }
}

impl FileSource {
    /// Every object, each file's objects handed to `each` with the file's text in input order,
    /// as soon as the file is parsed: a caller can check and slim them so that the whole input
    /// is never held at full size (see `rules::check_slim`), and keep the text to parse an
    /// object again later (see `lastgood`). Files are read and parsed by up to
    /// [`load_workers`] threads at a time, so at most that many are held at full size.
    pub fn objects_with(
        &self,
        opts: &LoadOptions,
        mut each: impl FnMut(&mut [Object], &Arc<str>),
    ) -> (Vec<Object>, Vec<LoadError>) {
        let mut objects = Vec::new();
        let mut errors = Vec::new();
        let mut deliver = |loaded: Result<(Vec<Object>, Arc<str>), LoadError>,
                           errors: &mut Vec<LoadError>| match loaded {
            Ok((mut o, text)) => {
                each(&mut o, &text);
                objects.append(&mut o);
            }
            Err(e) => errors.push(e),
        };
        let load = |text: String, source: Source| {
            let text: Arc<str> = Arc::from(text);
            load_str(&text, source, opts).map(|o| (o, text))
        };
        let workers = load_workers();
        for input in &self.inputs {
            match input {
                Input::Stdin => {
                    let loaded = read_text(std::io::stdin(), &Source::Stdin, opts)
                        .and_then(|text| load(text, Source::Stdin));
                    deliver(loaded, &mut errors);
                }
                Input::Path(p) => {
                    let files = expand(p, &mut errors);
                    for chunk in files.chunks(workers) {
                        let load_file = |file: &PathBuf| {
                            let source = Source::File(Arc::from(file.display().to_string()));
                            std::fs::File::open(file)
                                .map_err(|e| io_error(source.clone(), e))
                                .and_then(|f| read_text(f, &source, opts))
                                .and_then(|text| load(text, source))
                        };
                        let loaded: Vec<_> = if chunk.len() == 1 {
                            vec![load_file(&chunk[0])]
                        } else {
                            std::thread::scope(|scope| {
                                let handles: Vec<_> = chunk
                                    .iter()
                                    .map(|file| scope.spawn(|| load_file(file)))
                                    .collect();
                                handles
                                    .into_iter()
                                    .zip(chunk)
                                    .map(|(h, file)| {
                                        h.join().unwrap_or_else(|_| {
                                            Err(LoadError {
                                                origin: Source::File(Arc::from(
                                                    file.display().to_string(),
                                                )),
                                                line: None,
                                                column: None,
                                                message: "internal error while loading".into(),
                                            })
                                        })
                                    })
                                    .collect()
                            })
                        };
                        for l in loaded {
                            deliver(l, &mut errors);
                        }
                    }
                }
            }
        }
        (objects, errors)
    }
}

/// How many files are loaded at once: one per core, at most four.
pub fn load_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(1)
}

fn io_error(origin: Source, e: std::io::Error) -> LoadError {
    LoadError {
        origin,
        line: None,
        column: None,
        message: format!("cannot read: {e}"),
    }
}

/// Read at most `opts.max_file_bytes` of UTF-8 text: a larger input is refused (named, with
/// the limit) without reading the rest, so `/dev/zero` or a stray dump costs nothing.
fn read_text(input: impl Read, source: &Source, opts: &LoadOptions) -> Result<String, LoadError> {
    let error = |message: String| LoadError {
        origin: source.clone(),
        line: None,
        column: None,
        message,
    };
    let mut bytes = Vec::new();
    input
        .take(opts.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(source.clone(), e))?;
    if bytes.len() as u64 > opts.max_file_bytes {
        return Err(error(format!(
            "larger than {} bytes: not read (raise the limit with --max-file-size if it really \
             is a manifest)",
            opts.max_file_bytes
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| error("not UTF-8 text: YAML and JSON files must be UTF-8".into()))
}

/// Whether a directory entry's name makes it a manifest: `.yaml`, `.yml` or `.json`.
fn is_manifest(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// A file is itself (whatever it is: the user named it, e.g. `<(helm template ...)`); a
/// directory is every regular `.yaml`, `.yml` and `.json` file below it, sorted so reports are
/// stable.
///
/// The walk follows symbolic links (a ConfigMap volume is made of them) but visits each
/// directory once, so link loops end; it skips hidden entries (`.git`, and the `..data`
/// copies of a ConfigMap volume, which would load every object twice) and anything that is not
/// a regular file (FIFOs, devices, sockets would block or never end).
fn expand(path: &Path, errors: &mut Vec<LoadError>) -> Vec<PathBuf> {
    if !path.is_dir() {
        if !path.exists() {
            errors.push(LoadError {
                origin: Source::File(Arc::from(path.display().to_string())),
                line: None,
                column: None,
                message: "no such file or directory".into(),
            });
            return Vec::new();
        }
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut visited = std::collections::HashSet::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        // A directory is known by its device and inode, whichever link led to it.
        if let Ok(meta) = std::fs::metadata(&dir) {
            use std::os::unix::fs::MetadataExt;
            if !visited.insert((meta.dev(), meta.ino())) {
                continue;
            }
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                errors.push(io_error(
                    Source::File(Arc::from(dir.display().to_string())),
                    e,
                ));
                continue;
            }
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = entry.path();
            // The link's target decides: a dangling link is neither and is skipped.
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() && is_manifest(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Load every object of one YAML or JSON text.
pub fn load_str(text: &str, source: Source, opts: &LoadOptions) -> Result<Vec<Object>, LoadError> {
    let docs = parse_documents(text).map_err(|e| LoadError {
        origin: source.clone(),
        line: Some(e.line),
        column: Some(e.column),
        message: format!("not valid YAML: {}", e.message),
    })?;
    let mut out = Vec::new();
    for doc in docs {
        let mut problems: Vec<SchemaProblem> = doc
            .duplicate_keys
            .iter()
            .map(|(path, _)| SchemaProblem {
                kind: ProblemKind::DuplicateKey,
                field: path.clone(),
                message: format!("key \"{path}\" is written more than once; the last value wins"),
                standard_only: false,
            })
            .collect();
        let is_list = doc
            .value
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && doc.value.get("items").is_some_and(Value::is_array);
        if is_list {
            let items = doc.value["items"].as_array().cloned().unwrap_or_default();
            let item_lines = match &doc.lines {
                Lines::Map(_, entries) => entries
                    .iter()
                    .rev()
                    .find(|(k, _)| k == "items")
                    .map(|(_, l)| l.clone()),
                _ => None,
            };
            for (i, item) in items.into_iter().enumerate() {
                let lines = match &item_lines {
                    Some(Lines::Seq(_, ls)) => {
                        ls.get(i).cloned().unwrap_or(Lines::flat(doc.lines.line()))
                    }
                    _ => Lines::flat(doc.lines.line()),
                };
                out.push(build(item, lines, &source, opts, Vec::new()));
            }
        } else {
            out.push(build(
                doc.value,
                doc.lines,
                &source,
                opts,
                std::mem::take(&mut problems),
            ));
        }
    }
    Ok(out)
}

/// When Gateway API CRDs among `objects` say which channel the cluster runs, settle what was
/// checked without knowing it: what only the standard channel refuses becomes a finding like
/// any other (and the object is refused), or is dropped for the experimental channel.
pub fn settle_channel(objects: &mut [Object]) {
    if !objects
        .iter()
        .any(|o| o.problems.iter().any(|p| p.standard_only))
    {
        return;
    }
    let Some(channel) = crate::crd::channel_of_crds(objects.iter().map(|o| &o.raw)) else {
        return;
    };
    for o in objects {
        match channel {
            crate::crd::Channel::Experimental => o.problems.retain(|p| !p.standard_only),
            crate::crd::Channel::Standard => {
                let mut refused = false;
                for p in o.problems.iter_mut().filter(|p| p.standard_only) {
                    p.standard_only = false;
                    refused = true;
                }
                if let (true, Some(kind)) = (refused, o.known) {
                    o.resource = Resource::Invalid(kind);
                }
            }
        }
    }
}

/// Make an [`Object`] of one document, typed when its kind is known.
pub fn build(
    raw: Value,
    lines: Lines,
    source: &Source,
    opts: &LoadOptions,
    problems: Vec<SchemaProblem>,
) -> Object {
    build_update(raw, None, lines, source, opts, problems)
}

/// [`build`] for an update of `old` (an admission review's `oldObject`): the CRDs' transition
/// rules (those reading `oldSelf`, such as an immutable GatewayClass `controllerName`) run
/// only then, as in the API server.
pub fn build_update(
    raw: Value,
    old: Option<&Value>,
    lines: Lines,
    source: &Source,
    opts: &LoadOptions,
    mut problems: Vec<SchemaProblem>,
) -> Object {
    let text = |key: &str| {
        raw.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let api_version = text("apiVersion");
    let kind_name = text("kind");
    let name = raw
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let written_ns = raw
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let origin = Origin {
        source: source.clone(),
        line: match source {
            Source::Cluster(_) => None,
            _ => Some(lines.line()),
        },
    };
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("", api_version.as_str()));
    let known = Kind::lookup(group, &kind_name);

    if !raw.is_object() || api_version.is_empty() || kind_name.is_empty() {
        problems.push(SchemaProblem {
            kind: ProblemKind::MissingName,
            field: if raw.is_object() {
                if api_version.is_empty() {
                    "apiVersion".into()
                } else {
                    "kind".into()
                }
            } else {
                String::new()
            },
            message: "not a Kubernetes object: apiVersion and kind must be set".into(),
            standard_only: false,
        });
    } else if name.is_empty() && raw.pointer("/metadata/generateName").is_none() {
        problems.push(SchemaProblem {
            kind: ProblemKind::MissingName,
            field: "metadata.name".into(),
            message: "metadata.name is required".into(),
            standard_only: false,
        });
    }

    let namespace = match known {
        Some(k) if k.info().namespaced => {
            Some(written_ns.unwrap_or_else(|| opts.default_namespace.clone()))
        }
        Some(_) => None,
        None => written_ns,
    };

    let crd_findings = crate::crd::check(opts.channel, group, &kind_name, version, &raw, old);
    let refused = match &crd_findings {
        Some(found) => {
            problems.extend(found.refused.iter().map(|v| SchemaProblem::of(v, false)));
            problems.extend(
                found
                    .standard_only
                    .iter()
                    .map(|v| SchemaProblem::of(v, true)),
            );
            !found.refused.is_empty()
        }
        None => false,
    };
    let resource = match known {
        Some(kind) => {
            let info = kind.info();
            if crd_findings.is_none() && !info.served.contains(&version) {
                problems.push(SchemaProblem {
                    kind: ProblemKind::UnservedVersion,
                    field: "apiVersion".into(),
                    message: format!(
                        "{} is not served for {kind_name}; served versions: {}",
                        api_version,
                        info.served
                            .iter()
                            .map(|v| format!("{}/{v}", info.group)
                                .trim_start_matches('/')
                                .to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    standard_only: false,
                });
            }
            // Typed even when the CRD refuses it, so that the rules that explain a mistake
            // better than the schema can still read it; whether it is served is the refusing
            // findings' business (`rules::refuses`). When the CRD already said why, what the
            // types cannot read is not said twice.
            let mut typing = Vec::new();
            let resource = type_object(
                kind,
                &raw,
                namespace.as_deref().unwrap_or(""),
                crd_findings.is_some(),
                &mut typing,
            );
            if !refused {
                problems.append(&mut typing);
            }
            resource
        }
        None => {
            // A kind of one of our groups that is not a real kind there is probably misspelt.
            if crd_findings.is_none() {
                if let Some(meant) = crate::kind::misspelt(group, &kind_name) {
                    problems.push(SchemaProblem {
                        kind: ProblemKind::UnservedVersion,
                        field: "kind".into(),
                        message: format!("{group} has no kind {kind_name}; did you mean {meant}?"),
                        standard_only: false,
                    });
                }
            }
            Resource::Unknown
        }
    };

    Object {
        api_version,
        kind: kind_name,
        name,
        namespace,
        origin,
        lines,
        raw,
        known,
        resource,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Vec<Object> {
        load_str(text, Source::File("t.yaml".into()), &LoadOptions::default()).unwrap()
    }

    #[test]
    fn lists_are_unwrapped_with_lines() {
        let objs = load(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: b}\n",
        );
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].origin.line, Some(4));
        assert_eq!(objs[0].namespace.as_deref(), Some("default"));
        assert_eq!(objs[1].namespace, None);
        assert!(matches!(objs[1].resource, Resource::Namespace(_)));
    }

    #[test]
    fn schema_mismatch_is_a_problem_not_an_error() {
        let objs = load(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n  - matches:\n    - path: {type: Prefix, value: /}\n",
        );
        assert!(matches!(
            objs[0].resource,
            Resource::Invalid(Kind::HttpRoute)
        ));
        // The API server says both: the enum, and the CEL rule on the match that reads it.
        assert_eq!(objs[0].problems.len(), 2, "{:?}", objs[0].problems);
        assert_eq!(objs[0].problems[1].kind, ProblemKind::Rule);
        assert_eq!(
            objs[0].problems[0].field,
            "spec.rules[0].matches[0].path.type"
        );
        assert!(
            objs[0].problems[0].message.starts_with(
                "Unsupported value: \"Prefix\": supported values: \"Exact\", \"PathPrefix\""
            ),
            "{:?}",
            objs[0].problems
        );
    }

    #[test]
    fn unknown_fields_and_kinds() {
        let objs = load(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  hostname: [a.example]\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        );
        assert_eq!(objs[0].problems[0].kind, ProblemKind::UnknownField);
        assert_eq!(objs[0].problems[0].field, "spec.hostname");
        assert!(matches!(objs[1].resource, Resource::Unknown));
        assert!(objs[1].problems.is_empty());
    }

    #[test]
    fn not_yaml_is_an_error_with_position() {
        let e = load_str("a: [\n", Source::Stdin, &LoadOptions::default()).unwrap_err();
        assert!(e.line.is_some());
        assert!(e.to_string().starts_with("<stdin>:"), "{e}");
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mesh-load-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n";

    #[test]
    fn the_folder_walk_reads_regular_manifests_once_and_never_loops() {
        use std::os::unix::fs::symlink;
        let d = temp_dir("walk");
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/svc.yaml"), SERVICE).unwrap();
        // Two loops back up the tree: without a visited set the walk is exponential.
        symlink(d.join("a"), d.join("a/b/up")).unwrap();
        symlink(&d, d.join("a/root")).unwrap();
        // Not regular files: a FIFO would block the reader, /dev/zero never ends.
        let fifo = std::ffi::CString::new(d.join("fifo.yaml").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo only reads the path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        symlink("/dev/zero", d.join("zero.yaml")).unwrap();
        symlink(d.join("nowhere"), d.join("dangling.yaml")).unwrap();
        // Hidden: a ConfigMap volume's `..data` copy would load every object twice.
        std::fs::create_dir_all(d.join("..data")).unwrap();
        std::fs::write(d.join("..data/svc.yaml"), SERVICE).unwrap();
        // A symlinked manifest is read (ConfigMap volumes are made of them).
        symlink(d.join("a/b/svc.yaml"), d.join("linked.yaml")).unwrap();
        let mut errors = Vec::new();
        let files = expand(&d, &mut errors);
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(&d).unwrap().display().to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        // The file is reachable through the loops too, but each directory is read once.
        assert!(
            names.contains(&"a/b/svc.yaml".to_string())
                || names.iter().any(|n| n.ends_with("b/svc.yaml")),
            "{names:?}"
        );
        assert!(names.contains(&"linked.yaml".to_string()), "{names:?}");
        assert!(
            names.iter().all(|n| !n.contains("fifo")
                && !n.contains("zero")
                && !n.contains("..data")
                && !n.contains("dangling")),
            "{names:?}"
        );
        assert!(names.len() <= 3, "{names:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn files_over_the_size_limit_are_refused_unread() {
        let d = temp_dir("size");
        std::fs::write(d.join("big.yaml"), "x".repeat(4096)).unwrap();
        std::fs::write(d.join("small.yaml"), SERVICE).unwrap();
        let source = FileSource {
            inputs: vec![Input::Path(d.clone()), Input::Path("/dev/zero".into())],
        };
        let opts = LoadOptions {
            max_file_bytes: 1024,
            ..LoadOptions::default()
        };
        let (objects, errors) = source.objects(&opts);
        assert_eq!(objects.len(), 1, "the small file still loads");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors
                .iter()
                .all(|e| e.message.contains("larger than 1024 bytes")),
            "{errors:?}"
        );
        assert!(errors[0].to_string().contains("big.yaml"), "{}", errors[0]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn sizes_parse_like_kubernetes_quantities() {
        assert_eq!(parse_size("64Mi"), Ok(64 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2Gi"), Ok(2 << 30));
        assert!(parse_size("12MB").is_err());
        assert!(parse_size("99999999999999Gi").is_err());
    }
}
