//! Running the real mesh-webhook binary in tests: certificates from its own `certs` command,
//! a free loopback port, and the address it logs once it listens.

#![allow(dead_code)] // each test file uses part of it

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_mesh-webhook");

/// The repository root (examples live there).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh directory for one test's files.
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mesh-webhook-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `mesh-webhook certs` (valid for 127.0.0.1) into `dir`; returns the caBundle it printed.
pub fn certs(dir: &Path) -> String {
    let o = Command::new(BIN)
        .args([
            "certs",
            "--service",
            "mesh-webhook",
            "--namespace",
            "mesh-system",
            "--san",
            "127.0.0.1",
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A running webhook; killed, and its directory removed, when dropped.
pub struct Running {
    child: Child,
    pub url: String,
    pub dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Start `mesh-webhook serve ARGS` with certificates from `dir` on a free port; returns once it
/// listens. Its log goes to `<tmp>/mesh-webhook-<name>.log` for a failing test to show.
pub fn serve(name: &str, dir: PathBuf, args: &[&str], env: &[(&str, &Path)]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .args(["--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .env("RUST_LOG", "info,mesh_webhook::cache=debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("mesh-webhook exited before listening")
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if let Some(a) = v.pointer("/fields/addr").and_then(Value::as_str) {
            break a.to_string();
        }
    };
    let log = std::env::temp_dir().join(format!("mesh-webhook-{name}.log"));
    std::thread::spawn(move || {
        let mut f = std::fs::File::create(log).unwrap();
        for l in lines.map_while(Result::ok) {
            let _ = writeln!(f, "{l}");
        }
    });
    Running {
        child,
        url: format!("https://{addr}"),
        dir,
    }
}

/// The CA certificate the test's clients trust.
pub fn ca(dir: &Path) -> reqwest::Certificate {
    reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.crt")).unwrap()).unwrap()
}
