//! Content discovery: tags list, catalog and referrers.

use super::error::{err, ApiResult};
use super::{set_header, Ctx, Req};
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

/// `{"name": ..., "tags": [...]}` and `{"repositories": [...]}`, written
/// straight from the page (no intermediate JSON tree).
#[derive(serde::Serialize)]
struct Listing<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repositories: Option<&'a [String]>,
}

fn listing(body: &Listing<'_>, page: &Page, path: &str, n: usize) -> Response {
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (StatusCode::OK, body).into_response();
    set_header(&mut resp, "content-type", "application/json");
    if let Some(last) = &page.next {
        let q = serde_urlencoded::to_string([("n", n.to_string()), ("last", last.clone())])
            .unwrap_or_default();
        set_header(&mut resp, "link", format!("<{path}?{q}>; rel=\"next\""));
    }
    resp
}

pub async fn tags(ctx: &Ctx, repo: &RepoName, req: &Req) -> ApiResult {
    let n = page_size(req)?;
    let page = ctx.registry.tags(repo, req.param("last"), n).await?;
    let body = Listing {
        name: Some(repo.as_str()),
        tags: Some(page.items()),
        repositories: None,
    };
    Ok(listing(&body, &page, &format!("/v2/{repo}/tags/list"), n))
}

pub async fn catalog(ctx: &Ctx, req: &Req) -> ApiResult {
    let n = page_size(req)?;
    let page = ctx.registry.catalog(req.param("last"), n).await?;
    let body = Listing {
        name: None,
        tags: None,
        repositories: Some(page.items()),
    };
    Ok(listing(&body, &page, "/v2/_catalog", n))
}

pub async fn referrers(ctx: &Ctx, repo: &RepoName, subject: &Digest, req: &Req) -> ApiResult {
    let filter = req.param("artifactType");
    let found = ctx.registry.referrers(repo, subject, filter).await?;
    let manifests: Vec<Value> = found
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
    Ok(resp)
}
