//! Which Gateways a controller serves: those whose GatewayClass names it in `controllerName`
//! and that it accepts. On a cluster several controllers share the Gateway API objects; the
//! agent serves, and writes the status of, its own classes' Gateways only (and the
//! ListenerSets of those Gateways), and leaves everything else to their controllers.
//!
//! An XMesh (experimental) is to mesh routing what a GatewayClass is to Gateways: the agent
//! accepts the XMeshes naming it and says in their status which mesh features it supports.
//! Mesh (GAMMA) routes are served whether or not one exists.

use crate::kind::{Kind, GATEWAY_GROUP};
use crate::resource::Resource;
use crate::Object;

/// The controllerName of kubectl-mesh's GatewayClass (mesh-agent's `--controller-name`).
pub const CONTROLLER_NAME: &str = "kubectl-mesh.io/gateway-controller";

/// The Gateway API features (conformance suite names, `sigs.k8s.io/gateway-api/pkg/features`)
/// mesh-agent claims in its GatewayClasses' `status.supportedFeatures`, which the conformance
/// suite reads to choose its tests. Only what the suite has passed against the agent is listed
/// (`docs/conformance/`).
pub const SUPPORTED_FEATURES: &[&str] = &[
    // Core of GATEWAY-HTTP, GATEWAY-GRPC and GATEWAY-TLS.
    "Gateway",
    "HTTPRoute",
    "ReferenceGrant",
    "GRPCRoute",
    "TLSRoute",
    // Extended, each passed by the suite (docs/conformance/README.md says which are not
    // claimed yet and why).
    "BackendTLSPolicy",
    "BackendTLSPolicySANValidation",
    "GatewayAddressEmpty",
    "GatewayBackendClientCertificate",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "GatewayPort8080",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteCORS",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteRetry",
    "HTTPRouteSchemeRedirect",
    "ListenerSet",
    "TLSRouteModeTerminate",
    "TLSRouteModeMixed",
];

/// The mesh features (conformance suite names) mesh-agent claims in its XMeshes'
/// `status.supportedFeatures`; the route kinds and their filters are the GatewayClass's
/// (the suite takes the union). Only what the suite has passed is listed.
pub const MESH_SUPPORTED_FEATURES: &[&str] = &[
    "Mesh",
    "MeshClusterIPMatching",
    "MeshHTTPRouteBackendRequestHeaderModification",
    "MeshHTTPRouteNamedRouteRule",
    "MeshHTTPRouteQueryParamMatching",
    "MeshHTTPRouteRedirectPath",
    "MeshHTTPRouteRedirectPort",
    "MeshHTTPRouteRewritePath",
    "MeshHTTPRouteSchemeRedirect",
];

/// A GatewayClass or XMesh of ours and whether it is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// [`Kind::GatewayClass`] or [`Kind::XMesh`].
    pub kind: Kind,
    pub name: String,
    /// `Ok` (Accepted), or the reason it is not with a message: mesh-agent takes no
    /// parameters, so a class asking for some is refused (`InvalidParameters`), as the spec
    /// wants for parameters a controller cannot use.
    pub accepted: Result<(), (&'static str, String)>,
}

/// The GatewayClasses and XMeshes among `objects` whose controllerName is `controller`.
pub fn classes<'a>(objects: impl IntoIterator<Item = &'a Object>, controller: &str) -> Vec<Class> {
    objects
        .into_iter()
        .filter_map(|o| match &o.resource {
            Resource::GatewayClass(spec) if spec.controller_name == controller => Some(class(
                o,
                Kind::GatewayClass,
                spec.parameters_ref
                    .as_ref()
                    .map(|p| (p.kind.as_str(), p.group.as_str(), p.name.as_str())),
            )),
            Resource::XMesh(spec) if spec.controller_name == controller => Some(class(
                o,
                Kind::XMesh,
                spec.parameters_ref
                    .as_ref()
                    .map(|p| (p.kind.as_str(), p.group.as_str(), p.name.as_str())),
            )),
            _ => None,
        })
        .collect()
}

/// A class of ours named `o`, accepted unless it asks for parameters (their kind, group and
/// name).
fn class(o: &Object, kind: Kind, parameters: Option<(&str, &str, &str)>) -> Class {
    let accepted = match parameters {
        None => Ok(()),
        Some((p_kind, group, name)) => Err((
            "InvalidParameters",
            format!("mesh-agent takes no parameters; parametersRef {p_kind} {group}/{name} cannot be used (remove it)"),
        )),
    };
    Class {
        kind,
        name: o.name.clone(),
        accepted,
    }
}

/// Keep what the controller serves: every object except the Gateways of other controllers'
/// classes (or of classes of ours that are not accepted) and the ListenerSets attached to
/// them. Routes stay: those of other Gateways find no parent and get no status from us.
pub fn owned(objects: Vec<Object>, controller: &str) -> Vec<Object> {
    let accepted: std::collections::HashSet<String> = classes(&objects, controller)
        .into_iter()
        .filter(|c| c.kind == Kind::GatewayClass && c.accepted.is_ok())
        .map(|c| c.name)
        .collect();
    let dropped: std::collections::HashSet<(String, String)> = objects
        .iter()
        .filter_map(|o| match &o.resource {
            Resource::Gateway(spec) if !accepted.contains(&spec.gateway_class_name) => {
                Some((o.namespace.clone().unwrap_or_default(), o.name.clone()))
            }
            _ => None,
        })
        .collect();
    objects
        .into_iter()
        .filter(|o| match (&o.resource, o.known) {
            (_, Some(Kind::Gateway)) => {
                !dropped.contains(&(o.namespace.clone().unwrap_or_default(), o.name.clone()))
            }
            (Resource::ListenerSet(spec, _), _) => {
                let p = &spec.parent_ref;
                let gateway = p.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP
                    && p.kind.as_deref().unwrap_or("Gateway") == "Gateway";
                let ns = p
                    .namespace
                    .clone()
                    .or_else(|| o.namespace.clone())
                    .unwrap_or_default();
                !gateway || !dropped.contains(&(ns, p.name.clone()))
            }
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load_str, LoadOptions};

    fn objects(yaml: &str) -> Vec<Object> {
        load_str(yaml, crate::Source::Stdin, &LoadOptions::default()).unwrap()
    }

    const INPUT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: mesh}
spec: {controllerName: kubectl-mesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.net/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tuned}
spec:
  controllerName: kubectl-mesh.io/gateway-controller
  parametersRef: {group: example.net, kind: Config, name: fast}
---
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XMesh
metadata: {name: mesh}
spec: {controllerName: kubectl-mesh.io/gateway-controller}
---
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XMesh
metadata: {name: istio}
spec: {controllerName: istio.io/mesh-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ours, namespace: infra}
spec: {gatewayClassName: mesh, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: infra}
spec: {gatewayClassName: other, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: refused, namespace: infra}
spec: {gatewayClassName: tuned, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: extra, namespace: infra}
spec:
  parentRef: {name: theirs}
  listeners: [{name: http2, port: 8080, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: infra}
spec: {parentRefs: [{name: theirs}]}
"#;

    #[test]
    fn only_accepted_classes_of_ours_are_served() {
        let all = objects(INPUT);
        let classes = classes(&all, CONTROLLER_NAME);
        assert_eq!(classes.len(), 3, "{classes:?}");
        assert_eq!(
            classes[0],
            Class {
                kind: Kind::GatewayClass,
                name: "mesh".into(),
                accepted: Ok(())
            }
        );
        assert_eq!(
            classes[1].accepted.as_ref().unwrap_err().0,
            "InvalidParameters"
        );
        assert_eq!(
            classes[2],
            Class {
                kind: Kind::XMesh,
                name: "mesh".into(),
                accepted: Ok(())
            },
            "our XMesh, not Istio's"
        );
        let kept: Vec<String> = owned(all, CONTROLLER_NAME)
            .iter()
            .map(|o| format!("{} {}", o.kind, o.name))
            .collect();
        assert!(kept.contains(&"Gateway ours".to_string()), "{kept:?}");
        assert!(
            !kept
                .iter()
                .any(|k| k == "Gateway theirs" || k == "Gateway refused"),
            "{kept:?}"
        );
        assert!(
            !kept.iter().any(|k| k.starts_with("ListenerSet")),
            "the ListenerSet of their Gateway goes too: {kept:?}"
        );
        assert!(
            kept.contains(&"HTTPRoute r".to_string())
                && kept.contains(&"GatewayClass other".to_string())
        );
    }
}
