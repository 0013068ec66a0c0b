//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use super::error::ApiResult;
use super::{set_header, Ctx, Req};
use crate::core::digest::Digest;
use crate::core::names::RepoName;
use crate::core::range::ByteRange;
use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

pub async fn get(ctx: &Ctx, repo: &RepoName, digest: &Digest, req: &Req) -> ApiResult {
    let head = req.method == Method::HEAD;
    let range = req.header(header::RANGE).and_then(ByteRange::parse);
    if head {
        let size = ctx.registry.blob_size(repo, digest).await?;
        let mut resp = StatusCode::OK.into_response();
        blob_headers(&mut resp, digest, size);
        return Ok(resp);
    }
    let blob = ctx.registry.blob_read(repo, digest, range).await?;
    let (status, len) = match blob.range {
        Some((_, len)) => (StatusCode::PARTIAL_CONTENT, len),
        None => (StatusCode::OK, blob.size),
    };
    let body = Body::from_stream(blob.chunks);
    let mut resp = (status, body).into_response();
    blob_headers(&mut resp, digest, len);
    if let Some((start, len)) = blob.range {
        set_header(
            &mut resp,
            "content-range",
            format!("bytes {start}-{}/{}", start + len - 1, blob.size),
        );
    }
    Ok(resp)
}

fn blob_headers(resp: &mut Response, digest: &Digest, len: u64) {
    set_header(resp, "content-length", len.to_string());
    set_header(resp, "content-type", "application/octet-stream");
    set_header(resp, "docker-content-digest", digest.as_str());
    set_header(resp, "accept-ranges", "bytes");
    set_header(resp, "etag", format!("\"{digest}\""));
}

pub async fn delete(ctx: &Ctx, repo: &RepoName, digest: &Digest) -> ApiResult {
    ctx.registry.blob_delete(repo, digest).await?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    set_header(&mut resp, "docker-content-digest", digest.as_str());
    Ok(resp)
}
