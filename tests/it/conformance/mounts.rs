//! §Mounting a blob from another repository.

use super::*;

fn mount(r: &Reg, repo: &str, digest: &str, from: Option<&str>) -> Reply {
    let q = match from {
        Some(f) => format!("mount={digest}&from={f}"),
        None => format!("mount={digest}"),
    };
    r.send(
        r.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?{q}"))
            .body(Vec::new()),
    )
}

/// §Mounting a blob: "If a necessary blob exists already in another
/// repository within the same registry, it can be mounted into a different
/// repository via a `POST` request in the following format:
/// `/v2/<name>/blobs/uploads/?mount=<digest>&from=<other_name>`. ... The
/// response to a successful mount MUST be `201 Created`, and MUST contain
/// the following header: `Location: <blob-location>`" and "The
/// Docker-Content-Digest header returns the canonical digest".
#[test]
fn mount_from_a_repository_holding_the_blob_is_201() {
    let r = Reg::start();
    let bytes = random_bytes(30, 1000);
    let d = r.push_blob("src", &bytes);
    let resp = mount(&r, "dst", &d, Some("src"));
    resp.expect(201);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    let loc = resp.header("location").expect("Location");
    assert!(loc.contains("/v2/dst/blobs/"), "{loc}");
    let blob = r.get(loc);
    blob.expect(200);
    assert_eq!(blob.body, bytes);
    // The source keeps it.
    r.head(&format!("/v2/src/blobs/{d}")).expect(200);
}

/// §Mounting a blob: "if a registry does not support cross-repository
/// mounting or is unable to mount the requested blob, it SHOULD return a
/// `202`. This indicates that the upload session has begun and that the
/// client MAY proceed with the upload." Here `from` names a repository
/// without the blob, and a repository that does not exist; the session
/// works and nothing was mounted.
#[test]
fn mount_from_a_repository_without_the_blob_opens_a_session() {
    let r = Reg::start();
    let bytes = random_bytes(31, 700);
    let d = sha256(&bytes);
    r.push_blob("src", b"other content");
    for from in ["src", "does/not/exist"] {
        let resp = mount(&r, "dst", &d, Some(from));
        resp.expect(202);
        assert!(resp.header("docker-upload-uuid").is_some());
        let loc = r.location(&resp);
        assert!(loc.contains("/v2/dst/blobs/uploads/"), "{loc}");
        r.head(&format!("/v2/dst/blobs/{d}")).expect(404);
        let st = r.get(&loc);
        st.expect(204);
    }
    let resp = mount(&r, "dst", &d, Some("src"));
    let put = r.send(
        r.c.put(with_query(&r.location(&resp), &format!("digest={d}")))
            .body(bytes.clone()),
    );
    put.expect(201);
    assert_eq!(r.get(&format!("/v2/dst/blobs/{d}")).body, bytes);
}

/// §Mounting a blob: "The registry MAY treat the `from` parameter as
/// optional, and it MAY cross-mount the blob if it can be found." berth
/// does (issue: "mount without `from` mounts when any repository holds the
/// blob"), and answers 202 with a session when none does.
#[test]
fn mount_without_from() {
    let r = Reg::start();
    let bytes = random_bytes(32, 1500);
    let d = r.push_blob("some/where", &bytes);
    let resp = mount(&r, "dst", &d, None);
    resp.expect(201);
    assert_eq!(resp.header("docker-content-digest"), Some(d.as_str()));
    assert_eq!(r.get(resp.header("location").unwrap()).body, bytes);

    let unknown = sha256(b"held by nobody");
    let resp = mount(&r, "dst2", &unknown, None);
    resp.expect(202);
    assert!(resp.header("location").is_some());
    r.head(&format!("/v2/dst2/blobs/{unknown}")).expect(404);
}

/// §Mounting a blob: the blob must "exist already in another repository".
/// One whose only repository deleted it (§Deleting Blobs) cannot be mounted
/// from there, nor found without `from`: 202 and a session.
#[test]
fn deleted_blob_cannot_be_mounted() {
    let r = Reg::start();
    let bytes = random_bytes(33, 300);
    let d = r.push_blob("src", &bytes);
    r.delete(&format!("/v2/src/blobs/{d}")).expect(202);
    mount(&r, "dst", &d, Some("src")).expect(202);
    mount(&r, "dst", &d, None).expect(202);
    r.head(&format!("/v2/dst/blobs/{d}")).expect(404);
}

/// A mounted blob is the target repository's own: deleting it there
/// (§Deleting Blobs) leaves the source's copy, and deleting the source's
/// leaves the mounted one.
#[test]
fn mounted_blob_is_independent_of_its_source() {
    let r = Reg::start();
    let bytes = random_bytes(34, 900);
    let d = r.push_blob("src", &bytes);
    mount(&r, "dst", &d, Some("src")).expect(201);
    mount(&r, "dst2", &d, Some("src")).expect(201);
    r.delete(&format!("/v2/dst/blobs/{d}")).expect(202);
    r.head(&format!("/v2/src/blobs/{d}")).expect(200);
    r.delete(&format!("/v2/src/blobs/{d}")).expect(202);
    let resp = r.get(&format!("/v2/dst2/blobs/{d}"));
    resp.expect(200);
    assert_eq!(resp.body, bytes);
}

/// §Mounting a blob from another repository: "if a registry ... is unable
/// to mount the requested blob, it SHOULD return a `202`". A malformed
/// `mount` digest or `from` name is such a mount: a plain session, nothing
/// linked.
#[test]
fn mount_with_bad_parameters() {
    let r = Reg::start();
    let d = r.push_blob("src", b"abc");
    mount(&r, "dst", "sha256:nothex", Some("src")).expect(202);
    mount(&r, "dst", "../../etc/passwd", Some("src")).expect(202);
    mount(&r, "dst", "sha256:nothex", None).expect(202);
    mount(&r, "dst", &d, Some("../src")).expect(202);
    mount(&r, "dst", &d, Some("SRC")).expect(202);
    r.head(&format!("/v2/dst/blobs/{d}")).expect(404);
}
