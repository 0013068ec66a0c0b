//! Real clients against a registry that requires logins, in both modes
//! (HTTP Basic, and bearer tokens from berth's own endpoint): docker login,
//! push and pull; skopeo and podman with credentials; oras-py. A user with
//! pull rights only is refused a push, and nothing is stored.

use super::docker::{pushed_digest, Dockerd};
use super::{have_python_module, output, run, run_text, ContainersEnv};
use crate::auth::{password, AuthServer};
use crate::common::image::{random_image, write_oci_layout};
use crate::common::{have_tool, metadata_dump, snapshot, OCI_MANIFEST};
use std::process::Command;

type State = (std::collections::BTreeMap<String, (u64, String)>, String);

fn state(s: &AuthServer) -> State {
    (
        snapshot(&s.berth.data_dir),
        metadata_dump(&s.berth.metadata_path()),
    )
}

/// The manifest digest stored under `repo:tag`, as the admin sees it.
fn stored_digest(s: &AuthServer, repo: &str, tag: &str) -> Option<String> {
    let c = s.client_as("admin", &[&format!("repository:{repo}:pull")]);
    let resp = c
        .head(format!("{}/v2/{repo}/manifests/{tag}", s.url()))
        .header(
            "accept",
            format!("{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"),
        )
        .send()
        .unwrap();
    (resp.status().as_u16() == 200).then(|| {
        resp.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_string()
    })
}

/// A failed client run whose output says the registry refused it.
#[track_caller]
fn refused(cmd: &mut Command, what: &str) {
    let o = output(cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
    .to_lowercase();
    assert!(!o.status.success(), "{what} succeeded:\n{text}");
    assert!(
        [
            "denied",
            "unauthorized",
            "authentication required",
            "insufficient_scope",
            "403",
            "401",
            "no basic auth credentials"
        ]
        .iter()
        .any(|w| text.contains(w)),
        "{what} failed for another reason:\n{text}"
    );
}

#[test]
fn docker_login_push_pull_in_both_modes() {
    if !have_tool("dockerd") || !have_tool("docker") {
        return;
    }
    let dockerd = Dockerd::start();
    let docker = || dockerd.docker();
    let context = dockerd.path("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("hello.txt"), "pushed with a login\n").unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    for mode in ["basic", "token"] {
        let s = AuthServer::start(mode);
        let addr = s.berth.addr.clone();
        let reference = format!("{addr}/team/docker:v1");
        run(docker()
            .args(["build", "--quiet", "--tag", &reference])
            .arg(&context));

        // Not logged in: refused.
        refused(docker().args(["push", &reference]), "anonymous docker push");
        run(docker().args(["login", "-u", "alice", "-p", password("alice"), &addr]));
        let pushed = pushed_digest(&run_text(docker().args(["push", &reference])));
        assert_eq!(
            stored_digest(&s, "team/docker", "v1").as_deref(),
            Some(pushed.as_str()),
            "{mode}"
        );
        run(docker().args(["rmi", &reference]));
        run(docker().args(["pull", &reference]));
        run(docker().args(["logout", &addr]));

        // bob may pull but not push: the push is refused, nothing stored.
        run(docker().args(["login", "-u", "bob", "-p", password("bob"), &addr]));
        let v2 = format!("{addr}/team/docker:v2");
        run(docker().args(["tag", &reference, &v2]));
        let before = state(&s);
        refused(docker().args(["push", &v2]), "bob's docker push");
        assert!(
            before == state(&s),
            "{mode}: a refused docker push changed the store"
        );
        assert_eq!(stored_digest(&s, "team/docker", "v2"), None);
        run(docker().args(["rmi", &reference, &v2]));
        run(docker().args(["pull", &reference]));
        run(docker().args(["logout", &addr]));
        run(docker().args(["rmi", &reference]));
        refused(docker().args(["pull", &reference]), "anonymous docker pull");
    }
}

#[test]
fn skopeo_and_podman_with_credentials_in_both_modes() {
    if !have_tool("skopeo") || !have_tool("podman") {
        return;
    }
    for mode in ["basic", "token"] {
        let s = AuthServer::start(mode);
        let addr = s.berth.addr.clone();
        let env = ContainersEnv::new();
        let image = random_image(0xa17, 2, 64 << 10);
        let layout = env.path("layout");
        write_oci_layout(&layout, &[("v1", &image)]);
        let repo = format!("docker://{addr}/team/skopeo");
        let creds = |u: &str| format!("{u}:{}", password(u));

        refused(
            env.skopeo()
                .args(["copy", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:v1", layout.display()))
                .arg(format!("{repo}:v1")),
            "anonymous skopeo copy",
        );
        run(env
            .skopeo()
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                &creds("alice"),
            ])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("{repo}:v1")));
        assert_eq!(
            stored_digest(&s, "team/skopeo", "v1"),
            Some(image.digest.clone())
        );
        let raw = run(env
            .skopeo()
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                &creds("bob"),
            ])
            .arg(format!("{repo}:v1")));
        assert_eq!(raw, image.manifest, "{mode}: inspect --raw as bob");
        let tags = run_text(
            env.skopeo()
                .args(["list-tags", "--tls-verify=false", "--creds", &creds("bob")])
                .arg(&repo),
        );
        assert!(tags.contains("\"v1\""), "{tags}");
        let before = state(&s);
        refused(
            env.skopeo()
                .args([
                    "copy",
                    "--dest-tls-verify=false",
                    "--dest-creds",
                    &creds("bob"),
                ])
                .arg(format!("oci:{}:v1", layout.display()))
                .arg(format!("{repo}:v2")),
            "bob's skopeo copy",
        );
        refused(
            env.skopeo()
                .args(["delete", "--tls-verify=false", "--creds", &creds("bob")])
                .arg(format!("{repo}:v1")),
            "bob's skopeo delete",
        );
        assert!(
            before == state(&s),
            "{mode}: refused skopeo writes changed the store"
        );

        // podman: login, pull, push under another name, logout.
        run(env.cmd("podman").args([
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            password("alice"),
            &addr,
        ]));
        run(env.cmd("podman").args([
            "pull",
            "--tls-verify=false",
            &format!("{addr}/team/skopeo:v1"),
        ]));
        run(env.cmd("podman").args([
            "tag",
            &format!("{addr}/team/skopeo:v1"),
            &format!("{addr}/team/podman:v1"),
        ]));
        run(env.cmd("podman").args([
            "push",
            "--tls-verify=false",
            &format!("{addr}/team/podman:v1"),
        ]));
        assert!(
            stored_digest(&s, "team/podman", "v1").is_some(),
            "{mode}: podman push"
        );
        run(env.cmd("podman").args(["logout", &addr]));

        // alice may delete.
        run(env
            .skopeo()
            .args(["delete", "--tls-verify=false", "--creds", &creds("alice")])
            .arg(format!("{repo}:v1")));
        assert_eq!(stored_digest(&s, "team/skopeo", "v1"), None);
    }
}

/// oras-py pushes an artifact with a subject and reads it back, with a
/// login. In token mode the pull goes through oras-py's token backend; its
/// push uses the basic backend, which berth accepts in token mode too:
/// oras-py 0.2's token backend keeps the pull-scoped token of its first
/// request (a blob HEAD) for the upload, and asks for a new one only after
/// a 403, where the token scheme answers 401 `insufficient_scope`.
#[test]
fn oras_with_credentials_in_both_modes() {
    if !have_python_module("oras") {
        return;
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/oras_referrer.py");
    for (mode, pull_backend) in [("basic", "basic"), ("token", "token")] {
        let s = AuthServer::start(mode);
        let alice = s.client_as("alice", &["repository:team/oras:pull,push"]);
        let image = random_image(0x0a5, 1, 16 << 10);
        crate::common::image::push_image(&alice, s.url(), "team/oras", "v1", &image);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sbom.json"), "{\"sbom\": true}\n").unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let oras = |action: &str, backend: &str| {
            let out = dir.path().join(format!("{action}.json"));
            let mut c = Command::new("python3");
            c.arg(&script)
                .arg(action)
                .args([
                    "--registry",
                    &s.berth.addr,
                    "--repo",
                    "team/oras",
                    "--tag",
                    "sbom",
                ])
                .args(["--subject-digest", &image.digest])
                .args(["--subject-size", &image.manifest.len().to_string()])
                .arg("--file")
                .arg(dir.path().join("sbom.json"))
                .args(["--file-media-type", "application/vnd.berth.e2e.sbom+json"])
                .arg("--config")
                .arg(dir.path().join("config.json"))
                .args([
                    "--artifact-type",
                    "application/vnd.berth.e2e.sbom.config+json",
                ])
                .args(["--username", "alice", "--auth-backend", backend])
                .env("BERTH_E2E_PASSWORD", password("alice"))
                .arg("--out")
                .arg(&out)
                .current_dir(dir.path())
                .env("HOME", dir.path())
                .env("PYTHONDONTWRITEBYTECODE", "1");
            run(&mut c);
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&out).unwrap()).unwrap()
        };
        let pushed = oras("push", "basic");
        assert_eq!(pushed["push_status"], 201, "{mode}: {pushed}");
        let pulled = oras("pull", pull_backend);
        for r in [&pushed, &pulled] {
            assert_eq!(r["referrers_status"], 200, "{mode}: {r}");
            assert_eq!(
                r["referrers"]["manifests"].as_array().unwrap().len(),
                1,
                "{mode}: {r}"
            );
            assert_eq!(
                r["pulled"]["sbom.json"],
                hex::encode("{\"sbom\": true}\n"),
                "{mode}: {r}"
            );
        }
    }
}
