//! ExternalAuth: the call to the authorization service before a request is forwarded.
//!
//! HTTP services get the client's request (method, the path behind the filter's prefix, Host,
//! Authorization and the allowed headers, the body when `forwardBody` asks) and allow with a
//! 200, whose allowed headers are added to the upstream request; any other answer goes back to
//! the client as it is (status, headers, body), as Envoy's ext_authz does. gRPC services get
//! Envoy's `envoy.service.auth.v3.Authorization/Check` and answer a `CheckResponse`: status
//! OK allows (with `ok_response` headers), anything else denies with `denied_response`'s
//! status (403 when unset), headers and body.
//!
//! The filter fails closed: an unresolved service, a refused or failed connection, an answer
//! later than `--external-auth-timeout`, or one that cannot be read denies with 403 (Envoy's
//! `status_on_error`).

use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use mesh_model::plan::ext_auth::{AuthProtocol, ExternalAuth};
use mesh_model::plan::{Plan, UpstreamProtocol};

use crate::body::{full, Body};
use crate::proxy::Proxy;

/// The largest answer body of a denying service passed on to the client.
const MAX_DENIAL_BODY: usize = 64 * 1024;

/// The client's request as the authorization service sees it (before any of the route's
/// changes, as Envoy's ext_authz filter sees it).
#[derive(Debug, Clone)]
pub struct Asked {
    pub method: String,
    /// Path and query, as the client sent them.
    pub path: String,
    pub host: String,
    pub scheme: &'static str,
    pub headers: Vec<(String, String)>,
}

/// What the service decided.
pub enum Verdict {
    /// Forward, with these headers set on the upstream request.
    Allow(Vec<(HeaderName, HeaderValue)>),
    /// Answer the client with this.
    Deny(Response<Body>),
}

fn refused(why: &str) -> Verdict {
    tracing::debug!(%why, "external authorization failed: denied");
    let mut r = Response::new(full(Bytes::from_static(b"external authorization failed\n")));
    *r.status_mut() = StatusCode::FORBIDDEN;
    Verdict::Deny(r)
}

/// Ask `auth`'s service about `asked` (with `body`, the bytes `forwardBody` allows).
pub async fn check(
    proxy: &Proxy,
    plan: &Plan,
    auth: &ExternalAuth,
    asked: &Asked,
    body: Bytes,
) -> Verdict {
    let Some(cluster) = auth.cluster.as_deref().and_then(|c| plan.clusters.get(c)) else {
        return refused("the authorization service does not resolve");
    };
    if cluster.endpoints.is_empty() {
        return refused("the authorization service has no endpoints");
    }
    let pairs: Vec<(&str, &str)> = asked
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ask = Ask {
        proxy,
        cluster,
        ep: proxy.current.endpoint(cluster),
        auth,
        asked,
        headers: auth.request_headers(&pairs),
        body,
    };
    let call = async {
        match auth.protocol {
            AuthProtocol::Http => http(ask).await,
            AuthProtocol::Grpc => grpc(ask).await,
        }
    };
    match tokio::time::timeout(proxy.settings.external_auth_timeout, call).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(why)) => refused(&why),
        Err(_) => refused("no answer within --external-auth-timeout"),
    }
}

/// One call to an authorization service: where, what the filter says, and what is sent.
struct Ask<'a> {
    proxy: &'a Proxy,
    cluster: &'a mesh_model::plan::Cluster,
    ep: &'a mesh_model::plan::Endpoint,
    auth: &'a ExternalAuth,
    asked: &'a Asked,
    /// The client headers the protocol sends.
    headers: Vec<(&'a str, &'a str)>,
    body: Bytes,
}

impl Ask<'_> {
    /// Send `req` to the service's endpoint (over TLS when its Service port has a
    /// BackendTLSPolicy), with `host` as Host or `:authority`.
    async fn send(
        &self,
        req: Request<Body>,
        protocol: UpstreamProtocol,
        host: &str,
    ) -> Result<Response<hyper::body::Incoming>, String> {
        self.proxy
            .upstreams
            .send(
                req,
                self.ep,
                protocol,
                host,
                crate::proxy::origination(self.cluster, None),
            )
            .await
            .map_err(|e| e.to_string())
    }
}

async fn http(ask: Ask<'_>) -> Result<Verdict, String> {
    let (auth, asked, body) = (ask.auth, ask.asked, ask.body.clone());
    let mut req = Request::builder()
        .method(asked.method.as_str())
        .uri(auth.http_path(&asked.path));
    for (k, v) in &ask.headers {
        req = req.header(*k, *v);
    }
    let req = req
        .header(hyper::header::CONTENT_LENGTH, body.len())
        .body(full(body))
        .map_err(|e| format!("authorization request: {e}"))?;
    let resp = ask.send(req, UpstreamProtocol::Http1, &asked.host).await?;
    let (parts, body) = resp.into_parts();
    if parts.status == StatusCode::OK {
        let headers = parts
            .headers
            .iter()
            .filter(|(k, _)| auth.copies_response_header(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        return Ok(Verdict::Allow(headers));
    }
    let limited = http_body_util::Limited::new(body, MAX_DENIAL_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| format!("denial body: {e}"))?
        .to_bytes();
    let mut r = Response::new(full(bytes));
    *r.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        if k != hyper::header::CONTENT_LENGTH && k != hyper::header::TRANSFER_ENCODING {
            r.headers_mut().append(k.clone(), v.clone());
        }
    }
    Ok(Verdict::Deny(r))
}

/// Envoy's ext_authz messages, the fields the proxy sends and reads (field numbers from
/// `envoy/service/auth/v3` and the types they use).
mod pb {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CheckRequest {
        #[prost(message, optional, tag = "1")]
        pub attributes: Option<AttributeContext>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeContext {
        #[prost(message, optional, tag = "4")]
        pub request: Option<AttributeRequest>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeRequest {
        #[prost(message, optional, tag = "2")]
        pub http: Option<HttpRequest>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HttpRequest {
        #[prost(string, tag = "2")]
        pub method: String,
        #[prost(map = "string, string", tag = "3")]
        pub headers: HashMap<String, String>,
        #[prost(string, tag = "4")]
        pub path: String,
        #[prost(string, tag = "5")]
        pub host: String,
        #[prost(string, tag = "6")]
        pub scheme: String,
        #[prost(int64, tag = "9")]
        pub size: i64,
        #[prost(string, tag = "10")]
        pub protocol: String,
        #[prost(bytes = "vec", tag = "12")]
        pub raw_body: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CheckResponse {
        #[prost(message, optional, tag = "1")]
        pub status: Option<RpcStatus>,
        #[prost(message, optional, tag = "2")]
        pub denied_response: Option<DeniedHttpResponse>,
        #[prost(message, optional, tag = "3")]
        pub ok_response: Option<OkHttpResponse>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RpcStatus {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeniedHttpResponse {
        #[prost(message, optional, tag = "1")]
        pub status: Option<HttpStatus>,
        #[prost(message, repeated, tag = "2")]
        pub headers: Vec<HeaderValueOption>,
        #[prost(string, tag = "3")]
        pub body: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OkHttpResponse {
        #[prost(message, repeated, tag = "2")]
        pub headers: Vec<HeaderValueOption>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HttpStatus {
        #[prost(int32, tag = "1")]
        pub code: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HeaderValueOption {
        #[prost(message, optional, tag = "1")]
        pub header: Option<HeaderValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HeaderValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
        #[prost(bytes = "vec", tag = "3")]
        pub raw_value: Vec<u8>,
    }
}

/// A header of a `CheckResponse`, as a name and value the proxy can set.
fn header_of(h: &pb::HeaderValueOption) -> Option<(HeaderName, HeaderValue)> {
    let h = h.header.as_ref()?;
    let value = if h.raw_value.is_empty() {
        h.value.as_bytes()
    } else {
        h.raw_value.as_slice()
    };
    Some((
        HeaderName::try_from(h.key.as_str()).ok()?,
        HeaderValue::from_bytes(value).ok()?,
    ))
}

async fn grpc(ask: Ask<'_>) -> Result<Verdict, String> {
    use prost::Message;
    let (asked, body) = (ask.asked, &ask.body);
    let mut headers = std::collections::HashMap::new();
    for &(k, v) in &ask.headers {
        headers
            .entry(k.to_ascii_lowercase())
            .and_modify(|old: &mut String| {
                old.push(',');
                old.push_str(v);
            })
            .or_insert_with(|| v.to_string());
    }
    let check = pb::CheckRequest {
        attributes: Some(pb::AttributeContext {
            request: Some(pb::AttributeRequest {
                http: Some(pb::HttpRequest {
                    method: asked.method.clone(),
                    headers,
                    path: asked.path.clone(),
                    host: asked.host.clone(),
                    scheme: asked.scheme.to_string(),
                    size: body.len() as i64,
                    protocol: "HTTP/1.1".into(),
                    raw_body: body.to_vec(),
                }),
            }),
        }),
    };
    let message = check.encode_to_vec();
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let req = Request::post("/envoy.service.auth.v3.Authorization/Check")
        .header(hyper::header::CONTENT_TYPE, "application/grpc")
        .header(hyper::header::TE, "trailers")
        .body(full(Bytes::from(framed)))
        .map_err(|e| e.to_string())?;
    let resp = ask
        .send(req, UpstreamProtocol::H2c, &ask.ep.authority())
        .await?;
    if resp.status() != StatusCode::OK {
        return Err(format!("the service answered HTTP {}", resp.status()));
    }
    let collected = http_body_util::Limited::new(resp.into_body(), MAX_DENIAL_BODY * 2)
        .collect()
        .await
        .map_err(|e| format!("answer: {e}"))?;
    let grpc_status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
        .to_string();
    if grpc_status != "0" {
        return Err(format!("the service answered gRPC status {grpc_status}"));
    }
    let bytes = collected.to_bytes();
    let message = bytes.get(5..).ok_or("an answer without a message")?;
    let answer = pb::CheckResponse::decode(message).map_err(|e| format!("CheckResponse: {e}"))?;
    if answer.status.as_ref().map_or(0, |s| s.code) == 0 {
        let headers = answer
            .ok_response
            .iter()
            .flat_map(|ok| &ok.headers)
            .filter_map(header_of)
            .collect();
        return Ok(Verdict::Allow(headers));
    }
    let denied = answer.denied_response.unwrap_or_default();
    let status = denied
        .status
        .and_then(|s| u16::try_from(s.code).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::FORBIDDEN);
    let mut r = Response::new(full(Bytes::from(denied.body)));
    *r.status_mut() = status;
    for (k, v) in denied.headers.iter().filter_map(header_of) {
        r.headers_mut().append(k, v);
    }
    Ok(Verdict::Deny(r))
}
