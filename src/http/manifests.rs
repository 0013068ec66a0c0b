//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use super::error::{err, ApiError, ApiResult};
use super::{set_header, Ctx, Req};
use crate::core::error::Code;
use crate::core::manifest;
use crate::core::names::{Reference, RepoName, Tag};
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;

fn reference(s: &str) -> Result<Reference, ApiError> {
    Reference::parse(s).map_err(|e| {
        let code = match e {
            crate::core::names::ReferenceError::Digest(_) => Code::DigestInvalid,
            crate::core::names::ReferenceError::Tag => Code::ManifestInvalid,
        };
        err(code, e.to_string())
    })
}

pub async fn get(ctx: &Ctx, repo: &RepoName, reference_s: &str, req: &Req) -> ApiResult {
    let reference = reference(reference_s)?;
    let m = ctx.registry.manifest_get(repo, &reference).await?;
    let accept: Vec<&str> = req
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !manifest::accepts(&accept, &m.media_type) {
        return Err(err(
            Code::ManifestUnknown,
            format!(
                "manifest is {}, which the Accept header does not list",
                m.media_type
            ),
        ));
    }
    let len = m.body.len();
    let body = if req.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(m.body)
    };
    let mut resp = (StatusCode::OK, body).into_response();
    set_header(&mut resp, "content-type", &m.media_type);
    set_header(&mut resp, "content-length", len.to_string());
    set_header(&mut resp, "docker-content-digest", m.digest.as_str());
    set_header(&mut resp, "etag", format!("\"{}\"", m.digest));
    Ok(resp)
}

pub async fn put(
    ctx: &Ctx,
    repo: &RepoName,
    reference_s: &str,
    req: &Req,
    body: Body,
) -> ApiResult {
    let reference = reference(reference_s)?;
    let limit = ctx.registry.limits().max_manifest_bytes;
    let too_large = || {
        err(
            Code::TooLarge,
            format!("manifest exceeds the {limit}-byte limit"),
        )
    };
    let declared = req
        .header(header::CONTENT_LENGTH)
        .and_then(|l| l.parse::<u64>().ok());
    if declared.is_some_and(|l| l > limit as u64) {
        drain(body).await;
        return Err(too_large());
    }
    let tags = req
        .query
        .iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| {
            Tag::parse(v).ok_or_else(|| err(Code::ManifestInvalid, format!("invalid tag {v:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let content_type = req.header(header::CONTENT_TYPE).map(str::to_owned);
    let body = read_limited(body, limit).await?.ok_or_else(too_large)?;
    let (digest, subject) = ctx
        .registry
        .manifest_put(repo, &reference, &tags, content_type.as_deref(), body)
        .await?;
    let mut resp = StatusCode::CREATED.into_response();
    set_header(
        &mut resp,
        "location",
        format!("/v2/{repo}/manifests/{digest}"),
    );
    set_header(&mut resp, "docker-content-digest", digest.as_str());
    set_header(&mut resp, "content-length", "0");
    if let Some(subject) = subject {
        set_header(&mut resp, "oci-subject", subject.as_str());
    }
    // Tags from `?tag=` are announced one `OCI-Tag` header each, as the
    // spec requires of registries that support the parameter.
    for tag in &tags {
        if let Ok(v) = HeaderValue::from_str(tag.as_str()) {
            resp.headers_mut().append("oci-tag", v);
        }
    }
    Ok(resp)
}

/// How much of an oversized request body is read and discarded before the
/// 413 goes out. A client still sending when the server answers and closes
/// sees a reset connection instead of the 413; reading the rest (up to this
/// bound) lets it read the answer.
const DRAIN_LIMIT: usize = 16 << 20;

/// The body, or `None` when it is longer than `limit` (the rest is drained).
async fn read_limited(body: Body, limit: usize) -> Result<Option<bytes::Bytes>, ApiError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| err(Code::ManifestInvalid, format!("reading request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            drain_stream(stream, DRAIN_LIMIT).await;
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

/// Read and discard a refused request body, up to [`DRAIN_LIMIT`] bytes.
async fn drain(body: Body) {
    drain_stream(body.into_data_stream(), DRAIN_LIMIT).await;
}

async fn drain_stream(mut stream: axum::body::BodyDataStream, mut budget: usize) {
    use futures_util::StreamExt;
    while let Some(Ok(chunk)) = stream.next().await {
        if chunk.len() >= budget {
            return;
        }
        budget -= chunk.len();
    }
}

pub async fn delete(ctx: &Ctx, repo: &RepoName, reference_s: &str) -> ApiResult {
    let reference = reference(reference_s)?;
    ctx.registry.manifest_delete(repo, &reference).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
