//! The socket-level load balancer: eBPF programs in C (`bpf/sock_lb.c`, map layouts in
//! `bpf/mesh.h`) and the Rust side that mirrors their layouts, computes what their maps
//! should hold from the Plan, and (on Linux) loads, attaches, fills and reads them.

pub mod layout;
pub mod table;
pub mod view;

#[cfg(target_os = "linux")]
pub mod datapath;

#[cfg(all(target_os = "linux", feature = "testing"))]
pub mod testing;
