//! `kubectl mesh analyze` as users run it: the real binary, real files, stdin, exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const FORMATS: [&str; 4] = ["text", "json", "yaml", "sarif"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn mesh(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh"))
        .args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl-mesh");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every scenario folder of examples/ except broken/.
fn clean_examples() -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.ends_with("broken"))
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn bundled_examples_are_clean_in_every_format() {
    let dirs = clean_examples();
    assert!(dirs.len() >= 6, "{dirs:?}");
    let mut args: Vec<&str> = vec!["analyze"];
    args.extend(dirs.iter().map(String::as_str));
    for f in FORMATS {
        let mut a = args.clone();
        a.extend(["-o", f]);
        let o = mesh(&a, None);
        assert_eq!(
            code(&o),
            0,
            "{f}: {}{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    args.extend(["-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&mesh(&args, None).stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!([]),
        "the examples must be clean, including Info findings"
    );
}

/// Each file of examples/broken names the code it must produce in a `# expect:` line.
#[test]
fn every_broken_example_produces_its_code_and_exit_79_in_every_format() {
    let dir = root().join("examples/broken");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no # expect: line", path.display()));
        let rel = path
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let o = mesh(
            &[
                "analyze",
                &rel,
                "-o",
                "json",
                "--failure-threshold",
                "warning",
            ],
            None,
        );
        let findings: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let codes: Vec<&str> = findings
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap())
            .collect();
        assert!(
            codes.contains(&expect),
            "{rel}: expected {expect}, got {codes:?}"
        );
        for f in FORMATS {
            let o = mesh(
                &["analyze", &rel, "-o", f, "--failure-threshold", "warning"],
                None,
            );
            assert_eq!(code(&o), 79, "{rel} -o {f}");
        }
        n += 1;
    }
    assert!(n >= 15, "only {n} broken examples");
}

#[test]
fn text_line_names_kind_object_file_line_and_field() {
    let o = mesh(
        &["analyze", "examples/broken/backend-service-missing.yaml"],
        None,
    );
    let out = stdout(&o);
    assert!(
        out.contains("Error [MESH2104] HTTPRoute shop/cart (examples/broken/backend-service-missing.yaml:25) spec.rules[0].backendRefs[0]: Service shop/cart-v3 not found"),
        "{out}"
    );
    assert!(out.contains("\n    hint: "), "{out}");
    assert!(
        !out.contains('\x1b'),
        "no color when stdout is not a terminal"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("1 error, 0 warnings, 0 infos in 3 objects from 1 file."),
        "summary goes to stderr: {err}"
    );
}

#[test]
fn json_findings_carry_every_field() {
    let o = mesh(
        &[
            "analyze",
            "examples/broken/backend-service-missing.yaml",
            "-o",
            "json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &v[0];
    for key in [
        "code",
        "level",
        "message",
        "hint",
        "resource",
        "field",
        "file",
        "line",
        "documentationUrl",
        "reason",
    ] {
        assert!(!f[key].is_null(), "missing {key}: {f}");
    }
    assert_eq!(f["resource"]["kind"], "HTTPRoute");
    assert_eq!(f["reason"], "BackendNotFound");
}

#[test]
fn yaml_output_parses() {
    let o = mesh(
        &["analyze", "examples/broken/timeout-1ms.yaml", "-o", "yaml"],
        None,
    );
    let v: serde_json::Value = serde_yaml_ng::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["code"], "MESH2011");
    assert_eq!(
        code(&o),
        0,
        "a warning is below the default failure threshold"
    );
}

#[test]
fn sarif_is_2_1_0_with_locations() {
    let o = mesh(&["analyze", "examples/broken", "-o", "sarif"], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert!(run["tool"]["driver"]["rules"].as_array().unwrap().len() >= 45);
    let results = run["results"].as_array().unwrap();
    assert!(results.len() >= 15);
    for r in results {
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("examples/broken/"));
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(run["tool"]["driver"]["rules"][idx]["id"], r["ruleId"]);
    }
}

#[test]
fn stdin_is_read_with_a_dash() {
    let text =
        std::fs::read_to_string(root().join("examples/broken/parent-gateway-typo.yaml")).unwrap();
    let o = mesh(&["analyze", "-", "-o", "json"], Some(&text));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["code"], "MESH2101");
    assert_eq!(v[0]["file"], "<stdin>");
    assert_eq!(code(&o), 79);
}

#[test]
fn input_that_is_not_yaml_exits_65_in_every_format() {
    for f in FORMATS {
        let o = mesh(
            &["analyze", "-", "-o", f],
            Some("kind: Service\nmetadata: {name: [unclosed\n"),
        );
        assert_eq!(code(&o), 65, "-o {f}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("<stdin>:"), "{err}");
    }
    let o = mesh(&["analyze", "no/such/dir"], None);
    assert_eq!(code(&o), 65);
}

#[test]
fn usage_errors_exit_64() {
    assert_eq!(
        code(&mesh(&["analyze", "examples", "-o", "html"], None)),
        64
    );
    assert_eq!(
        code(&mesh(&["analyze", "examples", "-S", "MESH2104"], None)),
        64
    );
    assert_eq!(
        code(&mesh(&["analyze", "--all-findings"], None)),
        64,
        "--all-findings is a flag of --use-kube"
    );
    // No paths reads the cluster; none reachable is unreadable input, said with the file.
    let o = mesh(
        &["--kubeconfig", "/nonexistent/kubeconfig", "analyze"],
        None,
    );
    assert_eq!(code(&o), 65);
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/kubeconfig"));
    assert_eq!(code(&mesh(&["frobnicate"], None)), 64);
}

#[test]
fn thresholds_and_suppressions() {
    let f = "examples/broken/timeout-1ms.yaml";
    assert_eq!(code(&mesh(&["analyze", f], None)), 0);
    assert_eq!(
        code(&mesh(
            &["analyze", f, "--failure-threshold", "warning"],
            None
        )),
        79
    );
    let o = mesh(
        &["analyze", f, "--output-threshold", "error", "-o", "json"],
        None,
    );
    assert_eq!(stdout(&o).trim(), "[]");
    let b = "examples/broken/backend-service-missing.yaml";
    assert_eq!(
        code(&mesh(
            &["analyze", b, "-S", "MESH2104=HTTPRoute shop/*"],
            None
        )),
        0
    );
    assert_eq!(
        code(&mesh(
            &["analyze", b, "-S", "MESH2104=HTTPRoute other/*"],
            None
        )),
        79
    );
    assert_eq!(code(&mesh(&["analyze", b, "-S", "*=*"], None)), 0);
}

#[test]
fn colors_only_when_asked_and_never_with_no_color() {
    let b = "examples/broken/backend-service-missing.yaml";
    assert!(stdout(&mesh(&["analyze", b, "--color", "always"], None))
        .contains("\x1b[31;1mError\x1b[0m"));
    assert!(!stdout(&mesh(&["analyze", b, "--color", "never"], None)).contains('\x1b'));
}

#[test]
fn list_rules_prints_the_catalog() {
    let o = mesh(&["analyze", "--list-rules", "-o", "json"], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.as_array().unwrap().len() >= 45);
    assert!(stdout(&mesh(&["analyze", "--list-rules"], None)).starts_with("CODE"));
}

/// kubectl finds `kubectl-mesh` on PATH and runs it as `kubectl mesh`.
#[test]
fn kubectl_plugin_discovery() {
    let Ok(kubectl) = which("kubectl") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is required in CI (make deps installs kubernetes-client)"
        );
        eprintln!("kubectl not installed; skipping plugin discovery");
        return;
    };
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kubectl-mesh"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new(&kubectl)
        .args(["mesh", "version"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("kubectl-mesh "),
        "{o:?}"
    );
    let o = Command::new(&kubectl)
        .args([
            "mesh",
            "analyze",
            "examples/broken/parent-gateway-typo.yaml",
        ])
        .current_dir(root())
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(79), "{o:?}");
    // Installed as `make install` does (the binary alone in a bin folder), kubectl lists it
    // and nothing else: a folder of cargo's output would also offer `kubectl-mesh.d` (cargo's
    // dependency file), which kubectl reports as a broken plugin.
    let bin = std::env::temp_dir().join(format!("kubectl-mesh-install-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_kubectl-mesh"), bin.join("kubectl-mesh")).unwrap();
    let path = format!("{}:{}", bin.display(), kubectl.parent().unwrap().display());
    let o = Command::new(&kubectl)
        .args(["plugin", "list", "--name-only"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&bin);
    assert!(o.status.success(), "{o:?}");
    let listed: Vec<&str> = std::str::from_utf8(&o.stdout)
        .unwrap_or("")
        .lines()
        .filter(|l| l.starts_with("kubectl-"))
        .collect();
    assert_eq!(listed, ["kubectl-mesh"], "{o:?}");
    assert!(o.stderr.is_empty(), "{o:?}");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// On a real terminal (util-linux `script` gives the binary a pty) output is colored, unless
/// NO_COLOR is set.
#[test]
fn colors_on_a_terminal_but_not_with_no_color() {
    if which("script").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "script (util-linux) is needed for the TTY test"
        );
        return;
    }
    let bin = env!("CARGO_BIN_EXE_kubectl-mesh");
    let run = |env: &str| {
        let cmd = format!("{env} {bin} analyze examples/broken/timeout-1ms.yaml");
        let o = Command::new("script")
            .args(["-qc", &cmd, "/dev/null"])
            .current_dir(root())
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(run("").contains("\x1b[33;1mWarning\x1b[0m"));
    assert!(!run("NO_COLOR=1").contains('\x1b'));
}

/// A reader that closes early (`| head -1`) ends the output quietly, for every command.
#[test]
fn closed_pipe_is_not_a_panic() {
    for args in [
        vec!["completion", "bash"],
        vec!["analyze", "--list-rules"],
        vec!["analyze", "examples/broken", "-o", "sarif"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh"))
            .args(&args)
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
