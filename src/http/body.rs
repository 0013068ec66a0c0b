//! Guards on what a client sends: the size of a request head, and request
//! bodies that stop sending.

use super::set_header;
use axum::body::Body;
use axum::http::{request::Parts, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// 431 when the request line and headers exceed `limit` bytes.
pub fn head_too_large(parts: &Parts, limit: usize) -> Option<Response> {
    let size = parts.uri.to_string().len()
        + parts
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if size <= limit {
        return None;
    }
    let body = serde_json::json!({ "errors": [{ "code": "SIZE_INVALID",
        "message": format!("request headers exceed the {limit}-byte limit") }] });
    let mut resp = (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        body.to_string(),
    )
        .into_response();
    set_header(&mut resp, "content-type", "application/json");
    set_header(&mut resp, "connection", "close");
    Some(resp)
}

/// Bodies of writes fail when no bytes arrive for `idle`: a client that
/// opens an upload and goes quiet does not hold a task and a staging file
/// forever. Reads have no body worth guarding.
pub fn with_idle_timeout(method: &Method, body: Body, idle: Duration) -> Body {
    if !matches!(*method, Method::PUT | Method::PATCH | Method::POST) || idle.is_zero() {
        return body;
    }
    Body::from_stream(IdleTimeout {
        inner: body.into_data_stream(),
        idle,
        timer: Box::pin(tokio::time::sleep(idle)),
        done: false,
    })
}

/// A body stream whose every chunk must come within `idle` of the last.
struct IdleTimeout {
    inner: axum::body::BodyDataStream,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    done: bool,
}

impl Stream for IdleTimeout {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                let deadline = Instant::now() + self.idle;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    let idle = self.idle;
                    Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "request body sent nothing for {}",
                            humantime::format_duration(idle)
                        ),
                    ))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_and_a_steady_one_does_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(1);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
            );
        let body = with_idle_timeout(
            &Method::PATCH,
            Body::from_stream(stream),
            Duration::from_secs(5),
        );
        let mut s = body.into_data_stream();
        let feeder = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                tx.send(Ok(Bytes::from_static(b"x"))).await.unwrap();
            }
            // Then silence, with the sender held open.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(tx);
        });
        for _ in 0..3 {
            assert_eq!(s.next().await.unwrap().unwrap(), Bytes::from_static(b"x"));
        }
        let err = s.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("sent nothing"), "{err}");
        feeder.abort();
    }
}
