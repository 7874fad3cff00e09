//! The maps' keys and values, mirroring `bpf/mesh.h` field for field (`#[repr(C)]`, the
//! same sizes; `layout_matches_the_header` checks them against the C compiler's view).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use mesh_model::plan::services::Transport;

/// `MESH_LAYOUT_VERSION` of `mesh.h`: maps are pinned under `v<version>`.
pub const LAYOUT_VERSION: u32 = 1;

/// `MESH_SERVICE_L7`: slot 0 is the agent's outbound entry.
pub const SERVICE_L7: u32 = 1;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// `struct mesh_addr`: an address (IPv6, or IPv4 mapped) and a port, both in network order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr {
    pub addr: [u8; 16],
    pub port: [u8; 2],
    pub pad: u16,
}

impl Addr {
    pub fn new(sa: SocketAddr) -> Self {
        Addr {
            addr: mapped(sa.ip()).octets(),
            port: sa.port().to_be_bytes(),
            pad: 0,
        }
    }

    /// The socket address, IPv4 when mapped.
    pub fn socket_addr(&self) -> SocketAddr {
        socket_addr(self.addr, self.port)
    }
}

/// `struct mesh_frontend`: the key of `mesh_services`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub addr: [u8; 16],
    pub port: [u8; 2],
    pub proto: u8,
    pub pad: u8,
}

impl Frontend {
    pub fn new(sa: SocketAddr, transport: Transport) -> Self {
        Frontend {
            addr: mapped(sa.ip()).octets(),
            port: sa.port().to_be_bytes(),
            proto: match transport {
                Transport::Tcp => IPPROTO_TCP,
                Transport::Udp => IPPROTO_UDP,
            },
            pad: 0,
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        socket_addr(self.addr, self.port)
    }

    /// The transport, `None` for a protocol number the programs never write.
    pub fn transport(&self) -> Option<Transport> {
        match self.proto {
            IPPROTO_TCP => Some(Transport::Tcp),
            IPPROTO_UDP => Some(Transport::Udp),
            _ => None,
        }
    }
}

/// `struct mesh_service`: the value of `mesh_services`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Service {
    pub version: u32,
    pub count: u32,
    pub flags: u32,
}

/// `struct mesh_slot_key`: the key of `mesh_slots`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotKey {
    pub frontend: Frontend,
    pub version: u32,
    pub slot: u32,
}

/// `enum mesh_stat`: the counters of `mesh_stats`, with their Prometheus names.
pub const STATS: [(u32, &str, &str); 7] = [
    (
        0,
        "mesh_bpf_connect_tcp_total",
        "TCP connects to a Service translated to a backend",
    ),
    (
        1,
        "mesh_bpf_connect_udp_total",
        "UDP connects and datagrams to a Service translated to a backend",
    ),
    (
        2,
        "mesh_bpf_redirect_l7_total",
        "TCP connects to a Service redirected to the agent's outbound entry",
    ),
    (
        3,
        "mesh_bpf_refused_no_backend_total",
        "connects refused because the Service had no ready backend",
    ),
    (
        4,
        "mesh_bpf_refused_family_total",
        "connects refused because the backend was of another address family",
    ),
    (
        5,
        "mesh_bpf_reverse_total",
        "getpeername answers and UDP reply sources rewritten back to the Service",
    ),
    (
        6,
        "mesh_bpf_untracked_total",
        "connects translated whose socket could not be remembered (--bpf-max-sockets reached): getpeername shows the backend, and a redirect is not routed by its original destination",
    ),
];

/// A map's address and port (network order) as a socket address, IPv4 when mapped.
fn socket_addr(addr: [u8; 16], port: [u8; 2]) -> SocketAddr {
    SocketAddr::new(
        Ipv6Addr::from(addr).to_canonical(),
        u16::from_be_bytes(port),
    )
}

/// IPv4 as IPv4-mapped IPv6, the one form the maps hold.
fn mapped(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(target_os = "linux")]
mod pod {
    // SAFETY: plain `#[repr(C)]` structs of integers and byte arrays, with explicit padding
    // fields, so every bit pattern is valid and none has uninitialised bytes.
    unsafe impl aya::Pod for super::Addr {}
    unsafe impl aya::Pod for super::Frontend {}
    unsafe impl aya::Pod for super::Service {}
    unsafe impl aya::Pod for super::SlotKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_header() {
        // mesh.h asserts the same sizes for the C structs (`_Static_assert`, checked when
        // clang builds the programs): a change to one side fails the build or this test.
        assert_eq!(std::mem::size_of::<Addr>(), 20);
        assert_eq!(std::mem::size_of::<Frontend>(), 20);
        assert_eq!(std::mem::size_of::<Service>(), 12);
        assert_eq!(std::mem::size_of::<SlotKey>(), 28);
        let header = include_str!("../mesh.h");
        assert!(header.contains(&format!("#define MESH_LAYOUT_VERSION {LAYOUT_VERSION}")));
        assert!(header.contains("MESH_STAT_MAX = 7"));
    }

    #[test]
    fn addresses_round_trip_in_both_families() {
        for sa in ["127.10.0.1:80", "[fd00::1]:53"] {
            let sa: SocketAddr = sa.parse().unwrap();
            assert_eq!(Addr::new(sa).socket_addr(), sa);
            assert_eq!(Frontend::new(sa, Transport::Udp).socket_addr(), sa);
        }
        let v4 = Addr::new("10.96.0.10:53".parse().unwrap());
        assert_eq!(&v4.addr[10..], &[0xff, 0xff, 10, 96, 0, 10]);
        assert_eq!(v4.port, [0, 53]);
    }
}
