//! A WebSocket session as HTTPRouteBackendProtocolWebSocket has it: dial `ws://GATEWAY/ws`
//! with an Origin, send a text message and a binary one, and get each back unchanged from the
//! echo backend.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub async fn session(addr: &str, expected: &Value, test: &str) -> Result<String, String> {
    let path = expected
        .pointer("/Request/Path")
        .and_then(Value::as_str)
        .unwrap_or("/");
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let origin = format!("ws://gateway/{test}");
    req.headers_mut()
        .insert("origin", origin.parse().map_err(|_| "origin")?);
    let session = tokio_tungstenite::connect_async(req);
    let (mut ws, _) = tokio::time::timeout(std::time::Duration::from_secs(5), session)
        .await
        .map_err(|_| "no upgrade within 5s".to_string())?
        .map_err(|e| format!("dial: {e}"))?;
    for sent in [
        Message::text("Websocket Support!"),
        Message::binary(vec![1u8, 2, 3, 4, 5, 6, 7]),
    ] {
        ws.send(sent.clone())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let reply = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .map_err(|_| "no reply within 5s".to_string())?
            .ok_or("the session closed")?
            .map_err(|e| format!("receive: {e}"))?;
        if reply != sent {
            return Err(format!("sent {sent:?}, got {reply:?}"));
        }
    }
    let _ = ws.close(None).await;
    Ok(String::new())
}
