//! WebSocket echo at `/ws`, as the conformance echo server serves it: each text or binary
//! message comes back unchanged (HTTPRouteBackendProtocolWebSocket sends one of each).

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Whether `req` opens a WebSocket session on `/ws`.
pub(crate) fn wanted(req: &Request<Body>) -> bool {
    req.uri().path() == "/ws"
        && req
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Switch protocols and echo messages on the upgraded connection until the client closes.
pub(crate) fn accept(mut req: Request<Body>) -> Response {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing").into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            let echo = match msg {
                Message::Text(_) | Message::Binary(_) => msg,
                Message::Close(_) => break,
                // Pings are answered by the library; pongs and raw frames need nothing.
                _ => continue,
            };
            if ws.send(echo).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_default()
}
