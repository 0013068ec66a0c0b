//! Auth in front of the core: who the caller is (Basic or Bearer), whether
//! the endpoint allows them, the challenges that tell clients how to log
//! in, and the built-in token endpoint (`/auth/token`).
//!
//! A refusal never depends on what the repository holds: the check runs
//! before the core is asked anything, so a caller without pull rights gets
//! the same answer for content that exists and content that does not.

use super::error::ApiError;
use super::routes::Route;
use super::{set_header, Ctx};
use crate::auth::token::Scope;
use crate::auth::{Actions, Caller, Refusal};
use crate::config::AuthMode;
use crate::core::error::{Code, Error};
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use std::net::IpAddr;

/// The address a connection came from (set by the accept loop).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// Largest token request body read (a form with a few fields).
const MAX_TOKEN_FORM: usize = 64 << 10;

/// What an endpoint requires of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Need<'a> {
    /// Nothing (unknown endpoints and methods answer the same to all).
    Nothing,
    /// Any valid credentials (`GET /v2/`, so clients learn to log in).
    Login,
    /// The catalog (its entries are filtered by pull rights).
    Catalog,
    /// Actions in a repository.
    Repo(&'a str, Actions),
}

/// The actions each endpoint needs.
pub fn need<'a>(route: &Route<'a>, method: &Method) -> Need<'a> {
    use Method as M;
    let pull = Actions::PULL;
    let push = Actions::PUSH;
    match (route, method) {
        (Route::Base, &M::GET | &M::HEAD) => Need::Login,
        (Route::Catalog, &M::GET) => Need::Catalog,
        (Route::Tags { name }, &M::GET) | (Route::Referrers { name, .. }, &M::GET) => {
            Need::Repo(name, pull)
        }
        (Route::Manifest { name, .. } | Route::Blob { name, .. }, &M::GET | &M::HEAD) => {
            Need::Repo(name, pull)
        }
        (Route::Manifest { name, .. }, &M::PUT) => Need::Repo(name, push),
        (Route::Manifest { name, .. } | Route::Blob { name, .. }, &M::DELETE) => {
            Need::Repo(name, Actions::DELETE)
        }
        (Route::UploadStart { name }, &M::POST) => Need::Repo(name, push),
        (Route::Upload { name, .. }, &M::GET | &M::PATCH | &M::PUT | &M::DELETE) => {
            Need::Repo(name, push)
        }
        _ => Need::Nothing,
    }
}

/// Credentials from an `Authorization` header.
pub(super) enum Credentials {
    None,
    Basic(String, String),
    Bearer(String),
    Malformed,
}

pub(super) fn credentials(headers: &HeaderMap) -> Credentials {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Credentials::None;
    };
    let Ok(v) = v.to_str() else {
        return Credentials::Malformed;
    };
    let (scheme, rest) = v.trim().split_once(' ').unwrap_or((v, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        match decoded.as_deref().and_then(|s| s.split_once(':')) {
            Some((u, p)) => Credentials::Basic(u.to_owned(), p.to_owned()),
            None => Credentials::Malformed,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Credentials::Bearer(rest.to_owned())
    } else {
        Credentials::Malformed
    }
}

/// Who is calling. `Err` is the response for credentials that fail.
pub async fn authenticate(
    ctx: &Ctx,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<Caller, Response> {
    let auth = &ctx.auth;
    if !auth.enabled() {
        return Ok(Caller::Unrestricted);
    }
    let refused = |r: Refusal| match r {
        Refusal::Throttled(secs) => throttled(secs),
        Refusal::Invalid => challenge(
            ctx,
            headers,
            None,
            Some("invalid_token"),
            Code::Unauthorized,
        ),
    };
    match credentials(headers) {
        Credentials::None => Ok(Caller::Anonymous),
        Credentials::Basic(user, password) => match auth.login(client, &user, &password).await {
            Ok(()) => Ok(Caller::User(user)),
            Err(r) => Err(refused(r)),
        },
        Credentials::Bearer(token) if auth.mode == AuthMode::Token => auth
            .verify_token(&token)
            .map(Caller::Token)
            .map_err(refused),
        Credentials::Bearer(_) | Credentials::Malformed => Err(refused(Refusal::Invalid)),
    }
}

/// The refusal when `caller` may not do what the endpoint needs.
pub fn refusal(ctx: &Ctx, caller: &Caller, need: &Need, headers: &HeaderMap) -> Option<Response> {
    let auth = &ctx.auth;
    if !auth.enabled() {
        return None;
    }
    let verdict: Result<(), Response> = match need {
        Need::Nothing => Ok(()),
        Need::Login if caller.is_anonymous() => {
            Err(challenge(ctx, headers, None, None, Code::Unauthorized))
        }
        Need::Login => Ok(()),
        Need::Catalog => {
            let anonymous_token_mode = caller.is_anonymous() && auth.mode == AuthMode::Token;
            if auth.may_list_catalog(caller) && !anonymous_token_mode {
                return None;
            }
            let error = (!caller.is_anonymous()).then_some("insufficient_scope");
            Err(challenge(
                ctx,
                headers,
                Some("registry:catalog:*".into()),
                error,
                Code::Unauthorized,
            ))
        }
        Need::Repo(name, actions) => {
            if auth.actions(caller, name).contains(*actions) {
                return None;
            }
            // A push also reads (clients check for blobs before sending).
            let asked = if actions.contains(Actions::PUSH) {
                actions.union(Actions::PULL)
            } else {
                *actions
            };
            let scope = format!("repository:{name}:{asked}");
            let denied = || {
                ApiError(
                    Error::new(Code::Denied, "requested access to the resource is denied")
                        .with_detail(json!([{ "Type": "repository", "Name": name, "Action": actions.to_string() }])),
                )
                .into_response()
            };
            Err(match caller {
                Caller::Anonymous => challenge(ctx, headers, Some(scope), None, Code::Unauthorized),
                // A token that lacks the scope: the client may get a better one.
                Caller::Token(_) => challenge(
                    ctx,
                    headers,
                    Some(scope),
                    Some("insufficient_scope"),
                    Code::Unauthorized,
                ),
                _ => denied(),
            })
        }
    };
    verdict.err()
}

/// The realm of the token challenge: configured, or this server's
/// `/auth/token` at the host the client used.
fn realm(ctx: &Ctx, headers: &HeaderMap) -> String {
    if let Some(r) = &ctx.auth.realm {
        return r.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        })
        .unwrap_or("127.0.0.1");
    let scheme = if ctx.tls { "https" } else { "http" };
    format!("{scheme}://{host}/auth/token")
}

/// A 401 with the `WWW-Authenticate` challenge of the configured mode.
fn challenge(
    ctx: &Ctx,
    headers: &HeaderMap,
    scope: Option<String>,
    error: Option<&str>,
    code: Code,
) -> Response {
    let value = match ctx.auth.mode {
        AuthMode::Token => {
            let mut v = format!(
                "Bearer realm=\"{}\",service=\"{}\"",
                realm(ctx, headers),
                ctx.auth.service
            );
            if let Some(s) = &scope {
                v.push_str(&format!(",scope=\"{s}\""));
            }
            if let Some(e) = error {
                v.push_str(&format!(",error=\"{e}\""));
            }
            v
        }
        _ => format!("Basic realm=\"{}\"", ctx.auth.service),
    };
    let message = match error {
        Some("insufficient_scope") => "the token does not grant this access",
        Some(_) => "credentials were not accepted",
        None => "authentication required",
    };
    let mut e = Error::new(code, message);
    if let Some(s) = scope {
        e = e.with_detail(json!({ "scope": s }));
    }
    let mut resp = ApiError(e).into_response();
    set_header(&mut resp, "www-authenticate", value);
    resp
}

fn throttled(retry_after: u64) -> Response {
    let mut resp = ApiError(Error::new(
        Code::TooManyRequests,
        "too many failed logins; try again later",
    ))
    .into_response();
    set_header(&mut resp, "retry-after", retry_after.to_string());
    resp
}

/// A token for another service (audience) than this registry's is no use
/// here, and an issuer that signs whatever it is asked for would make
/// tokens other services might accept.
fn unknown_service() -> Response {
    token_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "unknown service: this issuer makes tokens for its own registry only",
    )
}

/// An OAuth2-style error from the token endpoint.
fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description,
        "errors": [{ "code": if status == StatusCode::UNAUTHORIZED { "UNAUTHORIZED" } else { "UNSUPPORTED" }, "message": description }] });
    let mut resp = (status, body.to_string()).into_response();
    set_header(&mut resp, "content-type", "application/json");
    resp
}

/// `GET /auth/token?service=&scope=...` (credentials by Basic, or none for
/// anonymous) and `POST /auth/token` (the OAuth2 password grant containerd
/// uses). Grants the intersection of the requested scopes and the policy.
pub async fn token_endpoint(
    ctx: &Ctx,
    method: &Method,
    headers: &HeaderMap,
    query: &[(String, String)],
    client: IpAddr,
    body: Body,
) -> Response {
    let auth = &ctx.auth;
    let Some(issuer) = auth.issuer.as_ref() else {
        return ApiError(Error::new(Code::NameUnknown, "no such endpoint")).into_response();
    };
    type Asked = (Option<(String, String)>, Vec<String>, Option<String>);
    let (user, scopes, service): Asked = match *method {
        Method::GET => {
            let user = match credentials(headers) {
                Credentials::Basic(u, p) => Some((u, p)),
                Credentials::None | Credentials::Bearer(_) => None,
                Credentials::Malformed => {
                    return token_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        "malformed credentials",
                    )
                }
            };
            let scopes = query
                .iter()
                .filter(|(k, _)| k == "scope")
                .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
                .collect();
            let service = query.iter().find(|(k, _)| k == "service");
            (user, scopes, service.map(|(_, v)| v.clone()))
        }
        Method::POST => {
            let Ok(bytes) = axum::body::to_bytes(body, MAX_TOKEN_FORM).await else {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "unreadable or oversized form",
                );
            };
            let form: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
            let field = |k: &str| form.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
            match field("grant_type").as_deref() {
                Some("password") => {}
                _ => {
                    return token_error(
                        StatusCode::BAD_REQUEST,
                        "unsupported_grant_type",
                        "only the password grant is supported; use GET for anonymous tokens",
                    )
                }
            }
            let (Some(u), Some(p)) = (field("username"), field("password")) else {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "username and password are required",
                );
            };
            let scopes = field("scope")
                .map(|s| s.split(' ').map(str::to_owned).collect())
                .unwrap_or_default();
            (Some((u, p)), scopes, field("service"))
        }
        _ => {
            return ApiError(Error::new(Code::Unsupported, "use GET or POST")).into_response();
        }
    };
    if service.is_some_and(|s| s != issuer.service()) {
        return unknown_service();
    }
    let subject = match &user {
        Some((u, p)) => match auth.login(client, u, p).await {
            Ok(()) => Some(u.as_str()),
            Err(Refusal::Throttled(secs)) => return throttled(secs),
            Err(Refusal::Invalid) => {
                return token_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_grant",
                    "wrong user name or password",
                )
            }
        },
        None => None,
    };
    let granted: Vec<Scope> = scopes
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| Scope::parse(s))
        .filter_map(|s| match s {
            Scope::Repository(name, asked) => {
                let a = asked.intersect(auth.policy_actions(subject, &name));
                (!a.is_empty()).then_some(Scope::Repository(name, a))
            }
            Scope::Catalog => Some(Scope::Catalog),
        })
        .collect();
    match issuer.issue(subject.unwrap_or(""), &granted) {
        Ok(t) => {
            let issued_at = humantime::format_rfc3339_seconds(t.issued_at).to_string();
            let body = json!({
                "token": t.token, "access_token": t.token,
                "expires_in": t.expires_in, "issued_at": issued_at,
            });
            let mut resp = (StatusCode::OK, body.to_string()).into_response();
            set_header(&mut resp, "content-type", "application/json");
            set_header(&mut resp, "cache-control", "no-store");
            resp
        }
        Err(e) => ApiError(Error::internal("issuing token", e)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_the_right_actions() {
        let r = Route::Blob {
            name: "a/b",
            digest: "sha256:x",
        };
        assert_eq!(need(&r, &Method::HEAD), Need::Repo("a/b", Actions::PULL));
        assert_eq!(
            need(&r, &Method::DELETE),
            Need::Repo("a/b", Actions::DELETE)
        );
        assert_eq!(need(&r, &Method::POST), Need::Nothing);
        let u = Route::Upload { name: "a", id: "x" };
        for m in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
            assert_eq!(need(&u, &m), Need::Repo("a", Actions::PUSH));
        }
        assert_eq!(need(&Route::Base, &Method::GET), Need::Login);
        assert_eq!(need(&Route::Catalog, &Method::GET), Need::Catalog);
        let m = Route::Manifest {
            name: "a",
            reference: "v1",
        };
        assert_eq!(need(&m, &Method::PUT), Need::Repo("a", Actions::PUSH));
        assert_eq!(
            need(
                &Route::Referrers {
                    name: "a",
                    digest: "d"
                },
                &Method::GET
            ),
            Need::Repo("a", Actions::PULL)
        );
    }

    #[test]
    fn credentials_parse() {
        let mut h = HeaderMap::new();
        assert!(matches!(credentials(&h), Credentials::None));
        h.insert(header::AUTHORIZATION, "Basic YWxpY2U6cDpx".parse().unwrap());
        assert!(matches!(credentials(&h), Credentials::Basic(u, p) if u == "alice" && p == "p:q"));
        h.insert(header::AUTHORIZATION, "bearer abc.def".parse().unwrap());
        assert!(matches!(credentials(&h), Credentials::Bearer(t) if t == "abc.def"));
        for bad in ["Basic !!!", "Basic YWxpY2U=", "Digest x", "Bearer "] {
            h.insert(header::AUTHORIZATION, bad.parse().unwrap());
            assert!(matches!(credentials(&h), Credentials::Malformed), "{bad}");
        }
    }
}
