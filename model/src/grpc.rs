//! gRPC status codes, and the status a gRPC client reads from an HTTP status other than 200
//! (gRPC's `http-grpc-status-mapping.md`, which Envoy follows for its local replies): one table
//! for the proxy's local replies to gRPC callers and for the tests' gRPC client.

/// The codes by the names grpc-go gives them, indexed by number.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The gRPC status for an HTTP status: a route that does not exist is UNIMPLEMENTED, an
/// unreachable or slow backend UNAVAILABLE, anything unlisted UNKNOWN.
pub fn status_for_http(http: u16) -> u16 {
    match http {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// A code's name ("Unknown" for a number gRPC does not define).
pub fn code_name(code: u16) -> &'static str {
    CODE_NAMES
        .get(usize::from(code))
        .copied()
        .unwrap_or("Unknown")
}
