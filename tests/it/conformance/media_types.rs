//! Manifest media types the registry stores and serves: OCI image manifest
//! and index, Docker schema 2 manifest and manifest list, artifacts, the
//! `data` field, non-distributable layers.

use super::*;

fn pull(r: &Reg, repo: &str, reference: &str) -> Reply {
    let resp = r.get(&format!("/v2/{repo}/manifests/{reference}"));
    resp.expect(200);
    resp
}

/// §Definitions: an Image Index is "a manifest containing a list of
/// manifests"; §Pulling manifests: "In a successful response, the
/// `Content-Type` header will indicate the type of the returned manifest."
/// An OCI index over two images pushes and pulls as
/// `application/vnd.oci.image.index.v1+json`, by tag and digest.
#[test]
fn oci_index() {
    let r = Reg::start();
    let (m1, d1) = r.push_image("repo", "amd64", 40);
    let (m2, d2) = r.push_image("repo", "arm64", 41);
    let mut c1 = desc(OCI_MANIFEST, &d1, &m1);
    c1["platform"] = serde_json::json!({ "architecture": "amd64", "os": "linux" });
    let mut c2 = desc(OCI_MANIFEST, &d2, &m2);
    c2["platform"] = serde_json::json!({ "architecture": "arm64", "os": "linux" });
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [c1, c2],
        "annotations": { "org.opencontainers.image.ref.name": "multi" },
    }))
    .unwrap();
    let d = sha256(&index);
    let resp = r.put_manifest("repo", "multi", OCI_INDEX, &index);
    resp.expect(201);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    for reference in ["multi", d.as_str()] {
        let got = pull(&r, "repo", reference);
        assert_eq!(got.body, index);
        assert_eq!(got.header("content-type"), Some(OCI_INDEX));
        assert_eq!(got.header("docker-content-digest"), Some(d.as_str()));
    }
}

/// Docker Image Manifest V2, Schema 2
/// (`application/vnd.docker.distribution.manifest.v2+json`), the "legacy
/// manifests" of §Definitions: stored and served with its own media type.
#[test]
fn docker_schema2_manifest() {
    let r = Reg::start();
    let (m, d) = push_docker_image(&r, "repo", "v1", 42);
    let got = pull(&r, "repo", "v1");
    assert_eq!(got.body, m);
    assert_eq!(got.header("content-type"), Some(DOCKER_MANIFEST));
    assert_eq!(got.header("docker-content-digest"), Some(d.as_str()));
    let head = r.head(&format!("/v2/repo/manifests/{d}"));
    head.expect(200);
    assert_eq!(head.header("content-type"), Some(DOCKER_MANIFEST));
}

/// Docker Manifest List
/// (`application/vnd.docker.distribution.manifest.list.v2+json`), with its
/// children checked like an OCI index's.
#[test]
fn docker_manifest_list() {
    let r = Reg::start();
    let (m1, d1) = push_docker_image(&r, "repo", "amd64", 43);
    let (m2, d2) = push_docker_image(&r, "repo", "arm64", 44);
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [
            { "mediaType": DOCKER_MANIFEST, "digest": d1, "size": m1.len(),
              "platform": { "architecture": "amd64", "os": "linux" } },
            { "mediaType": DOCKER_MANIFEST, "digest": d2, "size": m2.len(),
              "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" } },
        ],
    }))
    .unwrap();
    let d = sha256(&list);
    r.put_manifest("repo", "multi", DOCKER_LIST, &list)
        .expect(201);
    let got = pull(&r, "repo", "multi");
    assert_eq!(got.body, list);
    assert_eq!(got.header("content-type"), Some(DOCKER_LIST));
    assert_eq!(got.header("docker-content-digest"), Some(d.as_str()));
    let ghost = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [{ "mediaType": DOCKER_MANIFEST, "digest": sha256(b"?"), "size": 1 }],
    }))
    .unwrap();
    r.put_manifest("repo", "ghost", DOCKER_LIST, &ghost)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
}

fn push_docker_image(r: &Reg, repo: &str, tag: &str, seed: u64) -> (Vec<u8>, String) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","docker":{seed}}}"#);
    let cd = r.push_blob(repo, config.as_bytes());
    let layer = random_bytes(seed, 200);
    let ld = r.push_blob(repo, &layer);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, &cd, config.as_bytes()),
        "layers": [desc(DOCKER_LAYER, &ld, &layer)],
    }))
    .unwrap();
    r.put_manifest(repo, tag, DOCKER_MANIFEST, &m).expect(201);
    let d = sha256(&m);
    (m, d)
}

/// Artifacts (image spec "Guidelines for Artifact Usage"): an image manifest
/// with `artifactType`, the empty config
/// (`application/vnd.oci.empty.v1+json`, digest of `{}`, size 2, with the
/// `data` field `e30=`), and an empty `layers` list (§Pushing Manifests:
/// "the list of blobs MAY be empty") or layers of any media type.
#[test]
fn artifact_manifests() {
    let r = Reg::start();
    let empty = r.push_empty("repo");
    let payload = random_bytes(45, 100);
    let pd = r.push_blob("repo", &payload);
    let with_layer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.thing.v1",
        "config": empty,
        "layers": [desc("application/vnd.example.thing.layer.v1+tar", &pd, &payload)],
        "annotations": { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
    }))
    .unwrap();
    let no_layers = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.config-only.v1",
        "config": empty, "layers": [],
    }))
    .unwrap();
    let empty_layer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.empty-layer.v1",
        "config": empty, "layers": [empty],
    }))
    .unwrap();
    for (tag, m) in [("a", &with_layer), ("b", &no_layers), ("c", &empty_layer)] {
        r.put_manifest("repo", tag, OCI_MANIFEST, m).expect(201);
        let got = pull(&r, "repo", tag);
        assert_eq!(&got.body, m);
        assert_eq!(got.header("content-type"), Some(OCI_MANIFEST));
    }
    let got = r.get(&format!("/v2/repo/blobs/{EMPTY_DIGEST}"));
    got.expect(200);
    assert_eq!(got.body, b"{}");
}

/// Image spec descriptor `data`: "The decoded data MUST match the
/// `digest` and `size` fields" (and be base64). A descriptor whose `data`
/// contradicts its digest or size makes the manifest invalid (400
/// `MANIFEST_INVALID`), in config and layers alike.
#[test]
fn data_field_must_match_digest_and_size() {
    let r = Reg::start();
    r.push_empty("repo");
    let ok_empty = serde_json::json!({
        "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30=" });
    let mut wrong_bytes = ok_empty.clone();
    wrong_bytes["data"] = "e31=".into();
    let mut wrong_size = ok_empty.clone();
    wrong_size["size"] = 3.into();
    let mut not_base64 = ok_empty.clone();
    not_base64["data"] = "%%%".into();
    for bad in [&wrong_bytes, &wrong_size, &not_base64] {
        for m in [
            serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": bad, "layers": [] }),
            serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": ok_empty, "layers": [bad] }),
        ] {
            r.put_manifest("repo", "d", OCI_MANIFEST, m.to_string().as_bytes())
                .expect_error(400, "MANIFEST_INVALID");
        }
    }
    r.get("/v2/repo/manifests/d").expect(404);
    let good = serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": ok_empty, "layers": [ok_empty] });
    r.put_manifest("repo", "d", OCI_MANIFEST, good.to_string().as_bytes())
        .expect(201);
}

/// Image spec "Non-distributable layers" (OCI
/// `application/vnd.oci.image.layer.nondistributable.v1.tar+gzip`) and
/// Docker foreign layers (`...rootfs.foreign.diff.tar.gzip`) live outside
/// the registry (`urls`): a manifest naming them is accepted though the
/// registry does not hold them (issue: "not required to be present").
#[test]
fn non_distributable_layers_need_not_be_present() {
    let r = Reg::start();
    let config = r.push_config("repo", 46);
    let local = random_bytes(46, 50);
    let ld = r.push_blob("repo", &local);
    let mut foreign = desc(
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        &sha256(b"windows base layer"),
        b"windows base layer",
    );
    foreign["urls"] = serde_json::json!(["https://example.com/layer.tar.gz"]);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
        "layers": [foreign, desc(OCI_LAYER, &ld, &local)],
    }))
    .unwrap();
    r.put_manifest("repo", "oci", OCI_MANIFEST, &m).expect(201);
    assert_eq!(pull(&r, "repo", "oci").body, m);

    let dconfig = br#"{"os":"windows"}"#;
    let dcd = r.push_blob("repo", dconfig);
    let mut dforeign = desc(
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        &sha256(b"docker foreign layer"),
        b"docker foreign layer",
    );
    dforeign["urls"] = serde_json::json!(["https://example.com/foreign.tar.gz"]);
    let dm = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, &dcd, dconfig),
        "layers": [dforeign, desc(DOCKER_LAYER, &ld, &local)],
    }))
    .unwrap();
    r.put_manifest("repo", "docker", DOCKER_MANIFEST, &dm)
        .expect(201);
    assert_eq!(pull(&r, "repo", "docker").body, dm);
    // The foreign layer is not served by the registry.
    r.head(&format!(
        "/v2/repo/blobs/{}",
        sha256(b"docker foreign layer")
    ))
    .expect(404);
}

/// Image spec: "Implementations ... MUST ignore unknown properties" while
/// §Pushing Manifests: "The registry MUST store the manifest in the exact
/// byte representation provided by the client" — unknown fields at every
/// level are accepted and preserved.
#[test]
fn unknown_fields_are_accepted_and_preserved() {
    let r = Reg::start();
    let config = r.push_config("repo", 47);
    let mut c = config.clone();
    c["x-config-extra"] = serde_json::json!({ "k": [1, 2, 3] });
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": [],
        "x-top-level": "kept", "annotations": { "a": "b" },
    }))
    .unwrap();
    r.put_manifest("repo", "u", OCI_MANIFEST, &m).expect(201);
    let got = pull(&r, "repo", "u");
    assert_eq!(got.body, m);
    assert_eq!(got.json()["x-top-level"], "kept");
}

/// §Pulling manifests: "The client SHOULD include an `Accept` header
/// indicating which manifest content types it supports." A client listing
/// several types (or `*/*`) gets the manifest with its stored type.
#[test]
fn accept_header_listing_the_type_is_served() {
    let r = Reg::start();
    let (m, _) = r.push_image("repo", "v1", 48);
    for accept in [
        format!("{DOCKER_MANIFEST}, {OCI_INDEX}, {OCI_MANIFEST}"),
        format!("{OCI_MANIFEST};q=0.9"),
        "*/*".to_string(),
    ] {
        let got = r.send(
            r.req(Method::GET, "/v2/repo/manifests/v1")
                .header("accept", &accept),
        );
        got.expect(200);
        assert_eq!(got.body, m, "{accept}");
        assert_eq!(got.header("content-type"), Some(OCI_MANIFEST));
    }
}
