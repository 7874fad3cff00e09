//! The conformance suite's gRPC checks (`grpc.MakeRequestAndExpectEventuallyConsistentResponse`):
//! a unary call to the echo service over h2c with the test's authority and metadata, judged as
//! its `compareResponse` judges it (status code; for OK the method the backend saw, its
//! namespace and pod).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;

const SERVICE: &str = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";

/// Make the call `expected` (a `grpc.ExpectedResponse`, Go field names) describes at `addr`;
/// the answering pod when it holds (empty for an expected non-OK status).
pub async fn call(addr: &str, expected: &Value) -> Result<String, String> {
    let method = if !expected["EchoRequest"].is_null() {
        "Echo"
    } else if !expected["EchoTwoRequest"].is_null() {
        "EchoTwo"
    } else {
        "EchoThree"
    };
    let authority = expected
        .pointer("/RequestMetadata/Authority")
        .and_then(Value::as_str)
        .unwrap_or(addr);
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = hyper::Request::post(format!("http://{authority}/{SERVICE}/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    // grpc-go's metadata.New lower-cases keys.
    for (k, v) in expected
        .pointer("/RequestMetadata/Metadata")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        req = req.header(k.to_ascii_lowercase(), v.as_str().unwrap_or(""));
    }
    let req = req
        .body(Full::new(Bytes::from(mesh_echo::grpc::frame(b""))))
        .map_err(|e| e.to_string())?;
    let call = async {
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("call: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("answer: {e}"))?;
        Ok::<_, String>((status, headers, body))
    };
    let (status, headers, body) = tokio::time::timeout(std::time::Duration::from_secs(5), call)
        .await
        .map_err(|_| "no answer in time".to_string())??;
    let code = if status != 200 {
        mesh_model::grpc::status_for_http(status)
    } else {
        let grpc_status = body
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        // A 200 without a status is an error of the server's (grpc-go: Internal).
        grpc_status.unwrap_or(13)
    };
    let want = expected
        .pointer("/Response/Code")
        .and_then(Value::as_str)
        .unwrap_or("OK");
    let got = mesh_model::grpc::code_name(code);
    if got != want {
        return Err(format!(
            "{method}: status {got} (HTTP {status}), expected {want}"
        ));
    }
    if got != "OK" {
        return Ok(String::new());
    }
    let bytes = body.to_bytes();
    let message = mesh_echo::grpc::messages(&bytes)
        .and_then(|m| m.into_iter().next())
        .ok_or("OK without a message")?;
    let field = |m: &[u8], n: u32| -> Option<Vec<u8>> {
        mesh_echo::grpc::fields(m)?
            .into_iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.to_vec())
    };
    let text = |b: Option<Vec<u8>>| String::from_utf8_lossy(&b.unwrap_or_default()).into_owned();
    let assertions = field(&message, 1).unwrap_or_default();
    let context = field(&assertions, 4).unwrap_or_default();
    let (seen_method, namespace, pod) = (
        text(field(&assertions, 1)),
        text(field(&context, 1)),
        text(field(&context, 4)),
    );
    if seen_method != format!("/{SERVICE}/{method}") {
        return Err(format!("the backend saw method {seen_method}"));
    }
    let want_ns = expected["Namespace"].as_str().unwrap_or("");
    if !want_ns.is_empty() && namespace != want_ns {
        return Err(format!("namespace {namespace}, expected {want_ns}"));
    }
    let backend = expected["Backend"].as_str().unwrap_or("");
    if !pod.starts_with(backend) {
        return Err(format!("answered by pod {pod}, expected one of {backend}"));
    }
    Ok(pod)
}
