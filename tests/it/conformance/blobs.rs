//! §Pulling blobs, §Checking if content exists in the registry, range
//! requests, and §Deleting Blobs.

use super::*;

/// §Pulling blobs: "A GET request to an existing blob URL MUST provide the
/// expected blob, with a response code that MUST be `200 OK`. A successful
/// response SHOULD contain the digest of the uploaded blob in the header
/// `Docker-Content-Digest`. If present, the value of this header MUST be a
/// digest matching that of the response body."
#[test]
fn get_blob_returns_bytes_digest_and_length() {
    let r = Reg::start();
    let bytes = random_bytes(1, 3000);
    let d = r.push_blob("repo", &bytes);
    let resp = r.get(&format!("/v2/repo/blobs/{d}"));
    resp.expect(200);
    assert_eq!(resp.body, bytes);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    assert_eq!(sha256(&resp.body), d);
    assert_eq!(resp.header("content-length"), Some("3000"));
}

/// §Checking if content exists: "A HEAD request to an existing blob or
/// manifest URL MUST return `200 OK`. A successful response SHOULD contain
/// the digest of the uploaded blob in the header `Docker-Content-Digest`. A
/// successful response SHOULD contain the size in bytes of the uploaded
/// blob in the header `Content-Length`." (and HEAD has no body, RFC 9110).
#[test]
fn head_blob_returns_digest_and_length_without_body() {
    let r = Reg::start();
    let bytes = random_bytes(2, 1234);
    let d = r.push_blob("repo", &bytes);
    let resp = r.head(&format!("/v2/repo/blobs/{d}"));
    resp.expect(200);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    assert_eq!(resp.header("content-length"), Some("1234"));
    assert!(resp.body.is_empty());
}

/// §Pulling blobs: "If the blob is not found in the repository, the
/// response code MUST be `404 Not Found`." — with code `BLOB_UNKNOWN`
/// ("blob unknown to registry") for GET, and no body for HEAD; also in a
/// repository that does not exist.
#[test]
fn missing_blob_is_404_blob_unknown() {
    let r = Reg::start();
    r.push_blob("repo", b"something else");
    let d = sha256(b"never pushed");
    r.get(&format!("/v2/repo/blobs/{d}"))
        .expect_error(404, "BLOB_UNKNOWN");
    let head = r.head(&format!("/v2/repo/blobs/{d}"));
    head.expect(404);
    assert!(head.body.is_empty());
    r.get(&format!("/v2/no/such/repo/blobs/{d}"))
        .expect_error(404, "BLOB_UNKNOWN");
    r.head(&format!("/v2/no/such/repo/blobs/{d}")).expect(404);
}

/// §Pulling blobs: "If the blob is not found in the repository, the response
/// code MUST be `404 Not Found`." A blob another repository holds is not in
/// this one (berth design invariant 2).
#[test]
fn blob_of_another_repository_is_404() {
    let r = Reg::start();
    let d = r.push_blob("owner", b"private bytes");
    r.get(&format!("/v2/other/blobs/{d}"))
        .expect_error(404, "BLOB_UNKNOWN");
    r.head(&format!("/v2/other/blobs/{d}")).expect(404);
    // And the read did not link it.
    r.head(&format!("/v2/other/blobs/{d}")).expect(404);
}

/// "A registry SHOULD support the `Range` request header in accordance with
/// RFC 9110": `206 Partial Content` with `Content-Range` and the bytes of
/// the range, for first-last, open-ended, suffix and clamped ranges.
#[test]
fn range_requests_return_206_with_content_range() {
    let r = Reg::start();
    let bytes = random_bytes(3, 100);
    let d = r.push_blob("repo", &bytes);
    let path = format!("/v2/repo/blobs/{d}");
    for (range, start, end) in [
        ("bytes=0-0", 0usize, 0usize),
        ("bytes=10-19", 10, 19),
        ("bytes=90-", 90, 99),
        ("bytes=-5", 95, 99),
        ("bytes=50-1000", 50, 99),
        ("bytes=0-99", 0, 99),
    ] {
        let resp = r.send(r.req(Method::GET, &path).header("range", range));
        resp.expect(206);
        assert_eq!(resp.body, &bytes[start..=end], "{range}");
        assert_eq!(
            resp.header("content-range"),
            Some(format!("bytes {start}-{end}/100").as_str()),
            "{range}"
        );
        assert_eq!(
            resp.header("content-length"),
            Some((end - start + 1).to_string().as_str()),
            "{range}"
        );
    }
}

/// RFC 9110 §15.5.17, as the spec's `Range` support requires: a range that
/// starts at or past the end is `416 Range Not Satisfiable` with
/// `Content-Range: bytes */<size>`.
#[test]
fn unsatisfiable_range_is_416() {
    let r = Reg::start();
    let bytes = random_bytes(4, 100);
    let d = r.push_blob("repo", &bytes);
    let path = format!("/v2/repo/blobs/{d}");
    for range in ["bytes=100-", "bytes=100-200", "bytes=5000-10000"] {
        let resp = r.send(r.req(Method::GET, &path).header("range", range));
        resp.expect(416);
        assert_eq!(resp.header("content-range"), Some("bytes */100"), "{range}");
    }
}

/// §Deleting Blobs: "Upon success, the registry MUST respond with code
/// `202 Accepted`. If the blob is not found, a `404 Not Found` code MUST be
/// returned." Afterwards the blob is gone from the repository.
#[test]
fn delete_blob_202_then_404() {
    let r = Reg::start();
    let d = r.push_blob("repo", b"to be deleted");
    r.delete(&format!("/v2/repo/blobs/{d}")).expect(202);
    r.get(&format!("/v2/repo/blobs/{d}"))
        .expect_error(404, "BLOB_UNKNOWN");
    r.head(&format!("/v2/repo/blobs/{d}")).expect(404);
    r.delete(&format!("/v2/repo/blobs/{d}"))
        .expect_error(404, "BLOB_UNKNOWN");
    r.delete(&format!("/v2/nowhere/blobs/{d}"))
        .expect_error(404, "BLOB_UNKNOWN");
}

/// §Deleting Blobs names "the namespace of the repository" (a Repository
/// is "a scope for API calls on a registry"): a blob deleted from one
/// repository stays whole in every other repository that holds it (issue).
#[test]
fn delete_blob_unlinks_only_that_repository() {
    let r = Reg::start();
    let bytes = random_bytes(5, 4096);
    let d = r.push_blob("one", &bytes);
    r.push_blob("two", &bytes);
    r.delete(&format!("/v2/one/blobs/{d}")).expect(202);
    r.head(&format!("/v2/one/blobs/{d}")).expect(404);
    let resp = r.get(&format!("/v2/two/blobs/{d}"));
    resp.expect(200);
    assert_eq!(resp.body, bytes);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
}

/// A blob URL takes a digest: a malformed one is a bad request
/// (`DIGEST_INVALID`), never a lookup, for GET, HEAD and DELETE.
#[test]
fn malformed_blob_digest_is_400() {
    let r = Reg::start();
    for d in [
        "sha256:abc",
        "sha256:",
        "nodigest",
        "sha256:ZZZZ",
        &format!("sha256:{}", "A".repeat(64)),
    ] {
        r.get(&format!("/v2/repo/blobs/{d}"))
            .expect_error(400, "DIGEST_INVALID");
        r.head(&format!("/v2/repo/blobs/{d}")).expect(400);
        r.delete(&format!("/v2/repo/blobs/{d}"))
            .expect_error(400, "DIGEST_INVALID");
    }
}
