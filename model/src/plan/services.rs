//! The Service table of the socket-level load balancer: every ClusterIP frontend of every
//! Service (address, port, protocol) with the cluster holding its backends, and whether its
//! traffic goes through the agent's L7 proxy because mesh (GAMMA) routes are attached to it.
//!
//! The eBPF programs translate a connect to a frontend into a backend; this table is what
//! the agent writes into their maps, what `kubectl mesh proxy-config services` shows, and
//! how the outbound entry turns a recorded original destination back into a Service.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::object::Object;
use crate::resource::Resource;

/// The transport of a Service port the socket load balancer handles (SCTP is left to
/// the kernel's own path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
        }
    }
}

/// One Service port, reachable on each of the Service's ClusterIPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFrontend {
    /// `namespace/name` of the Service.
    pub service: String,
    pub port_name: Option<String>,
    /// The ClusterIPs (`spec.clusterIPs`, else `spec.clusterIP`): one per family.
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub transport: Transport,
    /// The Plan cluster (`namespace/name:port`) whose endpoints are the backends.
    pub cluster: String,
    /// Mesh routes (HTTPRoute, GRPCRoute with this Service as parent) apply to the port:
    /// connections go to the agent's outbound entry, which routes each request.
    pub l7: bool,
    /// The port's endpoints that still serve while terminating: its backends while it has no
    /// ready one, as kube-proxy falls back to them (KEP-1669), so a connect to a Service
    /// whose pods are all being replaced still lands. Empty when some endpoint is ready.
    pub terminating: Vec<super::Endpoint>,
}

impl ServiceFrontend {
    /// The Service's cluster-local name with the port, as the mesh entry routes it:
    /// `name.namespace.svc.cluster.local` (with `:port` unless 80).
    pub fn authority(&self) -> String {
        let (ns, name) = self.service.split_once('/').unwrap_or(("", &self.service));
        super::target::mesh_host(&format!("{name}.{ns}.svc.cluster.local"), self.port).into_owned()
    }
}

/// Every frontend, indexed by address, port and transport (the outbound entry looks one up
/// per connection; a cluster has thousands).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceTable {
    frontends: Vec<ServiceFrontend>,
    index: HashMap<(IpAddr, u16, Transport), usize>,
}

impl ServiceTable {
    pub fn new(frontends: Vec<ServiceFrontend>) -> Self {
        let mut index = HashMap::new();
        for (i, f) in frontends.iter().enumerate() {
            for ip in &f.addresses {
                // The first Service to claim an address keeps it (the API server allows one).
                index.entry((*ip, f.port, f.transport)).or_insert(i);
            }
        }
        ServiceTable { frontends, index }
    }

    pub fn iter(&self) -> impl Iterator<Item = &ServiceFrontend> {
        self.frontends.iter()
    }

    pub fn len(&self) -> usize {
        self.frontends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frontends.is_empty()
    }

    /// The Service port at `addr` (an IPv4-mapped IPv6 address finds its IPv4 frontend).
    pub fn find(&self, addr: SocketAddr, transport: Transport) -> Option<&ServiceFrontend> {
        let i = self
            .index
            .get(&(addr.ip().to_canonical(), addr.port(), transport))?;
        self.frontends.get(*i)
    }
}

/// The ClusterIPs of a Service that the socket load balancer serves: none for a headless
/// Service (`None`), an ExternalName Service, or one not yet allocated an address.
pub(crate) fn cluster_ips(svc: &Object) -> Vec<IpAddr> {
    let Resource::Service(s) = &svc.resource else {
        return Vec::new();
    };
    let Some(spec) = &s.spec else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let listed = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter());
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in listed.filter_map(|a| a.parse::<IpAddr>().ok()) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// The endpoints of a Service's `index`th port that serve while terminating: what the port
/// falls back to when its cluster has no ready endpoint (the caller knows that already).
pub(crate) fn serving_terminating(
    snap: &crate::snapshot::Snapshot,
    svc: &Object,
    index: usize,
) -> Vec<super::Endpoint> {
    let Resource::Service(s) = &svc.resource else {
        return Vec::new();
    };
    let Some(sp) = s.spec.as_ref().and_then(|sp| sp.ports.as_ref()?.get(index)) else {
        return Vec::new();
    };
    let ns = svc.namespace.as_deref().unwrap_or("");
    super::compile::slice_endpoints(snap, ns, &svc.name, sp, |c| {
        c.is_some_and(|c| c.serving == Some(true) && c.terminating == Some(true))
    })
}

/// The transport of a Service port (`TCP` when unset, as the API server defaults it).
pub(crate) fn transport(protocol: Option<&str>) -> Option<Transport> {
    match protocol.unwrap_or("TCP") {
        "TCP" => Some(Transport::Tcp),
        "UDP" => Some(Transport::Udp),
        _ => None,
    }
}
