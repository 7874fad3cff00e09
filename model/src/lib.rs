//! mesh-model: one typed model of a cluster's mesh configuration (Gateway API, Services,
//! EndpointSlices, Cilium Envoy configs), the rules that check it, and the code every face of
//! kubectl-mesh shares. No I/O beyond reading inputs; no async.

pub mod attach;
pub mod cert;
pub mod controller;
pub mod crd;
pub mod defaults;
pub mod diagnostic;
pub mod envoy;
pub mod gateway_tls;
pub mod grants;
pub mod grpc;
pub mod hostname;
pub mod index;
pub mod kind;
pub mod lastgood;
pub mod load;
pub mod object;
pub mod path;
pub mod plan;
pub mod precedence;
pub mod resource;
pub mod route;
pub mod rules;
pub mod selector;
pub mod snapshot;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;
pub mod validate;
pub mod walk;
pub mod yaml;

pub use diagnostic::{Diagnostic, Level};
pub use kind::Kind;
pub use load::{FileSource, Input, LoadError, LoadOptions, ObjectSource};
pub use object::{Object, ObjectRef, Origin, Source};
pub use snapshot::Snapshot;
