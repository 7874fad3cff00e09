//! mesh-echo's gRPC side over h2c: the health check answers SERVING, other methods echo.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use mesh_echo::grpc;

#[tokio::test]
async fn health_check_and_echo_over_h2c() {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", mesh_model::testing::free_port())
        .parse()
        .unwrap();
    let run = mesh_echo::serve(mesh_echo::Args::new(addr, "echo-0", "ns"))
        .await
        .unwrap();
    let server = tokio::spawn(run);
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let call = |path: &str| {
        let req = hyper::Request::post(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .body(Full::new(Bytes::from(grpc::frame(b""))))
            .unwrap();
        let client = client.clone();
        async move {
            let body = client.request(req).await.unwrap().into_body();
            let body = body.collect().await.unwrap();
            let status = body.trailers().unwrap()["grpc-status"].clone();
            (status, grpc::messages(&body.to_bytes()).unwrap())
        }
    };

    let (status, messages) = call(grpc::HEALTH_CHECK).await;
    assert_eq!(status, "0");
    // HealthCheckResponse{status: SERVING}.
    assert_eq!(messages, vec![vec![0x08, 0x01]]);

    let (status, messages) = call("/pkg.Svc/Method").await;
    assert_eq!(status, "0");
    let json: serde_json::Value = serde_json::from_slice(&messages[0][3..]).unwrap();
    assert_eq!(json["pod"], "echo-0");
    assert_eq!(json["namespace"], "ns");
    assert_eq!(json["path"], "/pkg.Svc/Method");
    server.abort();
}
