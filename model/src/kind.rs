//! The kinds the model understands, and which API versions of them a cluster serves.

/// Gateway API's group.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// Gateway API's experimental group (`X`-prefixed kinds: XMesh).
pub const GATEWAY_X_GROUP: &str = "gateway.networking.x-k8s.io";
/// Cilium's group, for CiliumEnvoyConfig and CiliumClusterwideEnvoyConfig.
pub const CILIUM_GROUP: &str = "cilium.io";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    GatewayClass,
    Gateway,
    HttpRoute,
    GrpcRoute,
    TlsRoute,
    TcpRoute,
    UdpRoute,
    ListenerSet,
    BackendTlsPolicy,
    ReferenceGrant,
    Namespace,
    Service,
    EndpointSlice,
    Secret,
    ConfigMap,
    CiliumEnvoyConfig,
    CiliumClusterwideEnvoyConfig,
    /// A service mesh and its controller (experimental): the GatewayClass of mesh (GAMMA)
    /// routing, whose status says which mesh features the controller supports.
    XMesh,
}

/// What a cluster with Gateway API, Kubernetes and Cilium CRDs serves for a kind (for Gateway
/// API kinds the targeted release's CRDs, [`crate::crd`], have the last word).
pub struct KindInfo {
    pub kind: Kind,
    /// The `kind` field as written.
    pub name: &'static str,
    pub group: &'static str,
    /// Versions the API server accepts, newest first. For Gateway API kinds this also lists
    /// versions of older releases, which the webhook tries in turn on a cluster; what the targeted
    /// release serves, per channel, is [`crate::crd::catalog`], which load and the rules read.
    pub served: &'static [&'static str],
    pub namespaced: bool,
    /// The resource name in API paths (`httproutes`).
    pub plural: &'static str,
}

/// The route kinds: one view ([`crate::route::Route`]) and the same attachment, backend and
/// ReferenceGrant rules for all of them.
pub const ROUTE_KINDS: &[Kind] = &[
    Kind::HttpRoute,
    Kind::GrpcRoute,
    Kind::TlsRoute,
    Kind::TcpRoute,
    Kind::UdpRoute,
];

pub const KINDS: &[KindInfo] = &[
    KindInfo {
        kind: Kind::GatewayClass,
        name: "GatewayClass",
        group: GATEWAY_GROUP,
        served: &["v1", "v1beta1"],
        namespaced: false,
        plural: "gatewayclasses",
    },
    KindInfo {
        kind: Kind::Gateway,
        name: "Gateway",
        group: GATEWAY_GROUP,
        served: &["v1", "v1beta1"],
        namespaced: true,
        plural: "gateways",
    },
    KindInfo {
        kind: Kind::HttpRoute,
        name: "HTTPRoute",
        group: GATEWAY_GROUP,
        served: &["v1", "v1beta1"],
        namespaced: true,
        plural: "httproutes",
    },
    KindInfo {
        kind: Kind::GrpcRoute,
        name: "GRPCRoute",
        group: GATEWAY_GROUP,
        served: &["v1", "v1alpha2"],
        namespaced: true,
        plural: "grpcroutes",
    },
    KindInfo {
        kind: Kind::TlsRoute,
        name: "TLSRoute",
        group: GATEWAY_GROUP,
        served: &["v1", "v1alpha3", "v1alpha2"],
        namespaced: true,
        plural: "tlsroutes",
    },
    KindInfo {
        kind: Kind::TcpRoute,
        name: "TCPRoute",
        group: GATEWAY_GROUP,
        served: &["v1", "v1alpha2"],
        namespaced: true,
        plural: "tcproutes",
    },
    KindInfo {
        kind: Kind::UdpRoute,
        name: "UDPRoute",
        group: GATEWAY_GROUP,
        served: &["v1", "v1alpha2"],
        namespaced: true,
        plural: "udproutes",
    },
    KindInfo {
        kind: Kind::ListenerSet,
        name: "ListenerSet",
        group: GATEWAY_GROUP,
        served: &["v1"],
        namespaced: true,
        plural: "listenersets",
    },
    KindInfo {
        kind: Kind::BackendTlsPolicy,
        name: "BackendTLSPolicy",
        group: GATEWAY_GROUP,
        served: &["v1"],
        namespaced: true,
        plural: "backendtlspolicies",
    },
    KindInfo {
        kind: Kind::ReferenceGrant,
        name: "ReferenceGrant",
        group: GATEWAY_GROUP,
        served: &["v1", "v1beta1", "v1alpha2"],
        namespaced: true,
        plural: "referencegrants",
    },
    KindInfo {
        kind: Kind::Namespace,
        name: "Namespace",
        group: "",
        served: &["v1"],
        namespaced: false,
        plural: "namespaces",
    },
    KindInfo {
        kind: Kind::Service,
        name: "Service",
        group: "",
        served: &["v1"],
        namespaced: true,
        plural: "services",
    },
    KindInfo {
        kind: Kind::EndpointSlice,
        name: "EndpointSlice",
        group: "discovery.k8s.io",
        served: &["v1"],
        namespaced: true,
        plural: "endpointslices",
    },
    KindInfo {
        kind: Kind::Secret,
        name: "Secret",
        group: "",
        served: &["v1"],
        namespaced: true,
        plural: "secrets",
    },
    KindInfo {
        kind: Kind::ConfigMap,
        name: "ConfigMap",
        group: "",
        served: &["v1"],
        namespaced: true,
        plural: "configmaps",
    },
    KindInfo {
        kind: Kind::CiliumEnvoyConfig,
        name: "CiliumEnvoyConfig",
        group: CILIUM_GROUP,
        served: &["v2"],
        namespaced: true,
        plural: "ciliumenvoyconfigs",
    },
    KindInfo {
        kind: Kind::CiliumClusterwideEnvoyConfig,
        name: "CiliumClusterwideEnvoyConfig",
        group: CILIUM_GROUP,
        served: &["v2"],
        namespaced: false,
        plural: "ciliumclusterwideenvoyconfigs",
    },
    KindInfo {
        kind: Kind::XMesh,
        name: "XMesh",
        group: GATEWAY_X_GROUP,
        served: &["v1alpha1"],
        namespaced: false,
        plural: "xmeshes",
    },
];

impl Kind {
    pub fn info(self) -> &'static KindInfo {
        KINDS
            .iter()
            .find(|k| k.kind == self)
            .expect("every kind is in KINDS")
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Look a kind up by its group and `kind` field (the version is checked separately).
    pub fn lookup(group: &str, kind: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|k| k.group == group && k.name == kind)
            .map(|k| k.kind)
    }
}

/// Real kinds of our groups that the model does not check (experimental Gateway API kinds,
/// Cilium's other CRDs): never reported as misspellings.
const OTHER_KINDS: &[&str] = &[
    "TCPRoute",
    "UDPRoute",
    "BackendTLSPolicy",
    "ListenerSet",
    "XListenerSet",
    "XBackendTrafficPolicy",
    "BackendLBPolicy",
    "CiliumNetworkPolicy",
    "CiliumClusterwideNetworkPolicy",
    "CiliumLoadBalancerIPPool",
    "CiliumL2AnnouncementPolicy",
    "CiliumBGPPeeringPolicy",
    "CiliumNode",
    "CiliumEndpoint",
    "CiliumIdentity",
    "CiliumEgressGatewayPolicy",
    "CiliumLocalRedirectPolicy",
    "CiliumNodeConfig",
    "CiliumCIDRGroup",
];

/// For a kind the model does not know, in one of its groups: the known kind it is probably a
/// misspelling of (`HttpRoute` for `HTTPRoute`).
pub fn misspelt(group: &str, kind: &str) -> Option<&'static str> {
    if group.is_empty() || OTHER_KINDS.iter().any(|k| k.eq_ignore_ascii_case(kind)) {
        return None;
    }
    if let Some(k) = KINDS
        .iter()
        .find(|k| k.group == group && k.name.eq_ignore_ascii_case(kind))
    {
        return Some(k.name);
    }
    let candidates = KINDS
        .iter()
        .filter(|k| k.group == group)
        .map(|k| k.name.to_string());
    let meant = crate::text::closest(
        &kind.to_ascii_lowercase(),
        candidates.map(|c| c.to_ascii_lowercase()),
        3,
    )?;
    KINDS
        .iter()
        .find(|k| k.name.eq_ignore_ascii_case(&meant))
        .map(|k| k.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings() {
        assert_eq!(misspelt(GATEWAY_GROUP, "HttpRoute"), Some("HTTPRoute"));
        assert_eq!(misspelt(GATEWAY_GROUP, "Gatway"), Some("Gateway"));
        assert_eq!(misspelt(GATEWAY_GROUP, "TCPRoute"), None);
        assert_eq!(misspelt(CILIUM_GROUP, "CiliumNetworkPolicy"), None);
        assert_eq!(
            misspelt(CILIUM_GROUP, "CiliumEnvoyConfigs"),
            Some("CiliumEnvoyConfig")
        );
        assert_eq!(misspelt("", "ConfigMap"), None);
    }
}
