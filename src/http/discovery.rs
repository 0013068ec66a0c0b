//! Content discovery: tags list, catalog and referrers.

use super::error::{err, ApiResult};
use super::{set_header, Ctx, Req};
use crate::auth::{cursor, Caller};
use crate::core::digest::Digest;
use crate::core::error::Code;
use crate::core::manifest::OCI_INDEX;
use crate::core::names::RepoName;
use crate::core::registry::Page;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Page size when the client does not ask for one, and the largest allowed:
/// listings are always bounded index reads (invariant 8).
const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;

fn page_size(req: &Req) -> Result<usize, super::error::ApiError> {
    match req.param("n") {
        None => Ok(DEFAULT_PAGE),
        Some(n) => n
            .parse::<usize>()
            .map(|n| n.min(MAX_PAGE))
            .map_err(|_| err(Code::SizeInvalid, "n must be a non-negative integer")),
    }
}

/// `{"name":"<repo>","tags":[...]}` or `{"repositories":[...]}`, written
/// straight from the page. Tags and repository names are validated against
/// grammars with nothing JSON must escape, so each is copied between quotes
/// as it is; anything else (a database edited by hand) goes through
/// serde_json's escaping.
fn listing_body(name: Option<&str>, key: &str, items: &[String]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        if s.bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        } else {
            let _ = serde_json::to_writer(&mut *out, s);
        }
    }
    let mut out = Vec::with_capacity(32 + items.iter().map(|i| i.len() + 3).sum::<usize>());
    out.push(b'{');
    if let Some(name) = name {
        out.extend_from_slice(b"\"name\":");
        string(&mut out, name);
        out.push(b',');
    }
    string(&mut out, key);
    out.extend_from_slice(b":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(&mut out, item);
    }
    out.extend_from_slice(b"]}");
    out
}

/// `Link: <path?n=..&last=..[&more]>; rel="next"`, the spec's pointer to
/// the next page of a listing.
fn set_next_link(resp: &mut Response, path: &str, n: usize, last: &str, more: &[(&str, &str)]) {
    let mut q = vec![("n", n.to_string()), ("last", last.to_owned())];
    q.extend(more.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let q = serde_urlencoded::to_string(q).unwrap_or_default();
    set_header(resp, "link", format!("<{path}?{q}>; rel=\"next\""));
}

fn listing(body: Vec<u8>, page: &Page, path: &str, n: usize) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    set_header(&mut resp, "content-type", "application/json");
    if let Some(last) = &page.next {
        set_next_link(&mut resp, path, n, last, &[]);
    }
    resp
}

pub async fn tags(ctx: &Ctx, repo: &RepoName, req: &Req) -> ApiResult {
    let n = page_size(req)?;
    let page = ctx.registry.tags(repo, req.param("last"), n).await?;
    let body = listing_body(Some(repo.as_str()), "tags", page.items());
    Ok(listing(body, &page, &format!("/v2/{repo}/tags/list"), n))
}

/// The catalog, filtered to what the caller may pull. A filtered page
/// that stops on a hidden name (the scan budget ran out) links on with a
/// sealed cursor, so the `Link` never names a repository the caller may
/// not see.
pub async fn catalog(ctx: &Ctx, req: &Req) -> ApiResult {
    let n = page_size(req)?;
    let opened;
    let last = match req.param("last") {
        Some(l) if cursor::is_sealed(l) => {
            opened = cursor::open(l).ok_or_else(|| {
                err(
                    Code::SizeInvalid,
                    "last is not a cursor this registry made (it may predate a restart)",
                )
            })?;
            Some(opened.as_str())
        }
        other => other,
    };
    let mut page = if matches!(req.caller, Caller::Unrestricted) {
        ctx.registry.catalog(last, n).await?
    } else {
        let shows = |r: &str| ctx.auth.catalog_shows(&req.caller, r);
        ctx.registry.catalog_where(last, n, &shows).await?
    };
    if page.next_hidden() {
        page.next = Some(
            page.next
                .as_deref()
                .and_then(cursor::seal)
                .ok_or_else(|| err(Code::Internal, "could not make a pagination cursor"))?,
        );
    }
    let body = listing_body(None, "repositories", page.items());
    Ok(listing(body, &page, "/v2/_catalog", n))
}

/// The referrers of `subject`: an image index of descriptors, paginated
/// like the listings (`n`, `last` and a `Link` to the next page, which
/// keeps the `artifactType` filter), so a subject with a million
/// signatures costs no more per request than one with ten.
pub async fn referrers(ctx: &Ctx, repo: &RepoName, subject: &Digest, req: &Req) -> ApiResult {
    let filter = req.param("artifactType");
    let n = page_size(req)?;
    let last = match req.param("last") {
        None => None,
        Some(l) => Some(
            l.parse::<Digest>()
                .map_err(|_| err(Code::DigestInvalid, "last must be a digest"))?,
        ),
    };
    let page = ctx
        .registry
        .referrers(repo, subject, filter, last.as_ref(), n)
        .await?;
    let manifests: Vec<Value> = page
        .items
        .into_iter()
        .map(|r| {
            let mut d = json!({ "mediaType": r.media_type, "digest": r.digest, "size": r.size });
            if let Some(t) = r.artifact_type {
                d["artifactType"] = Value::String(t);
            }
            if let Some(a) = r.annotations {
                d["annotations"] = Value::Object(a);
            }
            d
        })
        .collect();
    let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    set_header(&mut resp, "content-type", OCI_INDEX);
    if filter.is_some() {
        set_header(&mut resp, "oci-filters-applied", "artifactType");
    }
    if let Some(last) = &page.next {
        let filter: Vec<_> = filter.map(|f| ("artifactType", f)).into_iter().collect();
        let path = format!("/v2/{repo}/referrers/{subject}");
        set_next_link(&mut resp, &path, n, last, &filter);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::listing_body;

    #[test]
    fn listing_bodies_are_json() {
        let items: Vec<String> = ["v1", "1.0-rc_2", "we\"ird\\", "tab\t", "é"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let body = listing_body(Some("a/b"), "tags", &items);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({ "name": "a/b", "tags": items }));
        let body = listing_body(None, "repositories", &[]);
        assert_eq!(body, br#"{"repositories":[]}"#);
    }
}
