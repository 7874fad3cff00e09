//! A network namespace of the calling thread's own, in which endpoint addresses of the API
//! server's kind are real.
//!
//! An API server refuses loopback endpoint addresses, so a Service whose EndpointSlices the
//! agent should reach needs addresses of another range; the tests use 198.19.0.0/16 (RFC
//! 2544's, routed nowhere: see [`crate::off_loopback`]). In a namespace of the test's own, that
//! range is made local (like 127.0.0.0/8: any address of it can be bound, `ip route add local`),
//! so backends listen there and every packet stays inside the namespace, which has no other
//! interface than loopback and a veth pair of its own: nothing can leave it, even by mistake.

use std::process::Command;

/// The range local to the namespace: where test backends listen and EndpointSlices point.
pub const ENDPOINTS: &str = "198.19.0.0/16";

/// The API server's advertised address in the namespace, on its veth interface.
pub const ADVERTISED: &str = "198.18.255.254/32";

/// Move the calling thread into a new network namespace with loopback up and [`ENDPOINTS`]
/// local. Threads and processes it starts afterwards (the control plane, the agent, tokio's
/// workers) are inside too; other threads of the process are not.
///
/// Needs CAP_SYS_ADMIN (the tests run as root); the error says so for a test to skip with.
pub fn enter() -> Result<(), String> {
    // SAFETY: unshare only changes the calling thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "cannot make a network namespace ({}); run as root",
            std::io::Error::last_os_error()
        ));
    }
    // kube-apiserver advertises the address of the interface of the default route (the
    // `kubernetes` Service's endpoint) and refuses to start without one: one end of a veth
    // pair whose both ends are in the namespace carries the default route and that address
    // (what is sent there arrives at the other end, is not for it, and is dropped: the
    // namespace does not forward).
    let steps: [&[&str]; 7] = [
        &["link", "set", "lo", "up"],
        &[
            "route", "add", "local", ENDPOINTS, "dev", "lo", "table", "local",
        ],
        &[
            "link", "add", "mesh0", "type", "veth", "peer", "name", "mesh1",
        ],
        &["addr", "add", ADVERTISED, "dev", "mesh0"],
        &["link", "set", "mesh0", "up"],
        &["link", "set", "mesh1", "up"],
        &["route", "add", "default", "dev", "mesh0"],
    ];
    for args in steps {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}
