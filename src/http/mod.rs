//! The HTTP layer: maps the OCI Distribution API onto [`Registry`] calls.
//! It parses and validates requests, and turns results into the spec's
//! responses; all registry logic lives in the core.

pub mod auth;
mod blobs;
mod body;
mod discovery;
pub mod error;
#[cfg(test)]
mod fuzz;
mod log;
mod manifests;
pub mod routes;
mod uploads;

use crate::auth::{Auth, Caller};
use crate::core::digest::Digest;
use crate::core::error::Code;
use crate::core::metrics::GcMetrics;
use crate::core::names::RepoName;
use crate::core::Registry;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use error::{err, ApiError, ApiResult};
use routes::Route;
use std::net::IpAddr;
use std::sync::Arc;

pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// What every handler gets.
pub struct Ctx {
    pub registry: Arc<Registry>,
    pub gc_metrics: Arc<GcMetrics>,
    pub auth: Arc<Auth>,
    pub limits: HttpLimits,
    /// Served over TLS (for the token realm's scheme).
    pub tls: bool,
}

/// Limits the HTTP layer enforces itself.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Request line plus headers, in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// A request body that sends nothing this long fails.
    pub body_idle_timeout: std::time::Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            max_header_bytes: 64 << 10,
            body_idle_timeout: std::time::Duration::from_secs(120),
        }
    }
}

/// A request's parts, after routing and authentication.
pub struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    pub caller: Caller,
    /// The user name, or the address, of the caller: who per-client limits
    /// count against.
    pub client: String,
}

impl Req {
    /// The first value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Build the application: one handler for all of `/v2/` (and the token
/// endpoint), wrapped in the request log and the API version header.
pub fn app(ctx: Ctx) -> Router {
    let ctx = Arc::new(ctx);
    Router::new()
        .fallback(dispatch)
        .with_state(ctx)
        .layer(axum::middleware::from_fn(log::log_request))
}

async fn dispatch(State(ctx): State<Arc<Ctx>>, request: Request) -> Response {
    let mut resp = respond(&ctx, request).await;
    resp.headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    resp
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(q).unwrap_or_default()
}

async fn respond(ctx: &Ctx, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(resp) = body::head_too_large(&parts, ctx.limits.max_header_bytes) {
        return resp;
    }
    let body = body::with_idle_timeout(&parts.method, body, ctx.limits.body_idle_timeout);
    let client_ip = parts
        .extensions
        .get::<auth::ClientAddr>()
        .map(|a| a.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let path = parts.uri.path();
    if path == "/metrics" && parts.method == Method::GET {
        return metrics(ctx).await;
    }
    let raw_query = parts.uri.query().unwrap_or("");
    if path == "/auth/token" {
        // OAuth2 form rules: `+` is a space (scopes are space-separated).
        let query = parse_query(raw_query);
        return auth::token_endpoint(ctx, &parts.method, &parts.headers, &query, client_ip, body)
            .await;
    }
    // The API's parameters (digests, names, media types such as
    // `...+json`) never hold spaces: a `+` is a `+`, not form encoding's
    // space.
    let query = if raw_query.contains('+') {
        parse_query(&raw_query.replace('+', "%2B"))
    } else {
        parse_query(raw_query)
    };
    let Some(route) = routes::parse(path) else {
        return err(Code::NameUnknown, "no such endpoint").into_response();
    };
    let caller = match auth::authenticate(ctx, &parts.headers, client_ip).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let need = auth::need(&route, &parts.method);
    if let auth::Need::Repo(name, _) = need {
        // A name that cannot exist is refused the same to everyone.
        if let Err(e) = repo(name) {
            return e.into_response();
        }
    }
    if let Some(resp) = auth::refusal(ctx, &caller, &need, &parts.headers) {
        return resp;
    }
    let client = match caller.name() {
        Some(n) => format!("user {n}"),
        None => format!("addr {client_ip}"),
    };
    let user = caller.name().map(|n| log::User(n.to_owned()));
    let req = Req {
        method: parts.method,
        headers: parts.headers,
        query,
        caller,
        client,
    };
    let mut resp = handle(ctx, route, req, body)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    if let Some(u) = user {
        resp.extensions_mut().insert(u);
    }
    resp
}

async fn handle(ctx: &Ctx, route: Route<'_>, req: Req, body: Body) -> ApiResult {
    use Method as M;
    match (route, &req.method) {
        (Route::Base, &M::GET | &M::HEAD) => Ok(base()),
        (Route::Catalog, &M::GET) => discovery::catalog(ctx, &req).await,
        (Route::Tags { name }, &M::GET) => discovery::tags(ctx, &repo(name)?, &req).await,
        (Route::Referrers { name, digest: d }, &M::GET) => {
            discovery::referrers(ctx, &repo(name)?, &digest(d)?, &req).await
        }
        (Route::Manifest { name, reference }, &M::GET | &M::HEAD) => {
            manifests::get(ctx, &repo(name)?, reference, &req).await
        }
        (Route::Manifest { name, reference }, &M::PUT) => {
            manifests::put(ctx, &repo(name)?, reference, &req, body).await
        }
        (Route::Manifest { name, reference }, &M::DELETE) => {
            manifests::delete(ctx, &repo(name)?, reference).await
        }
        (Route::Blob { name, digest: d }, &M::GET | &M::HEAD) => {
            blobs::get(ctx, &repo(name)?, &digest(d)?, &req).await
        }
        (Route::Blob { name, digest: d }, &M::DELETE) => {
            blobs::delete(ctx, &repo(name)?, &digest(d)?).await
        }
        (Route::UploadStart { name }, &M::POST) => {
            uploads::start(ctx, &repo(name)?, &req, body).await
        }
        (Route::Upload { name, id }, &M::GET) => uploads::status(ctx, &repo(name)?, id).await,
        (Route::Upload { name, id }, &M::PATCH) => {
            uploads::patch(ctx, &repo(name)?, id, &req, body).await
        }
        (Route::Upload { name, id }, &M::PUT) => {
            uploads::put(ctx, &repo(name)?, id, &req, body).await
        }
        (Route::Upload { name, id }, &M::DELETE) => uploads::cancel(ctx, &repo(name)?, id).await,
        (route, _) => Ok(method_not_allowed(&route)),
    }
}

/// Prometheus text exposition of the collector's counters.
async fn metrics(ctx: &Ctx) -> Response {
    match ctx.registry.gc_queue_depth().await {
        Ok((depth, due)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            ctx.gc_metrics.render(depth, due),
        )
            .into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

fn base() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response()
}

fn method_not_allowed(route: &Route<'_>) -> Response {
    let allow = match route {
        Route::Base => "GET, HEAD",
        Route::Catalog | Route::Tags { .. } | Route::Referrers { .. } => "GET",
        Route::Manifest { .. } => "GET, HEAD, PUT, DELETE",
        Route::Blob { .. } => "GET, HEAD, DELETE",
        Route::UploadStart { .. } => "POST",
        Route::Upload { .. } => "GET, PATCH, PUT, DELETE",
    };
    let mut resp = ApiError(crate::core::error::Error::new(
        Code::Unsupported,
        "method not allowed on this endpoint",
    ))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(allow) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}

/// Validate a repository name from the path.
fn repo(name: &str) -> Result<RepoName, ApiError> {
    RepoName::parse(name).ok_or_else(|| err(Code::NameInvalid, "invalid repository name"))
}

/// Validate a digest from the path or query.
pub fn digest(s: &str) -> Result<Digest, ApiError> {
    s.parse()
        .map_err(|e: crate::core::digest::DigestError| err(Code::DigestInvalid, e.to_string()))
}

/// Add a header whose value we built; values that cannot be headers are
/// skipped rather than panicking.
pub fn set_header(resp: &mut Response, name: &'static str, value: impl AsRef<str>) {
    if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
        resp.headers_mut().insert(name, v);
    }
}

/// The request body as the core's byte stream.
pub fn body_stream(body: Body) -> crate::core::registry::Body {
    use futures_util::TryStreamExt;
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}
