//! §Pulling manifests, §Pushing Manifests, §Deleting tags and §Deleting
//! Manifests.

use super::*;

/// §Pushing Manifests: "Upon a successful upload, the registry MUST return
/// response code `201 Created`, and MUST have the following header:
/// `Location: <location>` The `<location>` is a pullable manifest URL."
/// The `Docker-Content-Digest` is the digest of the bytes pushed.
#[test]
fn put_by_tag_is_201_with_location() {
    let r = Reg::start();
    let config = r.push_config("repo", 1);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    let resp = r.put_manifest("repo", "v1", OCI_MANIFEST, &m);
    resp.expect(201);
    let d = sha256(&m);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    let pulled = r.get(resp.header("location").expect("Location"));
    pulled.expect(200);
    assert_eq!(pulled.body, m);
}

/// §Pulling manifests: "A GET request to an existing manifest URL MUST
/// provide the expected manifest, with a response code that MUST be `200
/// OK`. A successful response SHOULD contain the digest of the uploaded
/// blob in the header `Docker-Content-Digest`." "The `Content-Type` header
/// SHOULD match what the client pushed as the manifest's `Content-Type`."
/// "The registry MUST store the manifest in the exact byte representation
/// provided by the client." By tag and by digest.
#[test]
fn get_by_tag_and_digest() {
    let r = Reg::start();
    let (m, d) = r.push_image("repo", "latest", 2);
    for reference in ["latest", d.as_str()] {
        let resp = r.send(
            r.req(Method::GET, &format!("/v2/repo/manifests/{reference}"))
                .header("accept", OCI_MANIFEST),
        );
        resp.expect(200);
        assert_eq!(resp.body, m, "{reference}");
        assert_eq!(resp.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
        assert_eq!(
            resp.header("content-length"),
            Some(m.len().to_string().as_str())
        );
    }
}

/// §Checking if content exists: "A HEAD request to an existing blob or
/// manifest URL MUST return `200 OK`. A successful response SHOULD contain
/// the digest of the uploaded blob in the header `Docker-Content-Digest`.
/// A successful response SHOULD contain the size in bytes of the uploaded
/// blob in the header `Content-Length`."
#[test]
fn head_by_tag_and_digest() {
    let r = Reg::start();
    let (m, d) = r.push_image("repo", "latest", 3);
    for reference in ["latest", d.as_str()] {
        let resp = r.head(&format!("/v2/repo/manifests/{reference}"));
        resp.expect(200);
        assert!(resp.body.is_empty());
        assert_eq!(resp.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
        assert_eq!(
            resp.header("content-length"),
            Some(m.len().to_string().as_str())
        );
    }
}

/// §Pulling manifests: "If the manifest is not found in the repository, the
/// response code MUST be `404 Not Found`." (`MANIFEST_UNKNOWN`: "manifest
/// unknown to registry"); §Pushing Manifests: "An attempt to pull a
/// nonexistent repository MUST return response code `404 Not Found`".
#[test]
fn missing_manifest_is_404_manifest_unknown() {
    let r = Reg::start();
    r.push_image("repo", "latest", 4);
    let d = sha256(b"no such manifest");
    for path in [
        "/v2/repo/manifests/nope".to_string(),
        format!("/v2/repo/manifests/{d}"),
        "/v2/no/repo/manifests/latest".to_string(),
        format!("/v2/no/repo/manifests/{d}"),
    ] {
        r.get(&path).expect_error(404, "MANIFEST_UNKNOWN");
        let head = r.head(&path);
        head.expect(404);
        assert!(head.body.is_empty());
    }
}

/// §Pushing Manifests: "the `<reference>` MUST be either a) a digest or b)
/// a tag"; pushed by digest, "The Docker-Content-Digest header returns the
/// canonical digest of the uploaded blob, and MUST be equal to the client
/// provided digest." The manifest is then pullable by that digest
/// (conformance "Test pull of manifest pushed by digest") and untagged.
#[test]
fn put_by_digest() {
    let r = Reg::start();
    let config = r.push_config("repo", 5);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    let d = sha256(&m);
    let resp = r.put_manifest("repo", &d, OCI_MANIFEST, &m);
    resp.expect(201);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    assert!(resp
        .header("location")
        .unwrap()
        .ends_with(&format!("/v2/repo/manifests/{d}")));
    let got = r.get(&format!("/v2/repo/manifests/{d}"));
    got.expect(200);
    assert_eq!(got.body, m);
    let tags = r.get("/v2/repo/tags/list");
    tags.expect(200);
    assert_eq!(tags.json()["tags"], serde_json::json!([]));
}

/// Spec (main, after v1.1, PR #600): "When pushing a manifest by digest, the
/// registry MAY support the pushing of tags specified by addition of `tag`
/// query parameters. If a registry supports this, it MUST ... include an
/// `OCI-Tag` response header for each accepted tag". berth supports it
/// (issue: "digest PUT with ?tag=").
#[test]
fn put_by_digest_with_tag_parameters() {
    let r = Reg::start();
    let config = r.push_config("repo", 6);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    let d = sha256(&m);
    let resp = r.send(
        r.req(
            Method::PUT,
            &format!("/v2/repo/manifests/{d}?tag=v1&tag=latest"),
        )
        .header("content-type", OCI_MANIFEST)
        .body(m.clone()),
    );
    resp.expect(201);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    let mut announced: Vec<String> = resp
        .header_all("oci-tag")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    announced.sort();
    assert_eq!(announced, ["latest", "v1"]);
    for tag in ["v1", "latest"] {
        let got = r.get(&format!("/v2/repo/manifests/{tag}"));
        got.expect(200);
        assert_eq!(got.body, m);
        assert_eq!(got.header("docker-content-digest"), Some(d.as_str()));
    }
    // An invalid tag rejects the whole push.
    let bad = r.send(
        r.req(
            Method::PUT,
            &format!("/v2/repo/manifests/{d}?tag=ok&tag=-bad"),
        )
        .header("content-type", OCI_MANIFEST)
        .body(m.clone()),
    );
    bad.expect_client_error(400);
    r.get("/v2/repo/manifests/ok").expect(404);
}

/// A tag is "a custom, human-readable pointer to a manifest" (§Definitions):
/// pushing another manifest under the same tag moves it; the first stays
/// pullable by digest. Pushing identical bytes again is accepted (201).
#[test]
fn pushing_a_tag_again_moves_it() {
    let r = Reg::start();
    let (m1, d1) = r.push_image("repo", "latest", 7);
    r.put_manifest("repo", "latest", OCI_MANIFEST, &m1)
        .expect(201);
    let (m2, d2) = r.push_image("repo", "latest", 8);
    let got = r.get("/v2/repo/manifests/latest");
    assert_eq!(got.body, m2);
    assert_eq!(got.header("docker-content-digest"), Some(d2.as_str()));
    assert_eq!(r.get(&format!("/v2/repo/manifests/{d1}")).body, m1);
}

/// §Pushing Manifests: "The registry MUST store the manifest in the exact
/// byte representation provided by the client." Odd whitespace, key order,
/// unicode escapes and fields unknown to berth all come back byte for byte,
/// and the digest is that of those bytes.
#[test]
fn manifest_bytes_are_stored_exactly() {
    let r = Reg::start();
    let config = r.push_config("repo", 9);
    let raw = format!(
        "{{\n\t\"layers\" : [ ],\r\n  \"x-unknown\": {{\"nested\": [1, 2.50, null, \"\\u00e9\"]}},\n  \
         \"config\":{config},  \"mediaType\": \"{OCI_MANIFEST}\",\n  \"schemaVersion\" : 2,\n  \
         \"annotations\": {{\"org.example.note\": \"caf\u{e9} \u{1f600}\"}}\n}}\n\n"
    );
    let d = sha256(raw.as_bytes());
    let resp = r.put_manifest("repo", "exact", OCI_MANIFEST, raw.as_bytes());
    resp.expect(201);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    for reference in ["exact", d.as_str()] {
        let got = r.get(&format!("/v2/repo/manifests/{reference}"));
        got.expect(200);
        assert_eq!(got.body, raw.as_bytes());
        assert_eq!(got.header("docker-content-digest"), Some(d.as_str()));
    }
}

/// §Pulling manifests: "The registry SHOULD NOT include parameters on the
/// `Content-Type` header." and §Pushing Manifests: "The registry SHOULD
/// ignore parameters on the `Content-Type` header."
#[test]
fn content_type_parameters_are_ignored() {
    let r = Reg::start();
    let config = r.push_config("repo", 10);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    r.put_manifest("repo", "p", &format!("{OCI_MANIFEST}; charset=utf-8"), &m)
        .expect(201);
    let got = r.get("/v2/repo/manifests/p");
    got.expect(200);
    assert_eq!(got.header("content-type"), Some(OCI_MANIFEST));
}

/// §Pushing Manifests: "If a manifest includes a `mediaType` field, clients
/// MUST set the `Content-Type` header to the value specified by the
/// `mediaType` field." A push that breaks this is an invalid manifest (400
/// `MANIFEST_INVALID`), and nothing is stored.
#[test]
fn content_type_contradicting_media_type_is_400() {
    let r = Reg::start();
    let config = r.push_config("repo", 11);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    r.put_manifest("repo", "t", OCI_INDEX, &m)
        .expect_error(400, "MANIFEST_INVALID");
    r.get("/v2/repo/manifests/t").expect(404);
}

/// `MANIFEST_INVALID` is "manifest invalid" (end-7 failure; our issue:
/// "malformed JSON -> 400 MANIFEST_INVALID"): bodies that are not JSON, not
/// an object, not schemaVersion 2 (image spec), or lack required fields are
/// refused, and nothing is stored.
#[test]
fn malformed_manifests_are_400_manifest_invalid() {
    let r = Reg::start();
    let config = r.push_config("repo", 12);
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 1, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
        }))
        .unwrap(),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
        }))
        .unwrap(),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
            "layers": [{ "mediaType": OCI_LAYER, "digest": "sha256:nothex", "size": 1 }],
        }))
        .unwrap(),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": {},
        }))
        .unwrap(),
    ];
    for body in bodies {
        r.put_manifest("repo", "bad", OCI_MANIFEST, &body)
            .expect_error(400, "MANIFEST_INVALID");
    }
    r.get("/v2/repo/manifests/bad").expect(404);
}

/// §Push: "A registry MAY reject a manifest uploaded to the manifest
/// endpoint with descriptors in other fields that reference a manifest or
/// blob that does not exist in the registry. When a manifest is rejected for
/// this reason, it MUST result in one or more `MANIFEST_BLOB_UNKNOWN`
/// errors." berth rejects a missing config or layer, including one that
/// only another repository holds (design invariant 2).
#[test]
fn missing_referenced_blob_is_400_manifest_blob_unknown() {
    let r = Reg::start();
    let config = r.push_config("repo", 13);
    let layer = random_bytes(13, 100);
    let ld = sha256(&layer);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
        "layers": [desc(OCI_LAYER, &ld, &layer)],
    }))
    .unwrap();
    r.put_manifest("repo", "t", OCI_MANIFEST, &m)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    r.push_blob("elsewhere", &layer);
    r.put_manifest("repo", "t", OCI_MANIFEST, &m)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    let missing_config = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &sha256(b"{\"a\":1}"), b"{\"a\":1}"), "layers": [],
    }))
    .unwrap();
    r.put_manifest("repo", "t", OCI_MANIFEST, &missing_config)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    r.get("/v2/repo/manifests/t").expect(404);
    r.push_blob("repo", &layer);
    r.put_manifest("repo", "t", OCI_MANIFEST, &m).expect(201);
}

/// §Push, as above, for an index: "descriptors ... that reference a
/// manifest ... that does not exist" -> `MANIFEST_BLOB_UNKNOWN` (code-5:
/// "manifest references a manifest or blob unknown to registry").
#[test]
fn index_with_missing_child_is_400_manifest_blob_unknown() {
    let r = Reg::start();
    let (m, d) = r.push_image("repo", "child", 14);
    let ghost = sha256(b"not a pushed manifest");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [desc(OCI_MANIFEST, &d, &m), desc(OCI_MANIFEST, &ghost, b"xx")],
    }))
    .unwrap();
    r.put_manifest("repo", "idx", OCI_INDEX, &index)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    r.get("/v2/repo/manifests/idx").expect(404);
}

/// §Pushing Manifests by digest: the digest in the URL is the digest of the
/// body; one that does not match is `DIGEST_INVALID` ("provided digest did
/// not match uploaded content"), and nothing is stored.
#[test]
fn digest_reference_not_matching_body_is_400_digest_invalid() {
    let r = Reg::start();
    let config = r.push_config("repo", 15);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    let wrong = sha256(b"other bytes");
    r.put_manifest("repo", &wrong, OCI_MANIFEST, &m)
        .expect_error(400, "DIGEST_INVALID");
    r.get(&format!("/v2/repo/manifests/{wrong}")).expect(404);
    r.get(&format!("/v2/repo/manifests/{}", sha256(&m)))
        .expect(404);
    // A malformed digest reference is refused too (conformance "Error
    // codes": PUT to `sha256:totallywrong` -> 400).
    r.put_manifest("repo", "sha256:totallywrong", OCI_MANIFEST, &m)
        .expect_error(400, "DIGEST_INVALID");
}

/// §Pushing Manifests: "Client and registry implementations SHOULD expect
/// to be able to support manifest pushes of at least 4 megabytes." A
/// manifest of exactly 4 MiB is accepted and served whole.
#[test]
fn four_mib_manifest_is_accepted() {
    let r = Reg::start();
    let m = padded_manifest(&r, 4 << 20);
    let resp = r.put_manifest("repo", "big", OCI_MANIFEST, &m);
    resp.expect(201);
    let got = r.get("/v2/repo/manifests/big");
    got.expect(200);
    assert_eq!(got.body.len(), 4 << 20);
    assert_eq!(sha256(&got.body), sha256(&m));
}

/// §Pushing Manifests: "A registry SHOULD enforce some limit on the maximum
/// manifest size that it can accept. A registry that enforces this limit
/// SHOULD respond to a request to push a manifest over this limit with a
/// response code `413 Payload Too Large`." berth's limit is 4 MiB.
#[test]
fn manifest_over_limit_is_413() {
    let r = Reg::start();
    let m = padded_manifest(&r, (4 << 20) + 1);
    let resp = r.put_manifest("repo", "big", OCI_MANIFEST, &m);
    resp.expect_client_error(413);
    r.get("/v2/repo/manifests/big").expect(404);
    // Streamed without a Content-Length, the limit holds as well.
    let resp = r.send(
        r.req(Method::PUT, "/v2/repo/manifests/big")
            .header("content-type", OCI_MANIFEST)
            .body(reqwest::blocking::Body::new(std::io::Cursor::new(m))),
    );
    resp.expect_client_error(413);
    r.get("/v2/repo/manifests/big").expect(404);
}

/// A valid image manifest of exactly `size` bytes (an annotation pads it).
fn padded_manifest(r: &Reg, size: usize) -> Vec<u8> {
    let config = r.push_config("repo", 16);
    let make = |pad: usize| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
            "annotations": { "pad": "x".repeat(pad) },
        }))
        .unwrap()
    };
    let base = make(0).len();
    let m = make(size - base);
    assert_eq!(m.len(), size);
    m
}

/// §Pushing Manifests with Subject: "When processing a request for an image
/// manifest with the `subject` field, a registry implementation that
/// supports the referrers API MUST respond with the response header
/// `OCI-Subject: <subject digest>`". A manifest without `subject` gets no
/// such header.
#[test]
fn subject_is_acknowledged_with_oci_subject() {
    let r = Reg::start();
    let (m, d) = r.push_image("repo", "v1", 17);
    let plain = r.put_manifest("repo", "v1", OCI_MANIFEST, &m);
    plain.expect(201);
    assert_eq!(plain.header("oci-subject"), None);
    // push_referrer asserts OCI-Subject equals the subject digest.
    r.push_referrer(
        "repo",
        (OCI_MANIFEST, &d, m.len()),
        Some("application/vnd.example.sig"),
        serde_json::Value::Null,
        17,
    );
}

/// §Push: "A registry MUST initially accept an otherwise valid manifest with
/// a `subject` field that references a manifest that does not exist in the
/// repository, allowing clients to push a manifest and referrers to that
/// manifest in either order."
#[test]
fn subject_need_not_exist() {
    let r = Reg::start();
    let ghost = sha256(b"a manifest pushed later");
    let (_, d) = r.push_referrer(
        "repo",
        (OCI_MANIFEST, &ghost, 1234),
        Some("application/vnd.example.sbom"),
        serde_json::Value::Null,
        18,
    );
    r.get(&format!("/v2/repo/manifests/{d}")).expect(200);
}

/// §Deleting Manifests: "Upon success, the registry MUST respond with a `202
/// Accepted` code." "Once deleted, a `GET` to
/// `/v2/<name>/manifests/<digest>` and any tag pointing to that digest will
/// return a 404."
#[test]
fn delete_by_digest_removes_manifest_and_all_its_tags() {
    let r = Reg::start();
    let (m, d) = r.push_image("repo", "a", 19);
    r.put_manifest("repo", "b", OCI_MANIFEST, &m).expect(201);
    let (_, other) = r.push_image("repo", "keep", 20);
    r.delete(&format!("/v2/repo/manifests/{d}")).expect(202);
    for reference in ["a", "b", d.as_str()] {
        r.get(&format!("/v2/repo/manifests/{reference}"))
            .expect_error(404, "MANIFEST_UNKNOWN");
        r.head(&format!("/v2/repo/manifests/{reference}"))
            .expect(404);
    }
    let tags = r.get("/v2/repo/tags/list");
    assert_eq!(tags.json()["tags"], serde_json::json!(["keep"]));
    r.get(&format!("/v2/repo/manifests/{other}")).expect(200);
    r.delete(&format!("/v2/repo/manifests/{d}"))
        .expect_error(404, "MANIFEST_UNKNOWN");
}

/// §Deleting tags: "Upon success, the registry MUST respond with a `202
/// Accepted` code." "Once deleted, a `GET` to `/v2/<name>/manifests/<tag>`
/// will return a 404." Only that tag goes: the manifest and its other tags
/// stay.
#[test]
fn delete_by_tag_removes_only_that_tag() {
    let r = Reg::start();
    let (m, d) = r.push_image("repo", "a", 21);
    r.put_manifest("repo", "b", OCI_MANIFEST, &m).expect(201);
    r.delete("/v2/repo/manifests/a").expect(202);
    r.get("/v2/repo/manifests/a")
        .expect_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(r.get("/v2/repo/manifests/b").body, m);
    assert_eq!(r.get(&format!("/v2/repo/manifests/{d}")).body, m);
    let tags = r.get("/v2/repo/tags/list");
    assert_eq!(tags.json()["tags"], serde_json::json!(["b"]));
    r.delete("/v2/repo/manifests/a")
        .expect_error(404, "MANIFEST_UNKNOWN");
}

/// §Deleting Manifests: "If the repository does not exist, the response
/// MUST return `404 Not Found`." Same for an unknown digest or tag in an
/// existing repository (end-9 failure 404).
#[test]
fn delete_unknown_manifest_is_404() {
    let r = Reg::start();
    r.push_image("repo", "v1", 22);
    let d = sha256(b"unknown");
    for path in [
        format!("/v2/repo/manifests/{d}"),
        "/v2/repo/manifests/v2".to_string(),
        format!("/v2/nothing/here/manifests/{d}"),
        "/v2/nothing/here/manifests/v1".to_string(),
    ] {
        r.delete(&path).expect_error(404, "MANIFEST_UNKNOWN");
    }
}

/// §Pulling manifests: "`<reference>` MUST be either (a) the digest of the
/// manifest or (b) a tag. The `<reference>` MUST NOT be in any other
/// format." A reference that is neither is a bad request, for every method.
#[test]
fn reference_that_is_neither_tag_nor_digest_is_400() {
    let r = Reg::start();
    r.push_image("repo", "v1", 23);
    let config = r.push_config("repo", 23);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    for reference in [
        "-dash",
        ".dot",
        &"a".repeat(129),
        "sha256:abc",
        "md5:abc",
        "a%2Bb",
    ] {
        let path = format!("/v2/repo/manifests/{reference}");
        r.get(&path).expect_client_error(400);
        r.head(&path).expect(400);
        r.delete(&path).expect_client_error(400);
        r.put_manifest("repo", reference, OCI_MANIFEST, &m)
            .expect_client_error(400);
    }
}
