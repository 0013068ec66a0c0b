//! Policies decide, per repository, who may pull, push and delete; a
//! refused write stores nothing.

use super::{authed_client, basic, AuthServer};
use crate::common::image::{pull_and_verify, push_image, random_image};
use crate::common::{client, metadata_dump, sha256, snapshot, OCI_MANIFEST};

fn state(s: &AuthServer) -> (std::collections::BTreeMap<String, (u64, String)>, String) {
    (
        snapshot(&s.berth.data_dir),
        metadata_dump(&s.berth.metadata_path()),
    )
}

/// bob may pull in `team/**` but not push or delete: every write he tries
/// is refused, and the data directory and the metadata stay exactly as
/// they were. In both modes.
#[test]
fn pull_only_user_is_refused_writes_and_nothing_is_stored() {
    for mode in ["basic", "token"] {
        let s = AuthServer::start(mode);
        let alice = s.client_as("alice", &["repository:team/app:pull,push"]);
        let image = random_image(7, 2, 32 << 10);
        push_image(&alice, s.url(), "team/app", "v1", &image);

        let bob = s.client_as("bob", &["repository:team/app:pull,push,delete"]);
        pull_and_verify(&bob, s.url(), "team/app", "v1");
        let before = state(&s);
        let other = random_image(8, 1, 16 << 10);
        let layer = &other.layers[0];
        let url = s.url();
        let tries = [
            bob.post(format!("{url}/v2/team/app/blobs/uploads/")),
            bob.post(format!(
                "{url}/v2/team/app/blobs/uploads/?digest={}",
                layer.digest
            ))
            .body(layer.bytes.clone()),
            bob.post(format!(
                "{url}/v2/team/app/blobs/uploads/?mount={}&from=team/app",
                image.layers[0].digest
            )),
            bob.put(format!("{url}/v2/team/app/manifests/v2"))
                .header("content-type", OCI_MANIFEST)
                .body(image.manifest.clone()),
            bob.delete(format!("{url}/v2/team/app/manifests/v1")),
            bob.delete(format!("{url}/v2/team/app/manifests/{}", image.digest)),
            bob.delete(format!(
                "{url}/v2/team/app/blobs/{}",
                image.layers[0].digest
            )),
        ];
        for req in tries {
            let resp = req.send().unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().unwrap();
            let code = body["errors"][0]["code"].as_str().unwrap_or("").to_string();
            match mode {
                // A known user without the right: 403 DENIED.
                "basic" => assert_eq!((status, code.as_str()), (403, "DENIED"), "{body}"),
                // A token without the scope: 401, so the client may ask for more.
                _ => assert_eq!((status, code.as_str()), (401, "UNAUTHORIZED"), "{body}"),
            }
        }
        assert!(
            before == state(&s),
            "{mode}: a refused write changed the store"
        );
        // What alice pushed is all still there.
        pull_and_verify(&bob, s.url(), "team/app", "v1");
    }
}

/// Anonymous callers pull `public/**` and nothing else; `/v2/` asks them
/// to log in so that clients learn the scheme.
#[test]
fn anonymous_callers_read_public_repositories_only() {
    for mode in ["basic", "token"] {
        let s = AuthServer::start(mode);
        let alice = s.client_as(
            "alice",
            &[
                "repository:public/web:pull,push",
                "repository:team/app:pull,push",
            ],
        );
        let image = random_image(9, 1, 8 << 10);
        push_image(&alice, s.url(), "public/web", "v1", &image);
        push_image(&alice, s.url(), "team/app", "v1", &image);

        let anon = if mode == "token" {
            authed_client(&format!(
                "Bearer {}",
                s.token(
                    None,
                    &["repository:public/web:pull", "repository:team/app:pull"]
                )
            ))
        } else {
            client()
        };
        pull_and_verify(&anon, s.url(), "public/web", "v1");
        let resp = anon
            .get(format!("{}/v2/team/app/manifests/v1", s.url()))
            .header("accept", OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{mode}");
        // Without any credentials the answer carries the challenge.
        let resp = client()
            .get(format!("{}/v2/team/app/manifests/v1", s.url()))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        if mode == "token" {
            assert!(challenge.starts_with("Bearer realm=\""), "{challenge}");
            assert!(challenge.contains("service=\"berth\""), "{challenge}");
            assert!(
                challenge.contains("scope=\"repository:team/app:pull\""),
                "{challenge}"
            );
        } else {
            assert_eq!(challenge, "Basic realm=\"berth\"");
        }
        let resp = client().get(format!("{}/v2/", s.url())).send().unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        assert!(resp.headers().contains_key("www-authenticate"));
        // Anonymous pushes are refused even where anonymous may pull.
        let resp = anon
            .post(format!("{}/v2/public/web/blobs/uploads/", s.url()))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{mode}");
    }
}

/// The catalog lists only what the caller may pull; admins see all.
#[test]
fn catalog_lists_only_pullable_repositories() {
    for mode in ["basic", "token"] {
        let s = AuthServer::start(mode);
        let admin = s.client_as(
            "admin",
            &[
                "repository:public/web:push",
                "repository:team/app:push",
                "repository:secret/app:push",
                "repository:eve/tools:push",
            ],
        );
        let image = random_image(10, 1, 4 << 10);
        for repo in ["public/web", "team/app", "secret/app", "eve/tools"] {
            push_image(&admin, s.url(), repo, "v1", &image);
        }
        let list = |c: &reqwest::blocking::Client| -> Vec<String> {
            let resp = c.get(format!("{}/v2/_catalog", s.url())).send().unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{mode}");
            let v: serde_json::Value = resp.json().unwrap();
            v["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect()
        };
        let catalog = ["registry:catalog:*"];
        assert_eq!(
            list(&s.client_as("admin", &catalog)),
            ["eve/tools", "public/web", "secret/app", "team/app"]
        );
        assert_eq!(
            list(&s.client_as("bob", &catalog)),
            ["public/web", "team/app"]
        );
        assert_eq!(
            list(&s.client_as("eve", &catalog)),
            ["eve/tools", "public/web"]
        );
        // Paging through a filtered catalog gives the same, one at a time.
        let bob = s.client_as("bob", &catalog);
        let resp = bob
            .get(format!("{}/v2/_catalog?n=1", s.url()))
            .send()
            .unwrap();
        let link = resp.headers()["link"].to_str().unwrap().to_string();
        let v: serde_json::Value = resp.json().unwrap();
        assert_eq!(v["repositories"], serde_json::json!(["public/web"]));
        assert!(link.contains("last=public%2Fweb"), "{link}");
        if mode == "basic" {
            assert_eq!(list(&client()), ["public/web"]);
        }
    }
}

/// A filtered catalog page that stops among hidden repositories (the scan
/// budget, `limits.catalog_scan`, ran out) links on with a sealed cursor:
/// following the links lists exactly what the caller may pull, no `Link`
/// names a hidden repository, and a forged cursor is refused.
#[test]
fn catalog_links_never_name_hidden_repositories() {
    let s = AuthServer::start_with("basic", "[limits]\ncatalog_scan = 3\n", &[]);
    let admin = s.client_as("admin", &[]);
    let image = random_image(11, 1, 1 << 10);
    let hidden: Vec<String> = (0..8).map(|i| format!("secret/app-{i}")).collect();
    for repo in hidden
        .iter()
        .map(String::as_str)
        .chain(["public/web", "team/app"])
    {
        push_image(&admin, s.url(), repo, "v1", &image);
    }
    let bob = s.client_as("bob", &[]);
    // Paging, sealed cursors included, is a read: it changes nothing.
    let before = (
        crate::common::snapshot(&s.berth.data_dir),
        crate::common::metadata_dump(&s.berth.metadata_path()),
    );
    let mut url = format!("{}/v2/_catalog?n=5", s.url());
    let (mut seen, mut sealed) = (Vec::new(), 0);
    for _ in 0..20 {
        let resp = bob.get(&url).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        let link = resp
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string());
        let v: serde_json::Value = resp.json().unwrap();
        for r in v["repositories"].as_array().unwrap() {
            seen.push(r.as_str().unwrap().to_string());
        }
        let Some(link) = link else { break };
        let decoded = link.replace("%2F", "/").replace("%2f", "/");
        assert!(!decoded.contains("secret"), "{link}");
        sealed += usize::from(link.contains("last=~") || link.contains("last=%7E"));
        let start = link.find('<').unwrap() + 1;
        let end = link.find('>').unwrap();
        url = format!("{}{}", s.url(), &link[start..end]);
    }
    assert_eq!(seen, ["public/web", "team/app"]);
    assert!(sealed > 0, "no page stopped on a hidden name");
    assert_eq!(
        before.1,
        crate::common::metadata_dump(&s.berth.metadata_path()),
        "catalog paging changed the metadata"
    );
    let mut files = crate::common::snapshot(&s.berth.data_dir);
    let mut old = before.0;
    for f in [&mut files, &mut old] {
        f.retain(|k, _| !k.starts_with("metadata.db"));
    }
    assert_eq!(old, files, "catalog paging changed the data directory");
    // A cursor berth did not make is a client error, not a way in.
    let resp = bob
        .get(format!(
            "{}/v2/_catalog?last=~AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            s.url()
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

/// Basic credentials work in token mode too (curl -u, scripts), with the
/// same policy; and a wrong password is refused in both.
#[test]
fn basic_credentials_and_wrong_passwords() {
    for mode in ["basic", "token"] {
        let s = AuthServer::start(mode);
        let alice = authed_client(&basic("alice", "alice-pw"));
        let blob = b"hello".to_vec();
        let resp = alice
            .post(format!(
                "{}/v2/team/app/blobs/uploads/?digest={}",
                s.url(),
                sha256(&blob)
            ))
            .body(blob)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "{mode}");
        let wrong = authed_client(&basic("alice", "nope"));
        let resp = wrong.get(format!("{}/v2/", s.url())).send().unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{mode}");
        let v: serde_json::Value = resp.json().unwrap();
        assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED");
        let unknown = authed_client(&basic("mallory", "x"));
        let resp = unknown.get(format!("{}/v2/", s.url())).send().unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{mode}");
    }
}
