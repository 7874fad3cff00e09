//! Compiles `sock_lb.c` with clang (`-target bpf`) when the `programs` feature is on; the
//! object is embedded in the crate and loaded with aya at run time.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=sock_lb.c");
    println!("cargo:rerun-if-changed=mesh.h");
    println!("cargo:rerun-if-env-changed=CLANG");
    if std::env::var_os("CARGO_FEATURE_PROGRAMS").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    // The kernel's uapi headers include <asm/types.h>, which Debian keeps per architecture.
    let multiarch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I/usr/include/{multiarch}"))
        .args(["-c", "sock_lb.c", "-o"])
        .arg(out.join("sock_lb.o"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("clang failed to compile bpf/sock_lb.c ({s}); see its errors above"),
        Err(e) => panic!(
            "cannot run {clang} ({e}): the agent's eBPF programs are compiled with clang. \
             Install it with `apt-get install clang libbpf-dev` (or `make deps`), or set CLANG"
        ),
    }
}
