//! Blob uploads: `POST .../blobs/uploads/` (session, monolithic, mount) and
//! `GET`/`PATCH`/`PUT`/`DELETE .../blobs/uploads/<id>`.

use super::error::{err, ApiError, ApiResult};
use super::{body_stream, digest, set_header, Ctx, Req};
use crate::auth::{Actions, Caller};
use crate::core::error::Code;
use crate::core::names::RepoName;
use crate::core::registry::{Mount, UploadStart};
use crate::metadata::UploadSession;
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

pub async fn start(ctx: &Ctx, repo: &RepoName, req: &Req, body: Body) -> ApiResult {
    // A mount reads the source: without pull rights on it (or with a
    // `from` that is not a valid name, or a digest that is not one) the
    // client gets a session, as for any mount that cannot be served
    // (§Mounting a blob from another repository: 202), and learns nothing.
    let mount = req.param("mount");
    if let Some(digest) = mount.and_then(|d| digest(d).ok()) {
        let may_pull = |r: &str| ctx.auth.actions(&req.caller, r).contains(Actions::PULL);
        let unrestricted = matches!(req.caller, Caller::Unrestricted);
        let from = req.param("from").map(RepoName::parse);
        let mount = match &from {
            None => Some(Mount {
                allowed: (!unrestricted).then_some(&may_pull as &(dyn Fn(&str) -> bool + Sync)),
                ..Mount::anywhere(&digest)
            }),
            Some(Some(from)) if may_pull(from.as_str()) => Some(Mount::from(&digest, from)),
            Some(_) => None,
        };
        let out = ctx.registry.start_upload(repo, mount, &req.client).await?;
        return session_created(out, repo);
    }
    if let Some(d) = req.param("digest").filter(|_| mount.is_none()) {
        let d = digest(d)?;
        ctx.registry
            .upload_whole_for(repo, &d, body_stream(body), Some(&req.client))
            .await?;
        return Ok(blob_created(repo, &d.to_string()));
    }
    session_created(
        ctx.registry.start_upload(repo, None, &req.client).await?,
        repo,
    )
}

fn session_created(out: UploadStart, repo: &RepoName) -> ApiResult {
    Ok(match out {
        UploadStart::Created(d) => blob_created(repo, d.as_str()),
        UploadStart::Session(s) => session_response(StatusCode::ACCEPTED, &s),
    })
}

fn blob_created(repo: &RepoName, digest: &str) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    set_header(&mut resp, "location", format!("/v2/{repo}/blobs/{digest}"));
    set_header(&mut resp, "docker-content-digest", digest);
    set_header(&mut resp, "content-length", "0");
    resp
}

/// `Range` as the spec writes it: inclusive end of the bytes received.
fn range_value(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn session_response(status: StatusCode, s: &UploadSession) -> Response {
    let mut resp = status.into_response();
    set_header(
        &mut resp,
        "location",
        format!("/v2/{}/blobs/uploads/{}", s.repo, s.id),
    );
    set_header(&mut resp, "range", range_value(s.size));
    set_header(&mut resp, "docker-upload-uuid", &s.id);
    set_header(&mut resp, "content-length", "0");
    resp
}

pub async fn status(ctx: &Ctx, repo: &RepoName, id: &str) -> ApiResult {
    let s = ctx.registry.upload_status(repo, id).await?;
    Ok(session_response(StatusCode::NO_CONTENT, &s))
}

/// Parse `Content-Range: <start>-<end>` (also `bytes <start>-<end>/<total>`).
pub(super) fn content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v.strip_prefix("bytes ").unwrap_or(v);
    let v = v.split('/').next()?;
    let (a, b) = v.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

/// The chunk a PATCH or closing PUT carries, from `Content-Range`: its
/// start, and its length when the body has no `Content-Length` to check it
/// against first (a chunked body, held to it as it streams). `Err` is the
/// response to send instead: 400 for a malformed header, 416 (with the
/// session's current `Range`) for a range the body cannot fill.
async fn chunk_start(
    ctx: &Ctx,
    repo: &RepoName,
    id: &str,
    req: &Req,
) -> Result<(Option<u64>, Option<u64>), Response> {
    let Some(v) = req.header(header::CONTENT_RANGE) else {
        return Ok((None, None));
    };
    let (start, end) = content_range(v)
        .ok_or_else(|| err(Code::BlobUploadInvalid, "malformed Content-Range").into_response())?;
    let length = req
        .header(header::CONTENT_LENGTH)
        .and_then(|l| l.parse::<u64>().ok());
    // The end is inclusive: `0-18446744073709551615` spans 2^64 bytes,
    // which no u64 (and no body) holds.
    let span = (end - start).checked_add(1);
    if span.is_none() || length.is_some_and(|l| Some(l) != span) {
        return Err(match ctx.registry.upload_status(repo, id).await {
            Ok(s) => range_error(&s, "Content-Range does not match Content-Length"),
            Err(e) => ApiError(e).into_response(),
        });
    }
    Ok((Some(start), if length.is_none() { span } else { None }))
}

/// `body`, failing unless it holds exactly `len` bytes: a chunked body
/// whose `Content-Range` promised another length stores nothing.
fn exactly(body: crate::core::registry::Body, len: Option<u64>) -> crate::core::registry::Body {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    let Some(len) = len else { return body };
    let seen = std::sync::Arc::new(AtomicU64::new(0));
    let counted = seen.clone();
    let mismatch = move || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the body does not hold the {len} bytes its Content-Range says"),
        )
    };
    let over = mismatch;
    let chunks = body.map(move |chunk| {
        let chunk = chunk?;
        let total = counted.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        if total > len {
            return Err(over());
        }
        Ok(chunk)
    });
    let end = futures_util::stream::once(async move {
        (seen.load(Ordering::Relaxed) != len).then(|| Err(mismatch()))
    })
    .filter_map(std::future::ready);
    Box::pin(chunks.chain(end))
}

pub async fn patch(ctx: &Ctx, repo: &RepoName, id: &str, req: &Req, body: Body) -> ApiResult {
    let (start, len) = match chunk_start(ctx, repo, id, req).await {
        Ok(chunk) => chunk,
        Err(resp) => return Ok(resp),
    };
    match ctx
        .registry
        .upload_append(repo, id, start, exactly(body_stream(body), len))
        .await
    {
        Ok(s) => Ok(session_response(StatusCode::ACCEPTED, &s)),
        Err(e) => range_invalid(repo, id, e),
    }
}

/// A chunk that does not start where the upload ends is 416 with the
/// session's current `Range`, so the client can resume; other errors pass.
fn range_invalid(repo: &RepoName, id: &str, e: crate::core::error::Error) -> ApiResult {
    if e.code != Code::RangeInvalid {
        return Err(e.into());
    }
    let s = UploadSession {
        id: id.to_owned(),
        repo: repo.clone(),
        size: e.upload_size.unwrap_or(0),
    };
    Ok(range_error(&s, &e.message))
}

/// 416 with the session's current `Range`, so the client can resume.
fn range_error(s: &UploadSession, message: &str) -> Response {
    let mut resp =
        ApiError(crate::core::error::Error::new(Code::RangeInvalid, message)).into_response();
    set_header(
        &mut resp,
        "location",
        format!("/v2/{}/blobs/uploads/{}", s.repo, s.id),
    );
    set_header(&mut resp, "range", range_value(s.size));
    set_header(&mut resp, "docker-upload-uuid", &s.id);
    resp
}

pub async fn put(ctx: &Ctx, repo: &RepoName, id: &str, req: &Req, body: Body) -> ApiResult {
    let d = req.param("digest").ok_or_else(|| {
        err(
            Code::DigestInvalid,
            "digest query parameter is required to close an upload",
        )
    })?;
    let d = digest(d)?;
    // A last chunk in the closing PUT must start where the upload ends,
    // as for PATCH; otherwise 416, and the session stays as it was.
    let (start, len) = match chunk_start(ctx, repo, id, req).await {
        Ok(chunk) => chunk,
        Err(resp) => return Ok(resp),
    };
    match ctx
        .registry
        .upload_finish(repo, id, start, &d, exactly(body_stream(body), len))
        .await
    {
        Ok(()) => Ok(blob_created(repo, d.as_str())),
        Err(e) => range_invalid(repo, id, e),
    }
}

pub async fn cancel(ctx: &Ctx, repo: &RepoName, id: &str) -> ApiResult {
    ctx.registry.upload_cancel(repo, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::content_range;

    #[test]
    fn content_range_forms() {
        assert_eq!(content_range("0-9"), Some((0, 9)));
        assert_eq!(content_range("bytes 10-19/100"), Some((10, 19)));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, 19)));
        assert_eq!(content_range("9-0"), None);
        assert_eq!(content_range("x-y"), None);
        assert_eq!(content_range(""), None);
        assert_eq!(content_range("0-18446744073709551615"), Some((0, u64::MAX)));
        assert_eq!(content_range("0-18446744073709551616"), None);
    }
}
