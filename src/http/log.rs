//! One log line per request: method, path, status, bytes, time to the
//! response head, and the user when there is one. Query strings are left
//! out (they may carry secrets), and so are all request headers.

use axum::extract::Request;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::Body as _;
use std::time::Instant;

/// The authenticated user of a request, passed from the handler to the log.
#[derive(Clone)]
pub struct User(pub String);

pub async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    // The body's bytes: a HEAD announces a Content-Length but sends none.
    let bytes = if method == Method::HEAD {
        0
    } else {
        resp.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| resp.body().size_hint().exact())
            .unwrap_or(0)
    };
    let user = resp.extensions().get::<User>().map(|u| u.0.as_str());
    tracing::info!(
        target: "berth::request",
        %method,
        path,
        user,
        status = resp.status().as_u16(),
        bytes,
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}
