//! §Content Discovery: listing tags, the catalog, listing referrers.

use super::*;

/// Push one small manifest under each of `tags`.
fn tag_all(r: &Reg, repo: &str, tags: &[&str]) {
    let config = r.push_config(repo, 70);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    for t in tags {
        r.put_manifest(repo, t, OCI_MANIFEST, &m).expect(201);
    }
}

fn tags_of(resp: &Reply) -> Vec<String> {
    resp.json()["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("no tags array: {}", resp.text()))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// §Listing Tags: "Assuming a repository is found, this request MUST return
/// a `200 OK` response code. ... If the list is not empty, the tags MUST be
/// in lexical order" and "the response MUST be a json body in the following
/// format: {"name": "<name>", "tags": [...]}".
#[test]
fn tags_list_is_lexical() {
    let r = Reg::start();
    tag_all(&r, "a/b", &["v2", "latest", "1.0", "v10", "_x", "v1"]);
    let resp = r.get("/v2/a/b/tags/list");
    resp.expect(200);
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = resp.json();
    assert_eq!(v["name"], "a/b");
    assert_eq!(tags_of(&resp), ["1.0", "_x", "latest", "v1", "v10", "v2"]);
    assert!(resp.header("link").is_none());
}

/// §Listing Tags: "The list of tags MAY be empty if there are no tags on
/// the repository." A repository with only blobs lists no tags (200).
#[test]
fn tags_list_of_repository_without_tags_is_empty() {
    let r = Reg::start();
    r.push_blob("repo", b"a blob");
    let resp = r.get("/v2/repo/tags/list");
    resp.expect(200);
    assert_eq!(
        resp.json(),
        serde_json::json!({ "name": "repo", "tags": [] })
    );
}

/// §Listing Tags: "a subset of the tags can be fetched by providing the `n`
/// query parameter ... The response to such a request MAY return fewer than
/// `<int>` results, but only when the total number of tags attached to the
/// repository is less than `<int>` or a `Link` header is provided. ... If
/// included, the `Link` header MUST be set according to RFC5988 with the
/// Relation Type `rel="next"`." Following the links yields every tag once,
/// in order, and the last page has no link.
#[test]
fn tags_list_paginates_with_n_and_link() {
    let r = Reg::start();
    let all = ["a", "b", "c", "d", "e", "f", "g"];
    tag_all(&r, "repo", &all);
    let first = r.get("/v2/repo/tags/list?n=3");
    first.expect(200);
    assert_eq!(tags_of(&first), ["a", "b", "c"]);
    let mut seen = tags_of(&first);
    let mut next = next_link(&first);
    let mut pages = 1;
    while let Some(link) = next {
        assert!(
            link.starts_with("/v2/repo/tags/list?") || link.contains("/v2/repo/tags/list?"),
            "{link}"
        );
        let page = r.get(&link);
        page.expect(200);
        let tags = tags_of(&page);
        assert!(tags.len() == 3 || page.header("link").is_none(), "{tags:?}");
        seen.extend(tags);
        next = next_link(&page);
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
    }
    assert_eq!(seen, all);
    assert_eq!(pages, 3);
    // n larger than the list: everything, no Link.
    let big = r.get("/v2/repo/tags/list?n=100");
    assert_eq!(tags_of(&big), all);
    assert!(big.header("link").is_none());
    // n exactly the list's length: everything, and no page after it.
    let exact = r.get("/v2/repo/tags/list?n=7");
    assert_eq!(tags_of(&exact), all);
    if let Some(link) = next_link(&exact) {
        assert!(tags_of(&r.get(&link)).is_empty());
    }
}

/// §Listing Tags: "When `n` is zero, this endpoint MUST return an empty
/// list, and MUST NOT include a `Link` header."
#[test]
fn tags_list_n_zero_is_empty_without_link() {
    let r = Reg::start();
    tag_all(&r, "repo", &["a", "b"]);
    let resp = r.get("/v2/repo/tags/list?n=0");
    resp.expect(200);
    assert_eq!(tags_of(&resp), Vec::<String>::new());
    assert!(resp.header("link").is_none());
}

/// §Listing Tags: "A request of this sort will return up to `<int>` tags,
/// beginning non-inclusively with `<tagname>`. ... When using the `last`
/// query parameter, the `n` parameter is OPTIONAL."
#[test]
fn tags_list_last_is_exclusive() {
    let r = Reg::start();
    tag_all(&r, "repo", &["a", "b", "c", "d"]);
    assert_eq!(tags_of(&r.get("/v2/repo/tags/list?last=b")), ["c", "d"]);
    assert_eq!(tags_of(&r.get("/v2/repo/tags/list?n=1&last=a")), ["b"]);
    assert_eq!(tags_of(&r.get("/v2/repo/tags/list?last=bb")), ["c", "d"]);
    assert!(tags_of(&r.get("/v2/repo/tags/list?last=d")).is_empty());
}

/// §Listing Tags: end-8a failure `404`; "repository name not known to
/// registry" is `NAME_UNKNOWN`.
#[test]
fn tags_list_of_unknown_repository_is_404_name_unknown() {
    let r = Reg::start();
    r.push_image("known", "v1", 71);
    r.get("/v2/unknown/tags/list")
        .expect_error(404, "NAME_UNKNOWN");
    r.get("/v2/known/sub/tags/list")
        .expect_error(404, "NAME_UNKNOWN");
}

fn repos_of(resp: &Reply) -> Vec<String> {
    resp.json()["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("no repositories array: {}", resp.text()))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// Docker API "Catalog" (`GET /v2/_catalog`, issue): `200` with
/// `{"repositories": [...]}` in lexical order, multi-component names
/// included.
#[test]
fn catalog_lists_repositories() {
    let r = Reg::start();
    let empty = r.get("/v2/_catalog");
    empty.expect(200);
    assert_eq!(repos_of(&empty), Vec::<String>::new());
    for repo in ["zeta", "a/b/c", "alpha", "a/b"] {
        r.push_blob(repo, repo.as_bytes());
    }
    let resp = r.get("/v2/_catalog");
    resp.expect(200);
    assert_eq!(repos_of(&resp), ["a/b", "a/b/c", "alpha", "zeta"]);
}

/// Docker API "Catalog" pagination: `n` and `last` as for tags, with a
/// `Link: <...>; rel="next"` header while more remain.
#[test]
fn catalog_paginates_with_n_last_and_link() {
    let r = Reg::start();
    let all = ["r1", "r2", "r3", "r4", "r5"];
    for repo in all {
        r.push_blob(repo, repo.as_bytes());
    }
    let first = r.get("/v2/_catalog?n=2");
    first.expect(200);
    assert_eq!(repos_of(&first), ["r1", "r2"]);
    let mut seen = repos_of(&first);
    let mut next = next_link(&first);
    let mut pages = 1;
    while let Some(link) = next {
        assert!(link.contains("/v2/_catalog?"), "{link}");
        let page = r.get(&link);
        page.expect(200);
        seen.extend(repos_of(&page));
        next = next_link(&page);
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
    }
    assert_eq!(seen, all);
    assert_eq!(repos_of(&r.get("/v2/_catalog?last=r3")), ["r4", "r5"]);
    let zero = r.get("/v2/_catalog?n=0");
    assert!(repos_of(&zero).is_empty());
    assert!(zero.header("link").is_none());
}

/// §Listing Referrers: "Upon success, the response MUST be a JSON body with
/// an image index containing a list of descriptors. The `Content-Type`
/// header MUST be set to `application/vnd.oci.image.index.v1+json`. ... The
/// descriptors MUST include an `artifactType` field that is set to the value
/// of the `artifactType` in the image manifest or index, if present. If the
/// `artifactType` is empty or missing in the image manifest, the value of
/// `artifactType` MUST be set to the config descriptor `mediaType` value. If
/// the `artifactType` is empty or missing in an index, the `artifactType`
/// MUST be omitted. The descriptors MUST include annotations from the image
/// manifest or index."
#[test]
fn referrers_list_descriptors() {
    let r = Reg::start();
    let (sm, sd) = r.push_image("repo", "v1", 72);
    let subject = (OCI_MANIFEST, sd.as_str(), sm.len());
    let (sig, sig_d) = r.push_referrer(
        "repo",
        subject,
        Some("application/vnd.example.signature.v1"),
        serde_json::json!({ "org.example.signature.fingerprint": "abcd" }),
        73,
    );
    // An image manifest without artifactType: reported as its config type.
    let config = r.push_config("repo", 74);
    let plain = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
        "subject": desc(OCI_MANIFEST, &sd, &sm),
        "annotations": { "org.opencontainers.image.created": "2024-02-02T00:00:00Z" },
    }))
    .unwrap();
    let plain_d = sha256(&plain);
    r.put_manifest("repo", &plain_d, OCI_MANIFEST, &plain)
        .expect(201);
    // An index without artifactType: no artifactType in its descriptor.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [],
        "subject": desc(OCI_MANIFEST, &sd, &sm),
        "annotations": { "org.example.kind": "index" },
    }))
    .unwrap();
    let index_d = sha256(&index);
    let resp = r.put_manifest("repo", &index_d, OCI_INDEX, &index);
    resp.expect(201);
    assert_eq!(resp.header("oci-subject"), Some(sd.as_str()));
    // An index with artifactType.
    let typed_index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [],
        "artifactType": "application/vnd.example.bundle.v1",
        "subject": desc(OCI_MANIFEST, &sd, &sm),
    }))
    .unwrap();
    let typed_index_d = sha256(&typed_index);
    r.put_manifest("repo", &typed_index_d, OCI_INDEX, &typed_index)
        .expect(201);

    let resp = r.get(&format!("/v2/repo/referrers/{sd}"));
    resp.expect(200);
    assert_eq!(resp.header("content-type"), Some(OCI_INDEX));
    assert!(resp.header("oci-filters-applied").is_none());
    let v = resp.json();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    let mut got: Vec<serde_json::Value> = v["manifests"].as_array().unwrap().clone();
    got.sort_by_key(|d| d["digest"].as_str().unwrap().to_owned());
    let mut want = vec![
        serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": sig_d, "size": sig.len(),
            "artifactType": "application/vnd.example.signature.v1",
            "annotations": { "org.example.signature.fingerprint": "abcd" },
        }),
        serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": plain_d, "size": plain.len(),
            "artifactType": OCI_CONFIG,
            "annotations": { "org.opencontainers.image.created": "2024-02-02T00:00:00Z" },
        }),
        serde_json::json!({
            "mediaType": OCI_INDEX, "digest": index_d, "size": index.len(),
            "annotations": { "org.example.kind": "index" },
        }),
        serde_json::json!({
            "mediaType": OCI_INDEX, "digest": typed_index_d, "size": typed_index.len(),
            "artifactType": "application/vnd.example.bundle.v1",
        }),
    ];
    want.sort_by_key(|d| d["digest"].as_str().unwrap().to_owned());
    assert_eq!(got, want);
}

/// §Listing Referrers: "The registry SHOULD support filtering on
/// `artifactType`. ... If filtering is requested and applied, the response
/// MUST include a header `OCI-Filters-Applied: artifactType` denoting that
/// an `artifactType` filter was applied." "If a query results in no
/// matching referrers, an empty manifest list MUST be returned."
#[test]
fn referrers_filter_by_artifact_type() {
    let r = Reg::start();
    let (sm, sd) = r.push_image("repo", "v1", 75);
    let subject = (OCI_MANIFEST, sd.as_str(), sm.len());
    let (_, sbom) = r.push_referrer(
        "repo",
        subject,
        Some("application/vnd.example.sbom.v1"),
        serde_json::Value::Null,
        76,
    );
    r.push_referrer(
        "repo",
        subject,
        Some("application/vnd.example.signature.v1"),
        serde_json::Value::Null,
        77,
    );
    let resp = r.get(&format!(
        "/v2/repo/referrers/{sd}?artifactType=application/vnd.example.sbom.v1"
    ));
    resp.expect(200);
    assert_eq!(resp.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(resp.header("content-type"), Some(OCI_INDEX));
    let m = resp.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["digest"], sbom.as_str());
    assert_eq!(m[0]["artifactType"], "application/vnd.example.sbom.v1");
    // Percent-encoded, as clients send it.
    let enc = r.get(&format!(
        "/v2/repo/referrers/{sd}?artifactType=application%2Fvnd.example.sbom.v1"
    ));
    assert_eq!(enc.json()["manifests"].as_array().unwrap().len(), 1);
    // A `+` in the media type, encoded or not, is a `+`.
    let (_, plus) = r.push_referrer(
        "repo",
        subject,
        Some("application/vnd.example.sig+json"),
        serde_json::Value::Null,
        78,
    );
    for q in [
        "application/vnd.example.sig+json",
        "application/vnd.example.sig%2Bjson",
    ] {
        let m = r
            .get(&format!("/v2/repo/referrers/{sd}?artifactType={q}"))
            .json()["manifests"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(m.len(), 1, "{q}");
        assert_eq!(m[0]["digest"], plus.as_str(), "{q}");
    }

    let none = r.get(&format!(
        "/v2/repo/referrers/{sd}?artifactType=application/vnd.example.none"
    ));
    none.expect(200);
    assert_eq!(none.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(none.json()["manifests"], serde_json::json!([]));
}

/// §Listing Referrers: "A `Link` header MUST be included in the response
/// when the descriptor list cannot be returned in a single manifest. Each
/// response is an image index with different descriptors in the
/// `manifests` field. The `Link` header MUST be set according to RFC5988
/// with the Relation Type `rel="next"`." berth pages at `n` (1,000 by
/// default), and the next page keeps the `artifactType` filter.
#[test]
fn referrers_paginate_with_link() {
    let r = Reg::start();
    let (sm, sd) = r.push_image("repo", "v1", 90);
    let subject = (OCI_MANIFEST, sd.as_str(), sm.len());
    let mut sboms = Vec::new();
    for seed in 0..5 {
        let (_, d) = r.push_referrer(
            "repo",
            subject,
            Some("application/vnd.example.sbom.v1"),
            serde_json::Value::Null,
            91 + seed,
        );
        sboms.push(d);
    }
    r.push_referrer(
        "repo",
        subject,
        Some("application/vnd.example.signature.v1"),
        serde_json::Value::Null,
        99,
    );
    sboms.sort();
    let digests = |reply: &Reply| -> Vec<String> {
        reply.json()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_owned())
            .collect()
    };

    // Everything fits in the default page: no Link.
    let whole = r.get(&format!("/v2/repo/referrers/{sd}"));
    whole.expect(200);
    assert_eq!(digests(&whole).len(), 6);
    assert!(whole.header("link").is_none());

    // Pages of two, filtered: each a full image index, different
    // descriptors, the filter kept, every SBOM exactly once.
    let first = r.get(&format!(
        "/v2/repo/referrers/{sd}?n=2&artifactType=application/vnd.example.sbom.v1"
    ));
    first.expect(200);
    let mut seen = digests(&first);
    assert_eq!(seen.len(), 2);
    let mut next = next_link(&first);
    let mut pages = 1;
    while let Some(link) = next {
        assert!(
            link.starts_with(&format!("/v2/repo/referrers/{sd}?")),
            "{link}"
        );
        assert!(link.contains("artifactType="), "{link}");
        let page = r.get(&link);
        page.expect(200);
        assert_eq!(page.header("content-type"), Some(OCI_INDEX));
        assert_eq!(page.header("oci-filters-applied"), Some("artifactType"));
        assert_eq!(page.json()["mediaType"], OCI_INDEX);
        seen.extend(digests(&page));
        next = next_link(&page);
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, sboms);

    // A cursor that is not a digest is refused, and n must be a number.
    r.get(&format!("/v2/repo/referrers/{sd}?last=../x"))
        .expect_error(400, "DIGEST_INVALID");
    r.get(&format!("/v2/repo/referrers/{sd}?n=two"))
        .expect_error(400, "SIZE_INVALID");
}

/// §Listing Referrers: "If the registry supports the referrers API, the
/// registry MUST NOT return a `404 Not Found` to a referrers API requests."
/// "If a query results in no matching referrers, an empty manifest list
/// MUST be returned." — for a subject without referrers, a subject that
/// does not exist, and a repository that does not exist.
#[test]
fn referrers_empty_is_200_not_404() {
    let r = Reg::start();
    let (_, sd) = r.push_image("repo", "v1", 78);
    for path in [
        format!("/v2/repo/referrers/{sd}"),
        format!("/v2/repo/referrers/{}", sha256(b"no such subject")),
        format!("/v2/no/such/repo/referrers/{sd}"),
    ] {
        let resp = r.get(&path);
        resp.expect(200);
        assert_eq!(resp.header("content-type"), Some(OCI_INDEX));
        assert_eq!(
            resp.json(),
            serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [] }),
            "{path}"
        );
    }
}

/// §Push: a registry "MUST initially accept ... a `subject` field that
/// references a manifest that does not exist in the repository, allowing
/// clients to push a manifest and referrers to that manifest in either
/// order", and §Enabling the Referrers API: "Registries MUST include all
/// newly pushed image manifests with a valid `subject` field in the
/// referrers API response" — listed before and after the subject arrives.
#[test]
fn referrers_of_a_subject_pushed_later() {
    let r = Reg::start();
    let config = r.push_config("repo", 79);
    let subject = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [],
    }))
    .unwrap();
    let sd = sha256(&subject);
    let (_, rd) = r.push_referrer(
        "repo",
        (OCI_MANIFEST, &sd, subject.len()),
        Some("application/vnd.example.early"),
        serde_json::Value::Null,
        80,
    );
    let before = r.get(&format!("/v2/repo/referrers/{sd}"));
    before.expect(200);
    assert_eq!(before.json()["manifests"][0]["digest"], rd.as_str());
    r.put_manifest("repo", "v1", OCI_MANIFEST, &subject)
        .expect(201);
    let after = r.get(&format!("/v2/repo/referrers/{sd}"));
    assert_eq!(after.json()["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(after.json()["manifests"][0]["digest"], rd.as_str());
}

/// §Listing Referrers: "Each descriptor is of an image manifest or index in
/// the same `<name>` namespace with a `subject` field that specifies the
/// value of `<digest>`." Referrers in other repositories, and manifests
/// whose subject is another digest, are not listed; a deleted referrer
/// disappears.
#[test]
fn referrers_are_scoped_to_repository_and_subject() {
    let r = Reg::start();
    let (sm, sd) = r.push_image("repo", "v1", 81);
    let (om, od) = r.push_image("repo", "v2", 82);
    let (_, mine) = r.push_referrer(
        "repo",
        (OCI_MANIFEST, &sd, sm.len()),
        Some("application/vnd.example.a"),
        serde_json::Value::Null,
        83,
    );
    r.push_referrer(
        "repo",
        (OCI_MANIFEST, &od, om.len()),
        Some("application/vnd.example.b"),
        serde_json::Value::Null,
        84,
    );
    r.push_referrer(
        "elsewhere",
        (OCI_MANIFEST, &sd, sm.len()),
        Some("application/vnd.example.c"),
        serde_json::Value::Null,
        85,
    );
    let resp = r.get(&format!("/v2/repo/referrers/{sd}"));
    let m = resp.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["digest"], mine.as_str());
    r.delete(&format!("/v2/repo/manifests/{mine}")).expect(202);
    let resp = r.get(&format!("/v2/repo/referrers/{sd}"));
    resp.expect(200);
    assert_eq!(resp.json()["manifests"], serde_json::json!([]));
}

/// §Listing Referrers: "If the request is invalid, such as a `<digest>`
/// with an invalid syntax, a `400 Bad Request` MUST be returned."
#[test]
fn referrers_with_invalid_digest_is_400() {
    let r = Reg::start();
    for d in [
        "sha256:abc",
        "latest",
        "sha256:",
        &format!("sha256:{}", "G".repeat(64)),
    ] {
        r.get(&format!("/v2/repo/referrers/{d}"))
            .expect_error(400, "DIGEST_INVALID");
    }
}

/// Referrers of a sha512 subject (image spec registered algorithm), listed
/// under that digest.
#[test]
fn referrers_of_a_sha512_subject() {
    let r = Reg::start();
    let subject = sha512(b"some sha512 manifest");
    let (_, rd) = r.push_referrer(
        "repo",
        (OCI_MANIFEST, &subject, 20),
        Some("application/vnd.example.sig"),
        serde_json::Value::Null,
        86,
    );
    let resp = r.get(&format!("/v2/repo/referrers/{subject}"));
    resp.expect(200);
    assert_eq!(resp.json()["manifests"][0]["digest"], rd.as_str());
}
