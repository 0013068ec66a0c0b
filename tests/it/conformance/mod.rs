//! Conformance with the OCI Distribution Specification v1.1
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md>),
//! checked against the real `berth` binary over HTTP.
//!
//! Each test's doc comment quotes the sentence of the spec it checks (or
//! names the section, or our issue when the requirement is ours), so the
//! modules read as a checklist:
//!
//! - `base`: `/v2/`, endpoint table, methods, error body format.
//! - `blobs`: pulling, HEAD, ranges and deleting blobs.
//! - `uploads`: monolithic, chunked and streamed pushes, sessions.
//! - `mounts`: cross-repository mount, with and without `from`.
//! - `manifests`: pushing, pulling and deleting manifests.
//! - `media_types`: OCI and Docker manifest types, artifacts, `data`.
//! - `digests`: sha512 everywhere sha256 works.
//! - `discovery`: tags list, catalog, referrers.
//! - `names`: the name, tag and digest grammars; path traversal.
//!
//! Every test starts its own registry, so they are independent and run in
//! parallel.

mod base;
mod blobs;
mod digests;
mod discovery;
mod manifests;
mod media_types;
mod mounts;
mod names;
mod uploads;

use crate::common::{self, Berth};
use rand::{Rng, SeedableRng};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use reqwest::Method;
use sha2::{Digest as _, Sha512};

pub use crate::common::{sha256, OCI_INDEX, OCI_MANIFEST};

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// §Error Codes: "The `code` field MUST be one of the following".
pub const SPEC_CODES: [&str; 14] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

pub fn sha512(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(bytes)))
}

/// `n` reproducible random bytes.
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

/// A descriptor for `bytes` with the given media type and digest.
pub fn desc(media_type: &str, digest: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header that may repeat.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn expect(&self, status: u16) -> &Reply {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }

    /// Assert an error response: `status`, and (unless the body is empty, as
    /// for HEAD) a spec-shaped JSON error body whose first code is `code`.
    pub fn expect_error(&self, status: u16, code: &str) -> &Reply {
        self.expect(status);
        let codes = error_codes(&self.headers, &self.body);
        assert_eq!(
            codes.first().map(String::as_str),
            Some(code),
            "{}",
            self.text()
        );
        self
    }

    /// Assert a client error with a spec-shaped body, whatever the code.
    pub fn expect_client_error(&self, status: u16) -> Vec<String> {
        self.expect(status);
        error_codes(&self.headers, &self.body)
    }
}

/// Check the §Error Codes body format and return its codes:
/// "If the response body is in JSON format, it MUST have the following
/// format: {"errors": [{"code", "message", "detail"}]}. The `code` field
/// MUST be a unique identifier, containing only uppercase alphabetic
/// characters and underscores. The `message` field is OPTIONAL, and if
/// present, it SHOULD be a human readable string".
pub fn error_codes(headers: &HeaderMap, body: &[u8]) -> Vec<String> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "error Content-Type {ct:?}: {}",
        String::from_utf8_lossy(body)
    );
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "error body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let errors = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {v}"));
    assert!(!errors.is_empty(), "empty errors array");
    errors
        .iter()
        .map(|e| {
            let code = e["code"]
                .as_str()
                .unwrap_or_else(|| panic!("code is not a string: {e}"));
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "code {code:?} is not uppercase letters and underscores"
            );
            assert!(
                SPEC_CODES.contains(&code),
                "code {code:?} is not a spec code"
            );
            if let Some(m) = e.get("message") {
                assert!(m.is_string(), "message is not a string: {e}");
            }
            code.to_owned()
        })
        .collect()
}

/// A running registry and a client for it.
pub struct Reg {
    pub b: Berth,
    pub c: Client,
}

impl Reg {
    pub fn start() -> Reg {
        Reg {
            b: Berth::start(),
            c: common::client(),
        }
    }

    /// An absolute URL for a path (`/v2/...`) or a `Location` header value,
    /// which may be absolute or relative.
    pub fn url(&self, path_or_location: &str) -> String {
        if path_or_location.starts_with("http://") || path_or_location.starts_with("https://") {
            path_or_location.to_owned()
        } else {
            assert!(
                path_or_location.starts_with('/'),
                "not a path: {path_or_location}"
            );
            format!("{}{}", self.b.url, path_or_location)
        }
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.c.request(method, self.url(path))
    }

    pub fn send(&self, rb: RequestBuilder) -> Reply {
        let resp = rb.send().expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().expect("body").to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send(self.req(Method::GET, path))
    }

    pub fn head(&self, path: &str) -> Reply {
        self.send(self.req(Method::HEAD, path))
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send(self.req(Method::DELETE, path))
    }

    /// A request sent byte-for-byte as written (see [`common::raw_http`]).
    pub fn raw(&self, method: &str, target: &str) -> Reply {
        let r = common::raw_http(&self.b.addr, method, target, &[], b"");
        let mut headers = HeaderMap::new();
        for (k, v) in &r.headers {
            if let (Ok(k), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                reqwest::header::HeaderValue::from_str(v),
            ) {
                headers.append(k, v);
            }
        }
        Reply {
            status: r.status,
            headers,
            body: r.body,
        }
    }

    /// Monolithic POST of `bytes` under `digest`.
    pub fn post_blob(&self, repo: &str, digest: &str, bytes: &[u8]) -> Reply {
        self.send(
            self.req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec()),
        )
    }

    /// Push `bytes` as a blob (sha256); returns its digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        self.post_blob(repo, &d, bytes).expect(201);
        d
    }

    /// Open an upload session; returns the reply (202 asserted).
    pub fn open_session(&self, repo: &str) -> Reply {
        let r = self.send(
            self.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
                .body(Vec::new()),
        );
        r.expect(202);
        r
    }

    /// The `Location` of an upload reply, as an absolute URL.
    pub fn location(&self, r: &Reply) -> String {
        self.url(r.header("location").expect("Location header"))
    }

    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Reply {
        self.send(
            self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
                .header("content-type", media_type)
                .body(body.to_vec()),
        )
    }

    /// Push a small image (a config and one random layer) and its manifest
    /// under `reference`; returns the manifest bytes and digest.
    pub fn push_image(&self, repo: &str, reference: &str, seed: u64) -> (Vec<u8>, String) {
        let config = self.push_config(repo, seed);
        let layer = random_bytes(seed ^ 0x5eed, 64);
        let ld = self.push_blob(repo, &layer);
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [desc(OCI_LAYER, &ld, &layer)],
        }))
        .unwrap();
        self.put_manifest(repo, reference, OCI_MANIFEST, &m)
            .expect(201);
        let d = sha256(&m);
        (m, d)
    }

    /// Push a small config blob; returns its descriptor.
    pub fn push_config(&self, repo: &str, seed: u64) -> serde_json::Value {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
        let d = self.push_blob(repo, config.as_bytes());
        desc(OCI_CONFIG, &d, config.as_bytes())
    }

    /// Push the empty blob `{}`; returns its descriptor (with `data`).
    pub fn push_empty(&self, repo: &str) -> serde_json::Value {
        let d = self.push_blob(repo, b"{}");
        assert_eq!(d, EMPTY_DIGEST);
        serde_json::json!({ "mediaType": OCI_EMPTY, "digest": d, "size": 2, "data": "e30=" })
    }

    /// Push an artifact manifest in `repo` (no tag) with the given
    /// `subject`, `artifactType` and annotations; returns (bytes, digest).
    pub fn push_referrer(
        &self,
        repo: &str,
        subject: (&str, &str, usize),
        artifact_type: Option<&str>,
        annotations: serde_json::Value,
        seed: u64,
    ) -> (Vec<u8>, String) {
        let empty = self.push_empty(repo);
        let payload = random_bytes(seed, 32);
        let pd = self.push_blob(repo, &payload);
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": empty,
            "layers": [desc("application/vnd.example.payload", &pd, &payload)],
            "subject": { "mediaType": subject.0, "digest": subject.1, "size": subject.2 },
        });
        if let Some(t) = artifact_type {
            m["artifactType"] = t.into();
        }
        if !annotations.is_null() {
            m["annotations"] = annotations;
        }
        let bytes = serde_json::to_vec(&m).unwrap();
        let d = sha256(&bytes);
        let r = self.put_manifest(repo, &d, OCI_MANIFEST, &bytes);
        r.expect(201);
        assert_eq!(r.header("oci-subject"), Some(subject.1));
        (bytes, d)
    }
}

/// Digest of the empty JSON object `{}`, the image spec's empty descriptor.
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Append a query string to a URL that may already carry one
/// (§POST then PUT: "The `<location>` MAY contain critical query
/// parameters").
pub fn with_query(url: &str, query: &str) -> String {
    if url.contains('?') {
        format!("{url}&{query}")
    } else {
        format!("{url}?{query}")
    }
}

/// The target of a `Link: <url>; rel="next"` header.
pub fn next_link(r: &Reply) -> Option<String> {
    let l = r.header("link")?;
    assert!(l.contains("rel=\"next\""), "Link without rel=\"next\": {l}");
    let start = l.find('<').expect("Link <url>") + 1;
    let end = l.find('>').expect("Link <url>");
    Some(l[start..end].to_owned())
}
