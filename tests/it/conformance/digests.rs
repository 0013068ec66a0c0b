//! Digests: sha256 and sha512 (the image spec's registered algorithms)
//! wherever a digest is taken — blobs, uploads, manifests, mounts.

use super::*;

/// Image spec "Registered algorithms": sha256 and sha512. §Pulling blobs:
/// the `Docker-Content-Digest` value "MUST be a digest matching that of the
/// response body" — for a blob pushed under its sha512 digest, that digest.
#[test]
fn sha512_blob_single_post() {
    let r = Reg::start();
    let bytes = random_bytes(60, 4000);
    let d = sha512(&bytes);
    let resp = r.post_blob("repo", &d, &bytes);
    resp.expect(201);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    let got = r.get(resp.header("location").unwrap());
    got.expect(200);
    assert_eq!(got.body, bytes);
    assert_eq!(got.header("docker-content-digest"), Some(d.as_str()));
    let head = r.head(&format!("/v2/repo/blobs/{d}"));
    head.expect(200);
    assert_eq!(head.header("content-length"), Some("4000"));
    // The same bytes are not known under their sha256 digest in the repo.
    r.head(&format!("/v2/repo/blobs/{}", sha256(&bytes)))
        .expect(404);
}

/// §Pushing a blob in chunks with a sha512 closing digest: "The closing
/// `PUT` request MUST include the `<digest>` of the whole blob".
#[test]
fn sha512_blob_chunked() {
    let r = Reg::start();
    let bytes = random_bytes(61, 3000);
    let d = sha512(&bytes);
    let s = r.open_session("repo");
    let p = r.send(
        r.c.patch(r.location(&s))
            .header("content-range", "0-1999")
            .body(bytes[..2000].to_vec()),
    );
    p.expect(202);
    let put = r.send(
        r.c.put(with_query(&r.location(&p), &format!("digest={d}")))
            .header("content-range", "2000-2999")
            .body(bytes[2000..].to_vec()),
    );
    put.expect(201);
    assert_eq!(r.get(&format!("/v2/repo/blobs/{d}")).body, bytes);
}

/// `DIGEST_INVALID` ("provided digest did not match uploaded content") for
/// sha512 as for sha256, with nothing stored.
#[test]
fn sha512_digest_mismatch_is_400() {
    let r = Reg::start();
    let bytes = random_bytes(62, 100);
    let claimed = sha512(b"other");
    r.post_blob("repo", &claimed, &bytes)
        .expect_error(400, "DIGEST_INVALID");
    r.head(&format!("/v2/repo/blobs/{claimed}")).expect(404);
    let s = r.open_session("repo");
    r.send(
        r.c.put(with_query(&r.location(&s), &format!("digest={claimed}")))
            .body(bytes.clone()),
    )
    .expect_error(400, "DIGEST_INVALID");
    r.head(&format!("/v2/repo/blobs/{claimed}")).expect(404);
    r.head(&format!("/v2/repo/blobs/{}", sha512(&bytes)))
        .expect(404);
}

/// §Pushing Manifests by digest: "The Docker-Content-Digest header returns
/// the canonical digest of the uploaded blob, and MUST be equal to the
/// client provided digest." A manifest whose descriptors use sha512, pushed
/// under its own sha512 digest, is served under that digest.
#[test]
fn sha512_manifest_by_digest() {
    let r = Reg::start();
    let config = br#"{"architecture":"amd64","os":"linux","sha":512}"#;
    let cd = sha512(config);
    r.post_blob("repo", &cd, config).expect(201);
    let layer = random_bytes(63, 500);
    let ld = sha512(&layer);
    r.post_blob("repo", &ld, &layer).expect(201);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &cd, config),
        "layers": [desc(OCI_LAYER, &ld, &layer)],
    }))
    .unwrap();
    let d = sha512(&m);
    let resp = r.put_manifest("repo", &d, OCI_MANIFEST, &m);
    resp.expect(201);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    for method in [Method::GET, Method::HEAD] {
        let got = r.send(r.req(method.clone(), &format!("/v2/repo/manifests/{d}")));
        got.expect(200);
        assert_eq!(got.header("docker-content-digest"), Some(d.as_str()));
        assert_eq!(got.header("content-type"), Some(OCI_MANIFEST));
        if method == Method::GET {
            assert_eq!(got.body, m);
        }
    }
    // The sha512 digest can be tagged in the same request and deleted.
    let tagged = r.send(
        r.req(Method::PUT, &format!("/v2/repo/manifests/{d}?tag=sha512"))
            .header("content-type", OCI_MANIFEST)
            .body(m.clone()),
    );
    tagged.expect(201);
    assert_eq!(tagged.header("docker-content-digest"), Some(d.as_str()));
    let by_tag = r.get("/v2/repo/manifests/sha512");
    by_tag.expect(200);
    assert_eq!(by_tag.header("docker-content-digest"), Some(d.as_str()));
    r.delete(&format!("/v2/repo/manifests/{d}")).expect(202);
    r.get(&format!("/v2/repo/manifests/{d}"))
        .expect_error(404, "MANIFEST_UNKNOWN");
    r.get("/v2/repo/manifests/sha512")
        .expect_error(404, "MANIFEST_UNKNOWN");
}

/// A sha512 manifest digest in the URL must match the body too:
/// `DIGEST_INVALID`.
#[test]
fn sha512_manifest_digest_mismatch_is_400() {
    let r = Reg::start();
    let config = r.push_config("repo", 64);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    r.put_manifest("repo", &sha512(b"other"), OCI_MANIFEST, &m)
        .expect_error(400, "DIGEST_INVALID");
}

/// §Mounting a blob with a sha512 `<digest>`: 201 and `Location`.
#[test]
fn sha512_mount() {
    let r = Reg::start();
    let bytes = random_bytes(65, 800);
    let d = sha512(&bytes);
    r.post_blob("src", &d, &bytes).expect(201);
    let resp = r.send(
        r.req(
            Method::POST,
            &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"),
        )
        .body(Vec::new()),
    );
    resp.expect(201);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    assert_eq!(r.get(resp.header("location").unwrap()).body, bytes);
    let resp = r.send(
        r.req(Method::POST, &format!("/v2/dst2/blobs/uploads/?mount={d}"))
            .body(Vec::new()),
    );
    resp.expect(201);
}

/// Digests of algorithms berth cannot verify are refused (`DIGEST_INVALID`)
/// rather than stored unverified, on blob pushes and manifest pushes.
#[test]
fn unsupported_algorithm_is_400() {
    let r = Reg::start();
    let md5 = "md5:d41d8cd98f00b204e9800998ecf8427e";
    r.post_blob("repo", md5, b"")
        .expect_error(400, "DIGEST_INVALID");
    let blake = format!("blake3:{}", "a".repeat(64));
    r.post_blob("repo", &blake, b"x")
        .expect_error(400, "DIGEST_INVALID");
    r.get(&format!("/v2/repo/blobs/{md5}"))
        .expect_error(400, "DIGEST_INVALID");
}
