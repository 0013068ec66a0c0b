//! §Determining Support, §Endpoints and §Error Codes.

use super::*;

/// §Determining Support: "To check whether or not the registry implements
/// this specification, perform a `GET` request to the following endpoint:
/// `/v2/`. If the response is `200 OK`, then the registry implements this
/// specification." Our issue (and the Docker API the spec derives from:
/// "When a `200 OK` ... response is returned, the
/// "Docker-Distribution-API-Version" header SHOULD be set to
/// "registry/2.0"") asks for the version header.
#[test]
fn base_endpoint_answers_200_with_api_version() {
    let r = Reg::start();
    let resp = r.get("/v2/");
    resp.expect(200);
    assert_eq!(
        resp.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
}

/// §Legacy Docker support HTTP headers: clients "MAY encounter
/// Docker-specific headers, such as ... `Docker-Distribution-API-Version`";
/// berth sends it on every API response, errors included, so clients that
/// probe any endpoint recognise the API.
#[test]
fn api_version_header_on_other_responses() {
    let r = Reg::start();
    for resp in [
        r.get("/v2/_catalog"),
        r.get("/v2/nothing/tags/list"),
        r.head("/v2/nothing/manifests/latest"),
    ] {
        assert_eq!(
            resp.header("docker-distribution-api-version"),
            Some("registry/2.0"),
            "{resp:?}"
        );
    }
}

/// §Endpoints lists each endpoint with its methods; a method an endpoint
/// does not have is refused with `405 Method Not Allowed` and code
/// `UNSUPPORTED` ("the operation is unsupported"), never served as another
/// method and never a 5xx.
#[test]
fn method_not_on_endpoint_is_405_unsupported() {
    let r = Reg::start();
    let d = sha256(b"x");
    for (method, path) in [
        (Method::POST, "/v2/a/manifests/latest".to_string()),
        (Method::PATCH, format!("/v2/a/blobs/{d}")),
        (Method::PUT, format!("/v2/a/blobs/{d}")),
        (Method::DELETE, "/v2/a/tags/list".to_string()),
        (Method::PUT, format!("/v2/a/referrers/{d}")),
        (Method::GET, "/v2/a/blobs/uploads/".to_string()),
    ] {
        let resp = r.send(r.req(method.clone(), &path).body(Vec::new()));
        resp.expect_error(405, "UNSUPPORTED");
        assert!(resp.header("allow").is_some(), "{method} {path}: no Allow");
    }
}

/// §Error Codes: "A `4XX` response code from the registry MAY return a body
/// in any format. If the response body is in JSON format, it MUST have the
/// following format ... The `code` field MUST be one of the following".
/// One request per error code berth produces, each with its spec code.
#[test]
fn error_bodies_use_the_spec_format_and_codes() {
    let r = Reg::start();
    let missing = sha256(b"missing");
    r.get(&format!("/v2/a/blobs/{missing}"))
        .expect_error(404, "BLOB_UNKNOWN");
    r.get("/v2/a/manifests/latest")
        .expect_error(404, "MANIFEST_UNKNOWN");
    r.get("/v2/a/tags/list").expect_error(404, "NAME_UNKNOWN");
    r.get("/v2/A/tags/list").expect_error(400, "NAME_INVALID");
    r.get("/v2/a/blobs/sha256:123")
        .expect_error(400, "DIGEST_INVALID");
    r.get("/v2/a/blobs/uploads/0123456789abcdef")
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    r.put_manifest("a", "latest", OCI_MANIFEST, b"{")
        .expect_error(400, "MANIFEST_INVALID");
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &missing, b"missing"), "layers": [],
    });
    r.put_manifest("a", "latest", OCI_MANIFEST, m.to_string().as_bytes())
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    r.send(r.req(Method::DELETE, "/v2/a/tags/list"))
        .expect_error(405, "UNSUPPORTED");
}

/// §Endpoints: only the listed paths are API endpoints; anything else under
/// `/v2/` is `404 Not Found` with a spec error body.
#[test]
fn unknown_path_is_404() {
    let r = Reg::start();
    for path in ["/v2/a/unknown/x", "/v2/a", "/v2/a/blobs/"] {
        let resp = r.get(path);
        resp.expect_client_error(404);
    }
}
