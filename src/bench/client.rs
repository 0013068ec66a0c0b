//! A small OCI Distribution client over hyper's pooled HTTP/1.1 client: just
//! the calls the benchmark makes, each checking the status the spec demands.
//! Nothing here is berth-specific, so the same code drives any registry.

use super::data::{Blob, ReqBody};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Every manifest type a pull client accepts. Registries that negotiate
/// (distribution) answer 404 for an OCI manifest not listed here.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// What one benchmark operation did on the wire.
#[derive(Default, Clone, Copy, Debug)]
pub struct Done {
    /// Payload bytes moved (blob bytes pushed or pulled, listing bodies).
    pub bytes: u64,
    /// HTTP requests it took.
    pub requests: u64,
}

impl std::ops::AddAssign for Done {
    fn add_assign(&mut self, o: Done) {
        self.bytes += o.bytes;
        self.requests += o.requests;
    }
}

pub struct Registry {
    client: Client<HttpConnector, ReqBody>,
    /// `http://host:port` plus any path prefix, without a trailing slash.
    base: String,
    /// `http://host:port`
    origin: String,
    auth: Option<HeaderValue>,
}

/// A response with its body read.
pub struct Full {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Registry {
    /// `url` is the registry's base URL (`http://host:port`); `basic_auth`
    /// is `user:password`; `http2`: HTTP/2 with prior knowledge (h2c), all
    /// requests multiplexed on one connection.
    pub fn new(
        url: &str,
        basic_auth: Option<&str>,
        pool: usize,
        http2: bool,
    ) -> Result<Registry, String> {
        let base = url.trim_end_matches('/').to_string();
        let rest = base.strip_prefix("http://").ok_or_else(|| {
            format!("{url}: only plain http:// URLs are supported (the bench has no TLS)")
        })?;
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() {
            return Err(format!("{url}: no host in URL"));
        }
        let origin = format!("http://{authority}");
        base.parse::<hyper::Uri>()
            .map_err(|e| format!("{url}: {e}"))?;
        let mut connector = HttpConnector::new();
        // Small requests (HEAD, manifest GET) must not wait on Nagle.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(pool)
            .http2_only(http2)
            .timer(TokioTimer::new())
            // Large windows, so one blob stream is not held back by flow
            // control (HTTP/2's default is 64 KiB).
            .http2_initial_stream_window_size(8 << 20)
            .http2_initial_connection_window_size(32 << 20)
            .build(connector);
        let auth = basic_auth
            .map(|a| {
                use base64::Engine as _;
                let v = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(a)
                );
                HeaderValue::from_str(&v).map_err(|e| format!("basic auth: {e}"))
            })
            .transpose()?;
        Ok(Registry {
            client,
            base,
            origin,
            auth,
        })
    }

    /// `path` (starting with `/v2/`) under the base URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A `Location` header value as an absolute URL.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{}", self.origin, location)
        } else {
            format!("{}/{}", self.base, location)
        }
    }

    /// Send one request; the response body is left unread.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
    ) -> Result<Response<Incoming>, String> {
        let mut req = Request::builder().method(method.clone()).uri(url);
        if let Some(a) = &self.auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let len = body.len();
        if len > 0 || matches!(method, Method::PUT | Method::POST | Method::PATCH) {
            req = req.header(CONTENT_LENGTH, len);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body).map_err(|e| format!("{method} {url}: {e}"))?;
        self.client
            .request(req)
            .await
            .map_err(|e| format!("{method} {url}: {}", error_chain(&e)))
    }

    /// Send one request and read the whole response body.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
    ) -> Result<Full, String> {
        let resp = self.send(method.clone(), url, headers, body).await?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("{method} {url}: reading body: {e}"))?
            .to_bytes();
        Ok(Full {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `call` and insist on `want`.
    async fn expect(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
        want: StatusCode,
    ) -> Result<Full, String> {
        let r = self.call(method.clone(), url, headers, body).await?;
        if r.status != want {
            return Err(unexpected(&method, url, want, &r));
        }
        Ok(r)
    }

    /// `GET /v2/`: is this a registry we can talk to?
    pub async fn ping(&self) -> Result<(), String> {
        let url = self.url("/v2/");
        let r = self.call(Method::GET, &url, &[], ReqBody::Empty).await?;
        match r.status {
            StatusCode::OK => Ok(()),
            StatusCode::UNAUTHORIZED => Err(format!(
                "GET {url}: 401: the registry wants authentication (--basic-auth USER:PASSWORD; \
                 token auth is not supported)"
            )),
            _ => Err(unexpected(&Method::GET, &url, StatusCode::OK, &r)),
        }
    }

    /// Open an upload session; returns its absolute URL.
    async fn start_upload(&self, repo: &str) -> Result<String, String> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let r = self
            .expect(
                Method::POST,
                &url,
                &[],
                ReqBody::Empty,
                StatusCode::ACCEPTED,
            )
            .await?;
        location(&r).map(|l| self.resolve(&l))
    }

    /// Monolithic upload: `POST` a session, then one `PUT ?digest=` with the
    /// whole blob. (The single-request `POST ?digest=` form is optional in
    /// the spec and distribution does not implement it, so a comparison
    /// between registries has to use this one.)
    pub async fn push_monolithic(
        &self,
        repo: &str,
        digest: &str,
        body: ReqBody,
    ) -> Result<Done, String> {
        let size = body.len();
        let loc = self.start_upload(repo).await?;
        let put = with_digest(&loc, digest);
        self.expect(
            Method::PUT,
            &put,
            &[(CONTENT_TYPE.as_str(), "application/octet-stream")],
            body,
            StatusCode::CREATED,
        )
        .await?;
        Ok(Done {
            bytes: size,
            requests: 2,
        })
    }

    pub async fn push_blob(&self, repo: &str, blob: &Blob) -> Result<Done, String> {
        self.push_monolithic(repo, &blob.digest, ReqBody::Blob(blob.body(0, blob.size)))
            .await
    }

    /// Chunked upload: `POST`, one `PATCH` per `chunk` bytes with
    /// `Content-Range`, then `PUT ?digest=` with no body.
    pub async fn push_chunked(&self, repo: &str, blob: &Blob, chunk: u64) -> Result<Done, String> {
        let mut loc = self.start_upload(repo).await?;
        let mut requests = 1;
        let mut start = 0;
        while start < blob.size {
            let end = (start + chunk).min(blob.size);
            let range = format!("{}-{}", start, end - 1);
            let r = self
                .expect(
                    Method::PATCH,
                    &loc,
                    &[
                        (CONTENT_TYPE.as_str(), "application/octet-stream"),
                        ("content-range", &range),
                    ],
                    ReqBody::Blob(blob.body(start, end)),
                    StatusCode::ACCEPTED,
                )
                .await?;
            loc = self.resolve(&location(&r)?);
            requests += 1;
            start = end;
        }
        let put = with_digest(&loc, &blob.digest);
        self.expect(Method::PUT, &put, &[], ReqBody::Empty, StatusCode::CREATED)
            .await?;
        Ok(Done {
            bytes: blob.size,
            requests: requests + 1,
        })
    }

    /// `GET` a blob, streaming it to nowhere; fails unless all `size` bytes
    /// arrive. One redirect (to a storage URL) is followed.
    pub async fn pull_blob(&self, repo: &str, digest: &str, size: u64) -> Result<Done, String> {
        let mut url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let mut requests = 0;
        loop {
            requests += 1;
            let resp = self.send(Method::GET, &url, &[], ReqBody::Empty).await?;
            let status = resp.status();
            if status.is_redirection() && requests == 1 {
                let loc = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| format!("GET {url}: {status} without Location"))?;
                url = self.resolve(loc);
                continue;
            }
            if status != StatusCode::OK {
                let (parts, body) = resp.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let full = Full {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                };
                return Err(unexpected(&Method::GET, &url, StatusCode::OK, &full));
            }
            let mut body = resp.into_body();
            let mut got = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("GET {url}: reading body: {e}"))?;
                if let Some(d) = frame.data_ref() {
                    got += d.len() as u64;
                }
            }
            if got != size {
                return Err(format!("GET {url}: got {got} bytes, want {size}"));
            }
            return Ok(Done {
                bytes: got,
                requests,
            });
        }
    }

    pub async fn head_blob(&self, repo: &str, digest: &str) -> Result<Done, String> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        self.expect(Method::HEAD, &url, &[], ReqBody::Empty, StatusCode::OK)
            .await?;
        Ok(Done {
            bytes: 0,
            requests: 1,
        })
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Done, String> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let n = bytes.len() as u64;
        self.expect(
            Method::PUT,
            &url,
            &[(CONTENT_TYPE.as_str(), media_type)],
            ReqBody::Full(bytes),
            StatusCode::CREATED,
        )
        .await?;
        Ok(Done {
            bytes: n,
            requests: 1,
        })
    }

    /// `GET` (or `HEAD`) a manifest by tag or digest with a pull client's
    /// `Accept` list.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        head: bool,
    ) -> Result<Done, String> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let method = if head { Method::HEAD } else { Method::GET };
        let r = self
            .expect(
                method,
                &url,
                &[(ACCEPT.as_str(), MANIFEST_ACCEPT)],
                ReqBody::Empty,
                StatusCode::OK,
            )
            .await?;
        if !head && r.body.is_empty() {
            return Err(format!("GET {url}: empty manifest"));
        }
        Ok(Done {
            bytes: r.body.len() as u64,
            requests: 1,
        })
    }

    /// The whole tags list, following `Link` pages; returns the tag count.
    pub async fn list_tags(&self, repo: &str) -> Result<(Done, usize), String> {
        self.list(&self.url(&format!("/v2/{repo}/tags/list")), "tags", true)
            .await
    }

    /// One page of the catalog (`?n=`), not followed: catalogs can be huge.
    pub async fn catalog_page(&self, n: u32) -> Result<(Done, usize), String> {
        self.list(
            &self.url(&format!("/v2/_catalog?n={n}")),
            "repositories",
            false,
        )
        .await
    }

    async fn list(&self, first: &str, key: &str, follow: bool) -> Result<(Done, usize), String> {
        let mut url = first.to_string();
        let mut done = Done::default();
        let mut items = 0;
        loop {
            let r = self
                .expect(Method::GET, &url, &[], ReqBody::Empty, StatusCode::OK)
                .await?;
            done.requests += 1;
            done.bytes += r.body.len() as u64;
            items += count_items(&r.body, key).map_err(|e| format!("GET {url}: bad JSON: {e}"))?;
            let next = r
                .headers
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            match next {
                Some(n) if follow && done.requests < 10_000 => url = self.resolve(&n),
                _ => return Ok((done, items)),
            }
        }
    }
}

/// The length of the array under `key` in a JSON object, checking that the
/// whole body is JSON but building nothing: parsing a 1,000-tag list into a
/// `serde_json::Value` cost the client more than the server spent on it.
fn count_items(body: &[u8], key: &str) -> Result<usize, serde_json::Error> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    struct Object<'k>(&'k str);
    struct Count;

    impl<'de> Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
        fn visit_unit<E>(self) -> Result<usize, E> {
            Ok(0)
        }
    }

    impl<'de> DeserializeSeed<'de> for Count {
        type Value = usize;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Object<'_> {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if k == self.0 {
                    n = map.next_value_seed(Count)?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(n)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(body);
    let n = serde::Deserializer::deserialize_map(&mut de, Object(key))?;
    de.end()?;
    Ok(n)
}

fn location(r: &Full) -> Result<String, String> {
    r.headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("{}: response without Location", r.status))
}

/// `loc` with `digest=` added to its query.
pub fn with_digest(loc: &str, digest: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={digest}")
}

/// The target of a `Link: <url>; rel="next"` header.
pub fn next_link(v: &str) -> Option<String> {
    v.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

fn unexpected(method: &Method, url: &str, want: StatusCode, r: &Full) -> String {
    let body = String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).to_string();
    format!(
        "{method} {url}: status {}, want {}: {}",
        r.status.as_u16(),
        want.as_u16(),
        body.trim()
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_joins_any_query() {
        assert_eq!(
            with_digest("http://h/v2/a/blobs/uploads/1", "sha256:ab"),
            "http://h/v2/a/blobs/uploads/1?digest=sha256:ab"
        );
        assert_eq!(
            with_digest("http://h/u/1?_state=xyz", "sha256:ab"),
            "http://h/u/1?_state=xyz&digest=sha256:ab"
        );
    }

    #[test]
    fn counts_listed_items_without_building_them() {
        let body = br#"{"name":"a/b","tags":["v1","v\"2",{"x":[1]},null]}"#;
        assert_eq!(count_items(body, "tags").unwrap(), 4);
        assert_eq!(count_items(body, "repositories").unwrap(), 0);
        assert_eq!(count_items(br#"{"tags":null}"#, "tags").unwrap(), 0);
        assert_eq!(
            count_items(br#"{"repositories":[]}"#, "repositories").unwrap(),
            0
        );
        assert!(count_items(br#"{"tags":["a"]"#, "tags").is_err());
        assert!(count_items(br#"{"tags":["a"]} x"#, "tags").is_err());
        assert!(count_items(b"[]", "tags").is_err());
    }

    #[test]
    fn link_header_next() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(
            next_link(r#"</p>; rel="prev", </n>; rel=next"#).as_deref(),
            Some("/n")
        );
    }

    #[test]
    fn locations_resolve_against_the_registry() {
        let r = Registry::new("http://127.0.0.1:5000/", None, 1, false).unwrap();
        assert_eq!(r.url("/v2/"), "http://127.0.0.1:5000/v2/");
        assert_eq!(
            r.resolve("/v2/a/blobs/uploads/1"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/1"
        );
        assert_eq!(r.resolve("http://other:1/x"), "http://other:1/x");
        assert!(Registry::new("https://x", None, 1, false).is_err());
        assert!(Registry::new("http://", None, 1, true).is_err());
    }
}
