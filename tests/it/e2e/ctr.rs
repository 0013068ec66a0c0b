//! containerd's `ctr`, against a private containerd (own root, state and
//! socket in a temp dir): pull from berth with `--plain-http`, check every
//! digest in containerd's content store, push to a second repository.

use super::{get_blobs, get_manifest, requests_since, run, run_text, stop_daemon, wait_ready};
use crate::common::image::{push_image, random_image};
use crate::common::{have_tool, Berth};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Every path containerd would otherwise take from /etc, /var, /run
        // or /opt points into the temp dir.
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [debug]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            opt = d.join("opt").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let mut c = Containerd { child, dir };
        let d = c.dir.path().to_owned();
        wait_ready(
            &mut c.child,
            &d.join("containerd.log"),
            "containerd",
            || {
                d.join("containerd.sock").exists()
                    && ctr_command(&d)
                        .arg("version")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false)
            },
        );
        c
    }

    fn ctr(&self) -> Command {
        ctr_command(self.dir.path())
    }

    /// `ctr images pull` over plain HTTP, unpacking with the native
    /// snapshotter (no overlayfs needed), as `user` ("name:password").
    fn pull(&self, reference: &str, user: Option<&str>) -> Command {
        let mut c = self.ctr();
        c.args(["images", "pull", "--plain-http", "--snapshotter", "native"]);
        if let Some(u) = user {
            c.args(["--user", u]);
        }
        c.arg(reference);
        c
    }
}

fn ctr_command(dir: &Path) -> Command {
    let mut c = Command::new("ctr");
    c.arg("--address")
        .arg(dir.join("containerd.sock"))
        .args(["--namespace", "berth-e2e"])
        .env_remove("CONTAINERD_ADDRESS")
        .env_remove("CONTAINERD_NAMESPACE")
        .env_remove("CONTAINERD_SNAPSHOTTER");
    c
}

impl Drop for Containerd {
    fn drop(&mut self) {
        stop_daemon(&mut self.child);
    }
}

#[test]
fn ctr_pull_push_plain_http() {
    if !have_tool("ctr") || !have_tool("containerd") {
        return;
    }
    let b = Berth::start();
    let image = random_image(0xc7d, 2, 100 << 10);
    push_image(&b.client(), &b.url, "e2e/ctr/src", "v1", &image);
    let containerd = Containerd::start();
    let ctr = || containerd.ctr();
    let src = format!("{}/e2e/ctr/src:v1", b.addr);

    run(&mut containerd.pull(&src, None));
    let listed = run_text(ctr().args(["images", "ls"]));
    let line = listed
        .lines()
        .find(|l| l.starts_with(&src))
        .unwrap_or_else(|| panic!("{src} not listed:\n{listed}"));
    assert!(line.contains(&image.digest), "{line}");
    // Every blob is in containerd's content store with our bytes.
    assert_eq!(
        run(ctr().args(["content", "get", &image.digest])),
        image.manifest
    );
    for blob in image.blobs() {
        assert_eq!(
            run(ctr().args(["content", "get", &blob.digest])),
            blob.bytes
        );
    }

    // Push to a second repository in berth: ctr mounts every blob.
    let dst = format!("{}/e2e/ctr/dst:v1", b.addr);
    let mark = b.log_mark();
    run(ctr().args(["images", "push", "--plain-http", &dst, &src]));
    let mounts = requests_since(&b, mark)
        .into_iter()
        .filter(|r| {
            r.method == "POST" && r.path == "/v2/e2e/ctr/dst/blobs/uploads/" && r.status == 201
        })
        .count();
    assert_eq!(mounts, image.blobs().count(), "config and layers mounted");
    let served = get_manifest(&b, "e2e/ctr/dst", "v1");
    assert_eq!(served.bytes, image.manifest);
    get_blobs(&b, "e2e/ctr/dst", &served);
}

/// ctr with `--user`, in both auth modes: in token mode containerd asks
/// berth's token endpoint with the OAuth2 password grant (a POST).
#[test]
fn ctr_with_credentials_in_both_modes() {
    if !have_tool("ctr") || !have_tool("containerd") {
        return;
    }
    use crate::auth::{password, AuthServer};
    let containerd = Containerd::start();
    let ctr = || containerd.ctr();
    for mode in ["basic", "token"] {
        let s = AuthServer::start(mode);
        let alice = s.client_as("alice", &["repository:team/ctr:pull,push"]);
        let image = random_image(0xc7e, 1, 32 << 10);
        push_image(&alice, s.url(), "team/ctr", "v1", &image);
        let src = format!("{}/team/ctr:v1", s.berth.addr);
        let user = |u: &str| format!("{u}:{}", password(u));
        let o = super::output(&mut containerd.pull(&src, None));
        assert!(!o.status.success(), "{mode}: anonymous ctr pull succeeded");
        run(&mut containerd.pull(&src, Some(&user("bob"))));
        let dst = format!("{}/team/ctr-copy:v1", s.berth.addr);
        let o = super::output(ctr().args([
            "images",
            "push",
            "--plain-http",
            "--user",
            &user("bob"),
            &dst,
            &src,
        ]));
        assert!(!o.status.success(), "{mode}: bob's ctr push succeeded");
        let mark = s.berth.log_mark();
        run(ctr().args([
            "images",
            "push",
            "--plain-http",
            "--user",
            &user("alice"),
            &dst,
            &src,
        ]));
        if mode == "token" {
            let posted = requests_since(&s.berth, mark)
                .iter()
                .any(|r| r.method == "POST" && r.path == "/auth/token" && r.status == 200);
            assert!(posted, "containerd did not use the password grant");
        }
        let check = s.client_as("alice", &["repository:team/ctr-copy:pull"]);
        crate::common::image::pull_and_verify(&check, s.url(), "team/ctr-copy", "v1");
        run(ctr().args(["images", "rm", &src, &dst]));
    }
}
