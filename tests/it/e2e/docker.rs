//! The Docker engine: a private `dockerd` (own data, exec root and socket,
//! vfs storage, no iptables or bridge) builds an image, pushes it to berth
//! (Docker schema 2), removes it, pulls it back and gives the file back.

use super::{get_blobs, get_manifest, layer_files, run, run_text, stop_daemon, wait_ready};
use super::{LoggedRequest, DOCKER_MANIFEST};
use crate::common::{have_tool, Berth};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A private Docker daemon, stopped (by its PID) and its files removed when
/// dropped, also when the test fails.
pub(super) struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    pub(super) fn start() -> Dockerd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("config")).unwrap();
        // Our own daemon.json instead of /etc/docker's; it only moves the
        // daemon's identity key, which dockerd 20.10 otherwise writes to
        // /etc/docker/key.json (there is no flag for it).
        let config = serde_json::json!({ "deprecated-key-path": d.join("key.json") });
        std::fs::write(d.join("daemon.json"), config.to_string()).unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args([
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-masq=false",
            ])
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let mut dockerd = Dockerd { child, dir };
        let d = dockerd.dir.path().to_owned();
        wait_ready(
            &mut dockerd.child,
            &d.join("dockerd.log"),
            "dockerd",
            || {
                d.join("docker.sock").exists()
                    && docker_command(&d)
                        .arg("version")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false)
            },
        );
        dockerd
    }

    pub(super) fn docker(&self) -> Command {
        docker_command(self.dir.path())
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The docker CLI talking to the daemon in `dir`, with its own config dir.
fn docker_command(dir: &Path) -> Command {
    let mut c = Command::new("docker");
    c.env(
        "DOCKER_HOST",
        format!("unix://{}", dir.join("docker.sock").display()),
    )
    .env("DOCKER_CONFIG", dir.join("config"))
    .env("DOCKER_BUILDKIT", "0")
    .env_remove("DOCKER_CONTEXT")
    .env_remove("DOCKER_TLS_VERIFY")
    .env_remove("DOCKER_CERT_PATH");
    c
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        stop_daemon(&mut self.child);
        // dockerd stops the containerd it started; if it was killed instead,
        // that containerd is still ours to stop.
        let pidfile = self.dir.path().join("exec/containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        {
            // Only if that PID is still the containerd in our directory.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = self.dir.path().to_string_lossy();
            if String::from_utf8_lossy(&cmdline).contains(ours.as_ref()) {
                super::signal(pid, "KILL");
            }
        }
    }
}

/// The manifest digest `docker push` reports.
pub(super) fn pushed_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in docker push output:\n{out}"))
        .to_string()
}

#[test]
fn docker_build_push_pull() {
    if !have_tool("dockerd") || !have_tool("docker") {
        return;
    }
    let b = Berth::start();
    let dockerd = Dockerd::start();
    let docker = || dockerd.docker();

    let content = format!("built by docker for berth {}\n", b.addr);
    let context = dockerd.path("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("hello.txt"), &content).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\nENV MADE_BY=docker\n",
    )
    .unwrap();
    let reference = format!("{}/e2e/docker/hello:v1", b.addr);

    run(docker()
        .args(["build", "--quiet", "--tag", &reference])
        .arg(&context));
    let id = run_text(docker().args(["image", "inspect", "--format", "{{.Id}}", &reference]));
    let pushed = pushed_digest(&run_text(docker().args(["push", &reference])));

    // berth holds a Docker schema 2 manifest with the built config and one
    // layer carrying our file.
    let served = get_manifest(&b, "e2e/docker/hello", "v1");
    assert_eq!(served.media_type, DOCKER_MANIFEST);
    assert_eq!(served.digest, pushed);
    assert_eq!(served.config_digest(), id);
    let blobs = get_blobs(&b, "e2e/docker/hello", &served);
    let layers = served.layer_digests();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layer_files(&blobs[&layers[0]])
            .get("hello.txt")
            .map(Vec::as_slice),
        Some(content.as_bytes())
    );

    // Remove it locally; pull it back from berth.
    run(docker().args(["rmi", &reference]));
    let o = super::output(docker().args(["image", "inspect", &reference]));
    assert!(!o.status.success(), "image still present after rmi");
    let mark = b.log_mark();
    run(docker().args(["pull", &reference]));
    let fetched: Vec<LoggedRequest> = super::requests_since(&b, mark)
        .into_iter()
        .filter(|r| r.method == "GET" && r.status == 200 && r.path.contains("/blobs/"))
        .collect();
    for digest in served.blob_digests() {
        assert!(
            fetched.iter().any(|r| r.path.ends_with(&digest)),
            "docker pull fetched {digest} from berth: {fetched:#?}"
        );
    }
    assert_eq!(
        run_text(docker().args(["image", "inspect", "--format", "{{.Id}}", &reference])),
        id
    );
    let repo_digests = run_text(docker().args([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &reference,
    ]));
    assert!(
        repo_digests.contains(&format!("{}/e2e/docker/hello@{pushed}", b.addr)),
        "{repo_digests}"
    );

    // The file, through a created (never started) container.
    let container = run_text(docker().args(["create", &reference, "/none"]));
    let tar = run(docker().args(["cp", &format!("{container}:/hello.txt"), "-"]));
    run(docker().args(["rm", &container]));
    let files = layer_files(&tar);
    assert_eq!(
        files.get("hello.txt").map(Vec::as_slice),
        Some(content.as_bytes())
    );

    // And through `docker save`, whose archive holds the same layer.
    let saved = run(docker().args(["save", &reference]));
    let archive = layer_files(&saved);
    let layer_tars: Vec<&Vec<u8>> = archive
        .iter()
        .filter(|(p, _)| p.ends_with("layer.tar"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(layer_tars.len(), 1);
    assert_eq!(
        layer_files(layer_tars[0])
            .get("hello.txt")
            .map(Vec::as_slice),
        Some(content.as_bytes())
    );
}
