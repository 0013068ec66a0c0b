//! §Pulling manifests: the `<name>` and tag grammars; digests in paths;
//! requests that try to leave the registry's storage.

use super::*;

/// §Pulling manifests: "Throughout this document, `<name>` MUST match the
/// following regular expression:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`".
/// Names of one or many components, with every separator the grammar
/// allows, work on every endpoint, and names that contain endpoint words
/// (`blobs`, `manifests`, `tags`, `uploads`) are still names.
#[test]
fn valid_names_work_on_every_endpoint() {
    let r = Reg::start();
    for name in [
        "a",
        "a/b/c",
        "library/ubuntu",
        "0/9/x0",
        "a.b/c_d/e__f/g-h/i--j",
        "blobs/uploads",
        "x/manifests/tags/list",
        "referrers/blobs",
        &"a".repeat(255),
    ] {
        let bytes = format!("content of {name}").into_bytes();
        let d = r.push_blob(name, &bytes);
        assert_eq!(
            r.get(&format!("/v2/{name}/blobs/{d}")).body,
            bytes,
            "{name}"
        );
        let s = r.open_session(name);
        let loc = r.location(&s);
        assert!(loc.contains(&format!("/v2/{name}/blobs/uploads/")), "{loc}");
        r.get(&loc).expect(204);
        r.delete(&loc).expect(204);
        let (m, md) = r.push_image(name, "v1", name.len() as u64);
        assert_eq!(r.get(&format!("/v2/{name}/manifests/v1")).body, m, "{name}");
        let tags = r.get(&format!("/v2/{name}/tags/list"));
        tags.expect(200);
        assert_eq!(tags.json()["name"], name);
        r.get(&format!("/v2/{name}/referrers/{md}")).expect(200);
        r.delete(&format!("/v2/{name}/manifests/{md}")).expect(202);
        r.delete(&format!("/v2/{name}/blobs/{d}")).expect(202);
    }
    let catalog = r.get("/v2/_catalog");
    let repos = catalog.json()["repositories"].clone();
    for name in ["a/b/c", "blobs/uploads", "x/manifests/tags/list"] {
        assert!(
            repos.as_array().unwrap().iter().any(|n| n == name),
            "{name} not in {repos}"
        );
    }
}

/// `<name>` "MUST match" the grammar: anything else is `400` with
/// `NAME_INVALID` ("invalid repository name") — never a 5xx, never stored —
/// on pulls, pushes, uploads, tags and referrers alike.
#[test]
fn invalid_names_are_400_name_invalid() {
    let r = Reg::start();
    let d = sha256(b"x");
    let long = "a".repeat(256);
    for name in [
        "A",
        "Upper/case",
        "a_",
        "-a",
        "a-",
        "_a",
        ".a",
        "a.",
        "a..b",
        "a._b",
        "a___b",
        "a/_b",
        "a//b",
        "a/",
        "a%20b",
        "a%2fb",
        "a%2Fb",
        "caf%C3%A9",
        "a:b",
        "a@b",
        long.as_str(),
    ] {
        r.get(&format!("/v2/{name}/tags/list"))
            .expect_error(400, "NAME_INVALID");
        r.get(&format!("/v2/{name}/manifests/latest"))
            .expect_error(400, "NAME_INVALID");
        r.head(&format!("/v2/{name}/blobs/{d}")).expect(400);
        r.get(&format!("/v2/{name}/referrers/{d}"))
            .expect_error(400, "NAME_INVALID");
        r.post_blob(name, &d, b"x")
            .expect_error(400, "NAME_INVALID");
        r.send(
            r.req(Method::POST, &format!("/v2/{name}/blobs/uploads/"))
                .body(Vec::new()),
        )
        .expect_error(400, "NAME_INVALID");
        r.put_manifest(name, "latest", OCI_MANIFEST, b"{}")
            .expect_error(400, "NAME_INVALID");
        r.delete(&format!("/v2/{name}/manifests/latest"))
            .expect_error(400, "NAME_INVALID");
    }
    let catalog = r.get("/v2/_catalog");
    assert_eq!(catalog.json()["repositories"], serde_json::json!([]));
}

/// §Pulling manifests: "`<reference>` as a tag MUST be at most 128
/// characters in length and MUST match the following regular expression:
/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`". Boundary tags push and pull;
/// others are refused with 400 and create nothing. (The spec lists no tag
/// error code; berth answers `MANIFEST_INVALID`, from the spec's list.)
#[test]
fn tag_grammar() {
    let r = Reg::start();
    let config = r.push_config("repo", 90);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    let max = "T".repeat(128);
    for tag in ["_", "0", "A", "a.b-c_d", "V1.0.0-RC.1", "_.-", max.as_str()] {
        r.put_manifest("repo", tag, OCI_MANIFEST, &m).expect(201);
        assert_eq!(r.get(&format!("/v2/repo/manifests/{tag}")).body, m, "{tag}");
    }
    let too_long = "T".repeat(129);
    for tag in [
        ".a",
        "-a",
        "a+b",
        "a%20b",
        "a%2Fb",
        "caf%C3%A9",
        "a~b",
        too_long.as_str(),
    ] {
        r.put_manifest("repo", tag, OCI_MANIFEST, &m)
            .expect_error(400, "MANIFEST_INVALID");
    }
    let tags = r.get("/v2/repo/tags/list");
    assert_eq!(tags.json()["tags"].as_array().unwrap().len(), 7);
}

/// §Listing Tags: "`<tagname>` MUST NOT be a numerical index, but rather it
/// MUST be a proper tag." — and §Listing Tags' `n` is an integer: other
/// values are a bad request, never a 5xx.
#[test]
fn bad_pagination_parameters_are_400() {
    let r = Reg::start();
    r.push_image("repo", "v1", 91);
    for q in ["n=abc", "n=-1", "n=1.5"] {
        r.get(&format!("/v2/repo/tags/list?{q}"))
            .expect_client_error(400);
        r.get(&format!("/v2/_catalog?{q}")).expect_client_error(400);
    }
}

/// Path traversal in `<name>` (issue): `..` and `.` segments, raw or
/// percent-encoded, are not names — `400 NAME_INVALID` — whichever endpoint
/// they target, and they reach nothing outside the repository namespace.
#[test]
fn dot_segments_in_names_are_rejected() {
    let r = Reg::start();
    r.push_image("victim", "v1", 92);
    let d = sha256(b"x");
    for name in [
        "..",
        "../victim",
        "a/../victim",
        "a/./b",
        ".",
        "%2e%2e",
        "%2E%2E/victim",
        "a/%2e%2e/victim",
        "..%2fvictim",
        "a%2f..%2fvictim",
    ] {
        for target in [
            format!("/v2/{name}/tags/list"),
            format!("/v2/{name}/manifests/v1"),
            format!("/v2/{name}/blobs/{d}"),
            format!("/v2/{name}/referrers/{d}"),
        ] {
            r.raw("GET", &target).expect_error(400, "NAME_INVALID");
        }
        r.raw("POST", &format!("/v2/{name}/blobs/uploads/"))
            .expect_error(400, "NAME_INVALID");
        r.raw("DELETE", &format!("/v2/{name}/manifests/v1"))
            .expect_error(400, "NAME_INVALID");
    }
    r.get("/v2/victim/manifests/v1").expect(200);
    assert_eq!(
        r.get("/v2/_catalog").json()["repositories"],
        serde_json::json!(["victim"])
    );
}

/// Path traversal in `<digest>` and upload ids (issue): a digest must match
/// `algorithm:hex`, so `../` in one is `400 DIGEST_INVALID` (a mount of one
/// is a mount berth cannot do: a plain session), or, when the
/// slashes change which endpoint the path names, a 404 from no endpoint;
/// an upload id with `../` names no session (`404 BLOB_UPLOAD_UNKNOWN`).
/// Nothing outside the data directory is read or created.
#[test]
fn traversal_in_digests_and_upload_ids_goes_nowhere() {
    let r = Reg::start();
    let parent = r.b.data_dir.parent().unwrap().to_owned();
    let marker = format!("berth-escape-{}", std::process::id());
    for d in [
        format!("sha256:..%2f..%2f{marker}"),
        format!("sha256:%2e%2e%2f%2e%2e%2f{marker}"),
        "sha256:..%2f..%2fmetadata.db".to_string(),
        format!("..%2f..%2f{marker}"),
    ] {
        r.raw("GET", &format!("/v2/repo/blobs/{d}"))
            .expect_error(400, "DIGEST_INVALID");
        r.raw("GET", &format!("/v2/repo/manifests/{d}"))
            .expect_client_error(400);
        r.raw("POST", &format!("/v2/repo/blobs/uploads/?digest={d}"))
            .expect_error(400, "DIGEST_INVALID");
        // A mount it cannot do is a plain session (§Mounting: 202).
        r.raw(
            "POST",
            &format!("/v2/repo/blobs/uploads/?mount={d}&from=repo"),
        )
        .expect(202);
        r.raw("GET", &format!("/v2/repo/referrers/{d}"))
            .expect_error(400, "DIGEST_INVALID");
    }
    for target in [
        format!("/v2/repo/blobs/sha256:../../../{marker}"),
        "/v2/repo/blobs/sha256:../../metadata.db".to_string(),
        "/v2/repo/blobs/../../../../etc/passwd".to_string(),
    ] {
        let resp = r.raw("GET", &target);
        let codes = resp.expect_client_error(if resp.status == 400 { 400 } else { 404 });
        assert!(
            codes
                .iter()
                .all(|c| c == "DIGEST_INVALID" || c == "NAME_UNKNOWN"),
            "{target}: {codes:?}"
        );
    }
    let s = r.open_session("repo");
    let loc = r.location(&s);
    let id = s.header("docker-upload-uuid").unwrap().to_owned();
    for bad_id in [
        format!("..%2f..%2f{marker}"),
        format!("%2e%2e%2f{marker}"),
        format!("..%2f{id}"),
        format!("{id}%2f..%2f..%2f{marker}"),
    ] {
        let path = format!("/v2/repo/blobs/uploads/{bad_id}");
        r.raw("GET", &path).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        r.raw("PATCH", &path)
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        r.raw("PUT", &format!("{path}?digest={}", sha256(b"")))
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        r.raw("DELETE", &path)
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    }
    // The real session is untouched.
    let st = r.get(&loc);
    st.expect(204);
    assert_eq!(st.header("range"), Some("0-0"));
    let after: Vec<String> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!after.iter().any(|n| n.contains(&marker)), "{after:?}");
    assert!(!common::snapshot(&r.b.data_dir)
        .keys()
        .any(|k| k.contains(&marker)));
}
