//! Dedupe must not leak across the permission boundary: a caller without
//! rights on `secret/app` cannot learn, by any endpoint, whether a digest
//! or a tag exists there. Each probe is sent for content that exists and
//! for content that does not; the answers must be identical.

use super::{authed_client, AuthServer};
use crate::common::image::{push_image, random_image, Blob};
use crate::common::{client, sha256, OCI_INDEX, OCI_MANIFEST};
use reqwest::blocking::Client;
use reqwest::Method;

/// What a prober sees of an answer: status, body, and every header except
/// those that differ between any two requests (date, session ids).
fn seen(c: &Client, method: Method, url: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let resp = c
        .request(method, url)
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let mut headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| !["date", "location", "docker-upload-uuid"].contains(&k.as_str()))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    headers.sort();
    (status, headers, resp.bytes().unwrap().to_vec())
}

#[test]
fn a_repository_without_rights_reveals_nothing() {
    for mode in ["basic", "token"] {
        let s = AuthServer::start(mode);
        let url = s.url().to_string();
        let admin = s.client_as("admin", &["repository:secret/app:pull,push"]);
        let image = random_image(21, 2, 16 << 10);
        push_image(&admin, &url, "secret/app", "v1", &image);
        // A referrer of the image, so the referrers API has something to hide.
        let empty = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
        crate::common::image::push_blob(&admin, &url, "secret/app", &empty);
        let referrer = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/x-signature",
            "config": empty.descriptor(), "layers": [],
            "subject": { "mediaType": OCI_MANIFEST, "digest": image.digest, "size": image.manifest.len() },
        });
        let referrer = serde_json::to_vec(&referrer).unwrap();
        let resp = admin
            .put(format!(
                "{url}/v2/secret/app/manifests/{}",
                sha256(&referrer)
            ))
            .header("content-type", OCI_MANIFEST)
            .body(referrer)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let layer = image.layers[0].digest.clone();
        let missing = sha256(b"never pushed anywhere");

        // eve is a user with her own repositories, and no rights here; the
        // anonymous caller has none either. In token mode each asks for
        // the scopes it would need and gets what the policy allows.
        let eve = s.client_as(
            "eve",
            &[
                "repository:secret/app:pull,push,delete",
                "repository:eve/x:pull,push",
                "registry:catalog:*",
            ],
        );
        let anonymous = if mode == "token" {
            authed_client(&format!(
                "Bearer {}",
                s.token(None, &["repository:secret/app:pull", "registry:catalog:*"])
            ))
        } else {
            client()
        };
        if mode == "token" {
            let t = s.token(Some("eve"), &["repository:secret/app:pull,push,delete"]);
            assert_eq!(super::claims(&t)["access"], serde_json::json!([]));
        }
        for (who, c) in [("eve", &eve), ("anonymous", &anonymous)] {
            let probes: Vec<(Method, String, String)> = vec![
                (
                    Method::HEAD,
                    format!("blobs/{layer}"),
                    format!("blobs/{missing}"),
                ),
                (
                    Method::GET,
                    format!("blobs/{layer}"),
                    format!("blobs/{missing}"),
                ),
                (
                    Method::HEAD,
                    format!("manifests/{}", image.digest),
                    format!("manifests/{missing}"),
                ),
                (
                    Method::GET,
                    format!("manifests/{}", image.digest),
                    format!("manifests/{missing}"),
                ),
                (Method::HEAD, "manifests/v1".into(), "manifests/nope".into()),
                (Method::GET, "manifests/v1".into(), "manifests/nope".into()),
                (
                    Method::GET,
                    format!("referrers/{}", image.digest),
                    format!("referrers/{missing}"),
                ),
                (
                    Method::DELETE,
                    format!("blobs/{layer}"),
                    format!("blobs/{missing}"),
                ),
                (
                    Method::DELETE,
                    "manifests/v1".into(),
                    "manifests/nope".into(),
                ),
            ];
            for (method, there, absent) in probes {
                let a = seen(c, method.clone(), &format!("{url}/v2/secret/app/{there}"));
                let b = seen(c, method.clone(), &format!("{url}/v2/secret/app/{absent}"));
                assert_eq!(a, b, "{mode} {who}: {method} {there} vs {absent}");
                assert!(
                    a.0 == 401 || a.0 == 403,
                    "{mode} {who}: {method} {there}: {}",
                    a.0
                );
            }
            // The tags list of a repository that exists looks like one that
            // does not (a name of the same length).
            let a = seen(c, Method::GET, &format!("{url}/v2/secret/app/tags/list"));
            let b = seen(c, Method::GET, &format!("{url}/v2/secret/zzz/tags/list"));
            let strip = |x: &(u16, Vec<(String, String)>, Vec<u8>), name: &str| {
                let h: Vec<(String, String)> =
                    x.1.iter()
                        .map(|(k, v)| (k.clone(), v.replace(name, "R")))
                        .collect();
                (x.0, h, String::from_utf8_lossy(&x.2).replace(name, "R"))
            };
            assert_eq!(
                strip(&a, "secret/app"),
                strip(&b, "secret/zzz"),
                "{mode} {who}: tags"
            );
            // The catalog does not list it.
            let resp = c.get(format!("{url}/v2/_catalog")).send().unwrap();
            if resp.status().as_u16() == 200 {
                let v: serde_json::Value = resp.json().unwrap();
                assert!(!v.to_string().contains("secret"), "{mode} {who}: {v}");
            }
        }
        // Mounts into eve's own repository: from secret/app, and without
        // `from`, a digest that exists there opens a session just like one
        // that exists nowhere; nothing is linked.
        for query in [
            format!("mount={layer}&from=secret/app"),
            format!("mount={layer}"),
        ] {
            let a = seen(
                &eve,
                Method::POST,
                &format!("{url}/v2/eve/x/blobs/uploads/?{query}"),
            );
            let b = seen(
                &eve,
                Method::POST,
                &format!(
                    "{url}/v2/eve/x/blobs/uploads/?{}",
                    query.replace(&layer, &missing)
                ),
            );
            assert_eq!(a, b, "{mode}: POST ?{query}");
            assert_eq!(
                a.0, 202,
                "{mode}: POST ?{query} must fall back to a session"
            );
        }
        let resp = eve
            .head(format!("{url}/v2/eve/x/blobs/{layer}"))
            .send()
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            404,
            "{mode}: the mount linked the blob"
        );
    }
}

/// The other side of the boundary: where the caller may pull the source,
/// mounts work, with and without `from`.
#[test]
fn mounts_work_where_the_caller_may_pull() {
    for mode in ["basic", "token"] {
        let s = AuthServer::start(mode);
        let url = s.url().to_string();
        let alice = s.client_as(
            "alice",
            &[
                "repository:team/app:pull,push",
                "repository:team/copy:pull,push",
                "repository:team/auto:pull,push",
            ],
        );
        let image = random_image(22, 1, 8 << 10);
        push_image(&alice, &url, "team/app", "v1", &image);
        let layer = &image.layers[0].digest;
        for (repo, query) in [
            ("team/copy", format!("mount={layer}&from=team/app")),
            ("team/auto", format!("mount={layer}")),
        ] {
            let resp = alice
                .post(format!("{url}/v2/{repo}/blobs/uploads/?{query}"))
                .send()
                .unwrap();
            assert_eq!(resp.status().as_u16(), 201, "{mode} {repo}");
        }
    }
}
