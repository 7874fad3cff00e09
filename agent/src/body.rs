//! Request and response bodies as the proxy passes them on: a deadline over a whole response,
//! a client body whose failure is told apart from the backend's, and bounded buffering for
//! request mirroring.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type every request and response crossing the proxy has.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The route's deadline passed while the response body was still coming (Envoy's route
/// timeout covers the whole response, not only its head).
#[derive(Debug, thiserror::Error)]
#[error("the route timeout expired during the response body")]
pub struct DeadlineExpired;

/// A body that fails once `deadline` passes: the client sees the stream reset, as with Envoy.
pub struct Deadline<B> {
    inner: B,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<B> Deadline<B> {
    pub fn new(inner: B, deadline: tokio::time::Instant) -> Deadline<B> {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(DeadlineExpired.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client's body failed (a bad chunk size, EOF before the declared length, a reset):
/// the client's fault, answered 400 and never counted against the backend.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read: {0}")]
pub struct ClientBodyError(#[source] pub hyper::Error);

/// The client's body, noting in `failed` whether reading it failed.
pub struct ClientBody {
    inner: Incoming,
    failed: Arc<AtomicBool>,
}

impl ClientBody {
    pub fn new(inner: Incoming) -> (ClientBody, Arc<AtomicBool>) {
        let failed = Arc::new(AtomicBool::new(false));
        (
            ClientBody {
                inner,
                failed: failed.clone(),
            },
            failed,
        )
    }
}

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                self.failed.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(ClientBodyError(e).into())))
            }
            other => other.map(|f| f.map(|r| r.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Frames already read, then the rest of the body.
struct Prefixed {
    read: std::collections::VecDeque<Frame<Bytes>>,
    rest: Body,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.read.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// A request body read for mirroring: whole when it fits the limit (it can then be sent to
/// the backend and every mirror), else still streaming (mirrors are skipped: the proxy never
/// holds more than the limit per request).
pub enum Buffered {
    Whole(Bytes),
    Streaming(Body),
}

/// Read `body` up to `limit` bytes.
pub async fn buffer(mut body: Body, limit: usize) -> Result<Buffered, BoxError> {
    if body.size_hint().lower() as usize > limit {
        return Ok(Buffered::Streaming(body));
    }
    let mut read = std::collections::VecDeque::new();
    let mut size = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(data) = frame.data_ref() {
            size += data.len();
        }
        read.push_back(frame);
        if size > limit {
            return Ok(Buffered::Streaming(Prefixed { read, rest: body }.boxed()));
        }
    }
    Ok(Buffered::Whole(bytes_of(read)))
}

/// The data of frames, joined (trailers, which mirrored requests do not carry, are dropped).
fn bytes_of(frames: std::collections::VecDeque<Frame<Bytes>>) -> Bytes {
    let mut out = Vec::new();
    for f in frames {
        if let Ok(data) = f.into_data() {
            out.extend_from_slice(&data);
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffering_stops_at_the_limit_and_loses_nothing() {
        let Buffered::Whole(b) = buffer(full("small"), 10).await.unwrap() else {
            panic!("a small body is read whole");
        };
        assert_eq!(b, "small");
        let Buffered::Streaming(rest) = buffer(full("x".repeat(100)), 10).await.unwrap() else {
            panic!("a large body streams");
        };
        let all = rest.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 100, "every byte still reaches the backend");
    }

    #[tokio::test]
    async fn the_deadline_cuts_a_slow_body() {
        let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let at = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
        let mut d = Deadline::new(body, at);
        tx.send_data(Bytes::from("first")).await.unwrap();
        let first = d.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        let err = d.frame().await.unwrap().unwrap_err();
        assert!(err.is::<DeadlineExpired>(), "{err}");
        drop(tx);
    }
}
