//! Test support: a cgroup v2 and a pin folder of the test's own, so a test's programs act on
//! the processes it puts there and nothing else, and are gone when it ends.

use std::path::{Path, PathBuf};

/// A cgroup and a pin folder made for one test, detached and removed when dropped.
pub struct Sandbox {
    pub cgroup: PathBuf,
    pub pins: PathBuf,
}

impl Sandbox {
    /// `None`, after a line saying why, where eBPF cgroup programs cannot run (not root, no
    /// cgroup v2): the caller skips.
    pub fn new(name: &str) -> Option<Sandbox> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: eBPF cgroup programs need root");
            return None;
        }
        let root = match crate::datapath::cgroup2_root() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skipped: no cgroup v2: {e}");
                return None;
            }
        };
        let id = format!("mesh-test-{}-{name}", std::process::id());
        let cgroup = root.join(&id);
        std::fs::create_dir_all(&cgroup).expect("making the test cgroup");
        Some(Sandbox {
            cgroup,
            pins: Path::new("/sys/fs/bpf").join(id),
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = crate::datapath::uninstall(&self.pins);
        // Children the test left in the cgroup keep it busy; they are the test's to end.
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}
