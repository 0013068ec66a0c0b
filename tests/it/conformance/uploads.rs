//! §Pushing blobs: monolithic (POST then PUT, single POST), chunked, and
//! streamed uploads; upload status and cancellation.

use super::*;

/// §POST then PUT: "Upon success, the response MUST have a code of `202
/// Accepted`, and MUST include the following header: `Location: <location>`.
/// The `<location>` MUST contain a UUID representing a unique session ID for
/// the upload to follow." Plus `Docker-Upload-UUID` and `Range` (issue;
/// Docker API: "Range: 0-0" for a new session).
#[test]
fn post_opens_a_session() {
    let r = Reg::start();
    let a = r.open_session("repo");
    let b = r.open_session("repo");
    for s in [&a, &b] {
        let id = s.header("docker-upload-uuid").expect("Docker-Upload-UUID");
        assert!(!id.is_empty());
        let loc = s.header("location").expect("Location");
        assert!(loc.contains(id), "Location {loc} lacks the session id {id}");
        assert!(loc.contains("/v2/repo/blobs/uploads/"), "{loc}");
        assert_eq!(s.header("range"), Some("0-0"));
    }
    assert_ne!(
        a.header("docker-upload-uuid"),
        b.header("docker-upload-uuid"),
        "session ids must be unique"
    );
}

/// §POST then PUT: "perform the upload proper by making a `PUT` request to
/// ... `<location>?digest=<digest>` ... Upon successful completion of the
/// request, the response MUST have code `201 Created` and MUST have the
/// following header: `Location: <blob-location>` With `<blob-location>`
/// being a pullable blob URL."
#[test]
fn post_then_put_creates_the_blob() {
    let r = Reg::start();
    let bytes = random_bytes(10, 5000);
    let d = sha256(&bytes);
    let s = r.open_session("repo");
    let put = r.send(
        r.c.put(with_query(&r.location(&s), &format!("digest={d}")))
            .header("content-type", "application/octet-stream")
            .body(bytes.clone()),
    );
    put.expect(201);
    assert_eq!(put.header("docker-content-digest"), Some(d.as_str()));
    let blob = r.get(put.header("location").expect("Location"));
    blob.expect(200);
    assert_eq!(blob.body, bytes);
}

/// §Single POST: "To push a blob monolithically by using a single POST
/// request, perform a `POST` request to ...
/// `/v2/<name>/blobs/uploads/?digest=<digest>` ... Successful completion of
/// the request MUST return a `201 Created` and MUST include the following
/// header: `Location: <blob-location>` Here, `<blob-location>` is a pullable
/// blob URL."
#[test]
fn single_post_with_digest_creates_the_blob() {
    let r = Reg::start();
    let bytes = random_bytes(11, 777);
    let d = sha256(&bytes);
    let resp = r.post_blob("repo", &d, &bytes);
    resp.expect(201);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    let blob = r.get(resp.header("location").expect("Location"));
    blob.expect(200);
    assert_eq!(blob.body, bytes);
}

/// §Pushing a blob in chunks: "Each successful chunk upload MUST have a `202
/// Accepted` response code, and MUST have the following headers: `Location:
/// <location>` `Range: 0-<end-of-range>` ... The final chunk MAY be
/// uploaded using a `PATCH` request ... the session MUST be closed with a
/// `PUT` request." (here: every chunk by PATCH, PUT without a body)
#[test]
fn chunked_upload_then_put_without_body() {
    let r = Reg::start();
    let bytes = random_bytes(12, 3000);
    let d = sha256(&bytes);
    let s = r.open_session("repo");
    let mut loc = r.location(&s);
    let id = s.header("docker-upload-uuid").unwrap().to_owned();
    for (start, end) in [(0usize, 999usize), (1000, 1999), (2000, 2999)] {
        let p = r.send(
            r.c.patch(&loc)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{start}-{end}"))
                .body(bytes[start..=end].to_vec()),
        );
        p.expect(202);
        assert_eq!(p.header("range"), Some(format!("0-{end}").as_str()));
        assert_eq!(p.header("docker-upload-uuid"), Some(id.as_str()));
        // "Each consecutive chunk upload SHOULD use the `<location>`
        // provided in the response to the previous chunk upload."
        loc = r.location(&p);
    }
    let put = r.send(
        r.c.put(with_query(&loc, &format!("digest={d}")))
            .body(Vec::new()),
    );
    put.expect(201);
    let blob = r.get(put.header("location").expect("Location"));
    blob.expect(200);
    assert_eq!(blob.body, bytes);
}

/// §Pushing a blob in chunks: "The final chunk MAY be uploaded using a
/// `PATCH` request or it MAY be uploaded in the closing `PUT` request." The
/// closing PUT carries `Content-Range` and `Content-Length` of the chunk,
/// and "MUST include the `<digest>` of the whole blob (not the final chunk)".
#[test]
fn chunked_upload_with_final_chunk_in_put() {
    let r = Reg::start();
    let bytes = random_bytes(13, 2500);
    let d = sha256(&bytes);
    let s = r.open_session("repo");
    let p = r.send(
        r.c.patch(r.location(&s))
            .header("content-type", "application/octet-stream")
            .header("content-range", "0-1499")
            .body(bytes[..1500].to_vec()),
    );
    p.expect(202);
    let put = r.send(
        r.c.put(with_query(&r.location(&p), &format!("digest={d}")))
            .header("content-type", "application/octet-stream")
            .header("content-range", "1500-2499")
            .body(bytes[1500..].to_vec()),
    );
    put.expect(201);
    assert_eq!(put.header("docker-content-digest"), Some(d.as_str()));
    let blob = r.get(&format!("/v2/repo/blobs/{d}"));
    blob.expect(200);
    assert_eq!(blob.body, bytes);
}

/// §Pushing a blob in chunks: "Chunks MUST be uploaded in order, with the
/// first byte of a chunk being the last chunk's `<end-of-range>` plus one.
/// If a chunk is uploaded out of order, the registry MUST respond with a
/// `416 Requested Range Not Satisfiable` code." The 416 carries the
/// session's current `Range` (issue), the rejected chunk changes nothing,
/// and the upload then resumes from there.
#[test]
fn out_of_order_chunk_is_416_with_current_range() {
    let r = Reg::start();
    let bytes = random_bytes(14, 300);
    let d = sha256(&bytes);
    let s = r.open_session("repo");
    let loc = r.location(&s);
    // "The first chunk's range MUST begin with `0`."
    let first = r.send(
        r.c.patch(&loc)
            .header("content-range", "10-109")
            .body(bytes[10..110].to_vec()),
    );
    first.expect(416);
    let p = r.send(
        r.c.patch(&loc)
            .header("content-range", "0-99")
            .body(bytes[..100].to_vec()),
    );
    p.expect(202);
    assert_eq!(p.header("range"), Some("0-99"));
    for (start, end) in [(150usize, 249usize), (50, 149), (0, 99)] {
        let bad = r.send(
            r.c.patch(&loc)
                .header("content-range", format!("{start}-{end}"))
                .body(bytes[start..=end].to_vec()),
        );
        bad.expect(416);
        assert_eq!(bad.header("range"), Some("0-99"), "{start}-{end}");
    }
    // "A GET request may be used to retrieve the current valid offset".
    let status = r.get(&loc);
    status.expect(204);
    assert_eq!(status.header("range"), Some("0-99"));
    let ok = r.send(
        r.c.patch(&loc)
            .header("content-range", "100-299")
            .body(bytes[100..].to_vec()),
    );
    ok.expect(202);
    assert_eq!(ok.header("range"), Some("0-299"));
    r.send(r.c.put(with_query(&loc, &format!("digest={d}"))))
        .expect(201);
    assert_eq!(r.get(&format!("/v2/repo/blobs/{d}")).body, bytes);
}

/// Streamed upload (conformance "Blob Upload Streamed"; Docker API "Stream
/// upload"): PATCH bodies without `Content-Range` append to the session,
/// here once with a length and once chunked (no `Content-Length`), then PUT
/// with the digest closes it.
#[test]
fn streamed_patch_without_content_range() {
    let r = Reg::start();
    let bytes = random_bytes(15, 100_000);
    let d = sha256(&bytes);
    let s = r.open_session("repo");
    let p1 = r.send(
        r.c.patch(r.location(&s))
            .header("content-type", "application/octet-stream")
            .body(bytes[..40_000].to_vec()),
    );
    p1.expect(202);
    assert_eq!(p1.header("range"), Some("0-39999"));
    let rest = std::io::Cursor::new(bytes[40_000..].to_vec());
    let p2 = r.send(
        r.c.patch(r.location(&p1))
            .header("content-type", "application/octet-stream")
            .body(reqwest::blocking::Body::new(rest)),
    );
    p2.expect(202);
    assert_eq!(p2.header("range"), Some("0-99999"));
    let put = r.send(r.c.put(with_query(&r.location(&p2), &format!("digest={d}"))));
    put.expect(201);
    assert_eq!(r.get(&format!("/v2/repo/blobs/{d}")).body, bytes);
}

/// §Pushing a blob in chunks: "To get the current status after a 416 error,
/// issue a `GET` request to a URL `<location>`. ... The response to an
/// active upload `<location>` MUST be a `204 No Content` response code, and
/// MUST have the following headers: `Location: <location>` `Range:
/// 0-<end-of-range>`".
#[test]
fn upload_status_is_204_with_range_and_location() {
    let r = Reg::start();
    let s = r.open_session("repo");
    let loc = r.location(&s);
    let empty = r.get(&loc);
    empty.expect(204);
    assert_eq!(empty.header("range"), Some("0-0"));
    r.send(
        r.c.patch(&loc)
            .header("content-range", "0-41")
            .body(vec![7u8; 42]),
    )
    .expect(202);
    let st = r.get(&loc);
    st.expect(204);
    assert_eq!(st.header("range"), Some("0-41"));
    assert_eq!(r.location(&st), loc);
    assert_eq!(
        st.header("docker-upload-uuid"),
        s.header("docker-upload-uuid")
    );
    assert!(st.body.is_empty());
}

/// Docker API "Cancel Blob Upload" (`DELETE /v2/<name>/blobs/uploads/<uuid>`:
/// "Cancel outstanding upload processes, releasing associated resources",
/// `204 No Content`); afterwards the session is unknown: `404` with
/// `BLOB_UPLOAD_UNKNOWN` ("blob upload unknown to registry") on every
/// method, and nothing was stored.
#[test]
fn cancel_upload_then_session_is_unknown() {
    let r = Reg::start();
    let bytes = random_bytes(16, 64);
    let d = sha256(&bytes);
    let s = r.open_session("repo");
    let loc = r.location(&s);
    r.send(
        r.c.patch(&loc)
            .header("content-range", "0-63")
            .body(bytes.clone()),
    )
    .expect(202);
    r.delete(&loc).expect(204);
    r.get(&loc).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    r.send(
        r.c.patch(&loc)
            .header("content-range", "64-65")
            .body(vec![1, 2]),
    )
    .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    r.send(r.c.put(with_query(&loc, &format!("digest={d}"))))
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    r.delete(&loc).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    r.head(&format!("/v2/repo/blobs/{d}")).expect(404);
}

/// A closed session is over: once the PUT answered 201 the `<location>` no
/// longer names an active upload (§Pushing a blob in chunks: the 204 status
/// is for "an active upload").
#[test]
fn completed_session_is_unknown() {
    let r = Reg::start();
    let s = r.open_session("repo");
    let loc = r.location(&s);
    let d = sha256(b"done");
    r.send(
        r.c.put(with_query(&loc, &format!("digest={d}")))
            .body(b"done".to_vec()),
    )
    .expect(201);
    r.get(&loc).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    r.send(r.c.patch(&loc).body(b"more".to_vec()))
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

/// §Single POST: "the `<digest>` MUST match the blob's digest"; code
/// `DIGEST_INVALID` is "provided digest did not match uploaded content"
/// (end-4b failure: 400). Nothing is stored under either digest.
#[test]
fn single_post_digest_mismatch_is_400_and_stores_nothing() {
    let r = Reg::start();
    let bytes = random_bytes(17, 500);
    let claimed = sha256(b"something else");
    r.post_blob("repo", &claimed, &bytes)
        .expect_error(400, "DIGEST_INVALID");
    r.head(&format!("/v2/repo/blobs/{claimed}")).expect(404);
    r.head(&format!("/v2/repo/blobs/{}", sha256(&bytes)))
        .expect(404);
}

/// §Pushing a blob in chunks: "The closing `PUT` request MUST include the
/// `<digest>` of the whole blob"; a digest that does not match is `400`
/// `DIGEST_INVALID` (end-6 failure), and nothing is stored.
#[test]
fn closing_put_digest_mismatch_is_400_and_stores_nothing() {
    let r = Reg::start();
    let bytes = random_bytes(18, 500);
    let claimed = sha256(b"not these bytes");
    let s = r.open_session("repo");
    let loc = r.location(&s);
    r.send(
        r.c.patch(&loc)
            .header("content-range", "0-499")
            .body(bytes.clone()),
    )
    .expect(202);
    r.send(r.c.put(with_query(&loc, &format!("digest={claimed}"))))
        .expect_error(400, "DIGEST_INVALID");
    r.head(&format!("/v2/repo/blobs/{claimed}")).expect(404);
    r.head(&format!("/v2/repo/blobs/{}", sha256(&bytes)))
        .expect(404);
}

/// §Pushing a blob in chunks: "The closing `PUT` request MUST include the
/// `<digest>` of the whole blob ... as a query parameter." Without it, or
/// with a malformed one, the request is invalid (400).
#[test]
fn closing_put_without_valid_digest_is_400() {
    let r = Reg::start();
    let s = r.open_session("repo");
    let loc = r.location(&s);
    r.send(r.c.put(&loc).body(b"x".to_vec()))
        .expect_error(400, "DIGEST_INVALID");
    r.send(
        r.c.put(with_query(&loc, "digest=sha256:nothex"))
            .body(b"x".to_vec()),
    )
    .expect_error(400, "DIGEST_INVALID");
}

/// end-5/end-6/end-13 failure `404`: an upload id the registry never issued
/// is `BLOB_UPLOAD_UNKNOWN` ("blob upload unknown to registry") on GET,
/// PATCH, PUT and DELETE.
#[test]
fn unknown_upload_id_is_404_blob_upload_unknown() {
    let r = Reg::start();
    r.open_session("repo");
    let d = sha256(b"x");
    for id in ["0123456789abcdef0123456789abcdef", "not-a-session", "x"] {
        let path = format!("/v2/repo/blobs/uploads/{id}");
        r.get(&path).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        r.send(r.req(Method::PATCH, &path).body(b"x".to_vec()))
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        r.send(
            r.req(Method::PUT, &format!("{path}?digest={d}"))
                .body(b"x".to_vec()),
        )
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        r.delete(&path).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    }
}

/// Upload sessions belong to their repository (§Definitions: a Repository
/// is "a scope for API calls"): the id of a session of `a` used under `b` is
/// `404 BLOB_UPLOAD_UNKNOWN` for every method, and leaves the session of
/// `a` untouched.
#[test]
fn upload_id_of_another_repository_is_404() {
    let r = Reg::start();
    let s = r.open_session("a");
    let id = s.header("docker-upload-uuid").unwrap().to_owned();
    let loc = r.location(&s);
    r.send(
        r.c.patch(&loc)
            .header("content-range", "0-2")
            .body(b"abc".to_vec()),
    )
    .expect(202);
    let other = format!("/v2/b/blobs/uploads/{id}");
    let d = sha256(b"abcdef");
    r.get(&other).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    r.send(
        r.req(Method::PATCH, &other)
            .header("content-range", "3-5")
            .body(b"def".to_vec()),
    )
    .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    r.send(
        r.req(Method::PUT, &format!("{other}?digest={d}"))
            .body(b"def".to_vec()),
    )
    .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    r.delete(&other).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    r.head(&format!("/v2/b/blobs/{d}")).expect(404);
    let st = r.get(&loc);
    st.expect(204);
    assert_eq!(st.header("range"), Some("0-2"));
    r.send(
        r.c.put(with_query(&loc, &format!("digest={d}")))
            .body(b"def".to_vec()),
    )
    .expect(201);
    r.head(&format!("/v2/a/blobs/{d}")).expect(200);
    r.head(&format!("/v2/b/blobs/{d}")).expect(404);
}

/// §Layer Upload De-duplication: "When process B attempts to upload the
/// layer, the registry indicates that its not necessary because the layer
/// is already known" — pushing bytes that are already stored succeeds
/// again (201), in the same and in another repository.
#[test]
fn pushing_a_known_blob_again_succeeds() {
    let r = Reg::start();
    let bytes = random_bytes(19, 2048);
    let d = r.push_blob("a", &bytes);
    r.post_blob("a", &d, &bytes).expect(201);
    r.post_blob("b", &d, &bytes).expect(201);
    assert_eq!(r.get(&format!("/v2/b/blobs/{d}")).body, bytes);
}

/// A blob may be empty: the digest of zero bytes pushes (201) and pulls
/// with `Content-Length: 0` (§Pulling blobs: "MUST provide the expected
/// blob").
#[test]
fn empty_blob_round_trips() {
    let r = Reg::start();
    let d = r.push_blob("repo", b"");
    let resp = r.get(&format!("/v2/repo/blobs/{d}"));
    resp.expect(200);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("content-length"), Some("0"));
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
}

/// §Pushing a blob in chunks: `Content-Range` names the chunk's first and
/// last byte, inclusive. A range that no body can fill, here one spanning
/// all 2^64 offsets, is `416` with the session's current `Range` (its
/// length used to overflow: a panic in a debug build), a range whose ends
/// are not 64-bit numbers is malformed (400), and the session is intact.
#[test]
fn content_range_spanning_every_offset_is_416() {
    let r = Reg::start();
    let s = r.open_session("repo");
    let loc = r.location(&s);
    for range in ["0-18446744073709551615", "bytes 0-18446744073709551615/*"] {
        let p = r.send(
            r.c.patch(&loc)
                .header("content-range", range)
                .body(b"x".to_vec()),
        );
        p.expect_error(416, "BLOB_UPLOAD_INVALID");
        assert_eq!(p.header("range"), Some("0-0"), "{range}");
    }
    r.send(
        r.c.patch(&loc)
            .header("content-range", "0-18446744073709551616")
            .body(b"x".to_vec()),
    )
    .expect_error(400, "BLOB_UPLOAD_INVALID");
    r.get("/v2/").expect(200);
    let bytes = random_bytes(21, 3);
    let d = sha256(&bytes);
    r.send(
        r.c.patch(&loc)
            .header("content-range", "0-2")
            .body(bytes.clone()),
    )
    .expect(202);
    r.send(r.c.put(with_query(&loc, &format!("digest={d}"))))
        .expect(201);
    assert_eq!(r.get(&format!("/v2/repo/blobs/{d}")).body, bytes);
}

/// §Pushing a blob in chunks: "Chunks MUST be uploaded in order ... If a
/// chunk is uploaded out of order, the registry MUST respond with a `416`",
/// also for a last chunk in the closing `PUT`. Such a PUT changes nothing
/// (it used to append the chunk wherever the upload ended, fail the digest
/// and end the session), and the upload can still be finished.
#[test]
fn closing_put_with_out_of_order_chunk_is_416_and_keeps_the_session() {
    let r = Reg::start();
    let bytes = random_bytes(20, 300);
    let d = sha256(&bytes);
    let s = r.open_session("repo");
    let loc = r.location(&s);
    r.send(
        r.c.patch(&loc)
            .header("content-range", "0-99")
            .body(bytes[..100].to_vec()),
    )
    .expect(202);
    for (start, end) in [(50usize, 149usize), (150, 299), (0, 299)] {
        let put = r.send(
            r.c.put(with_query(&loc, &format!("digest={d}")))
                .header("content-range", format!("{start}-{end}"))
                .body(bytes[start..=end].to_vec()),
        );
        put.expect_error(416, "BLOB_UPLOAD_INVALID");
        assert_eq!(put.header("range"), Some("0-99"), "{start}-{end}");
    }
    let status = r.get(&loc);
    status.expect(204);
    assert_eq!(status.header("range"), Some("0-99"));
    r.head(&format!("/v2/repo/blobs/{d}")).expect(404);
    r.send(
        r.c.put(with_query(&loc, &format!("digest={d}")))
            .header("content-range", "100-299")
            .body(bytes[100..].to_vec()),
    )
    .expect(201);
    assert_eq!(r.get(&format!("/v2/repo/blobs/{d}")).body, bytes);
}
