//! End-to-end tests: the real clients people use (skopeo, podman, buildah,
//! the Docker engine, containerd's ctr, oras-py) against the real `berth`
//! binary on 127.0.0.1.
//!
//! Each test starts its own registry and keeps every client's state
//! (storage, configuration, auth files, daemons) in its own temp dir, so the
//! tests are independent and run in parallel. A missing client skips its
//! test with a message, or fails it when `BERTH_E2E_REQUIRED=1` (as in CI);
//! `.ci/install-deps.sh` installs them all.
//!
//! - `skopeo`: copy in and out of OCI layouts, list-tags, inspect, delete,
//!   cross-repository mount.
//! - `podman`, `buildah`: push and pull through containers/storage.
//! - `docker`: a private `dockerd`: build, push, remove, pull, read the file.
//! - `ctr`: a private `containerd`: pull and push with `--plain-http`.
//! - `oras`: an artifact with a `subject`, and the referrers API.

mod auth;
mod buildah;
mod ctr;
mod docker;
mod oras;
mod podman;
mod skopeo;

use crate::common::{sha256, Berth};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Every manifest type a client may push.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A client that hangs is killed after this long so the suite ends; this is
/// a safety net, not an assertion on speed.
const HANG_LIMIT: Duration = Duration::from_secs(600);

/// Run a client to completion and return its output, whatever its exit code.
pub fn output(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > HANG_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} hung; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Run a client; panic with its output unless it succeeds. Returns stdout.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let shown = format!("{cmd:?}");
    let o = output(cmd);
    if !o.status.success() {
        panic!(
            "{shown} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    o.stdout
}

/// [`run`], stdout as trimmed text.
pub fn run_text(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd)).unwrap().trim().to_string()
}

/// Whether `python3` can import `module`; like [`crate::common::have_tool`],
/// a missing module skips the test, or fails it under `BERTH_E2E_REQUIRED=1`.
pub fn have_python_module(module: &str) -> bool {
    if !crate::common::have_tool("python3") {
        return false;
    }
    let found = Command::new("python3")
        .arg("-c")
        .arg(format!("import {module}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("BERTH_E2E_REQUIRED").as_deref() == Ok("1") {
            panic!("python module {module} is required (BERTH_E2E_REQUIRED=1) but not installed");
        }
        eprintln!("SKIP: python module {module} not installed");
    }
    found
}

/// Send a signal to a process we started.
pub use crate::common::send_signal as signal;

/// SIGTERM a daemon we started and reap it; SIGKILL if it has not gone
/// within a minute (a safety net for a wedged daemon, not a timing check).
pub fn stop_daemon(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    signal(child.id(), "TERM");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Poll `ready` until it holds, failing with `what` and the daemon's log if
/// the daemon exits first (or after a generous limit).
pub fn wait_ready(child: &mut Child, log: &Path, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    loop {
        if ready() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{what} exited ({status}) before it was ready; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if started.elapsed() > Duration::from_secs(120) {
            panic!(
                "{what} did not become ready; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A manifest as berth serves it.
pub struct Served {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
    pub json: serde_json::Value,
}

impl Served {
    /// Digests of the config and the layers, config first.
    pub fn blob_digests(&self) -> Vec<String> {
        let mut out = vec![self.json["config"]["digest"].as_str().unwrap().to_string()];
        for l in self.json["layers"].as_array().cloned().unwrap_or_default() {
            out.push(l["digest"].as_str().unwrap().to_string());
        }
        out
    }

    pub fn config_digest(&self) -> String {
        self.json["config"]["digest"].as_str().unwrap().to_string()
    }

    pub fn layer_digests(&self) -> Vec<String> {
        self.blob_digests()[1..].to_vec()
    }
}

/// GET a manifest of any type; asserts 200 and that the body hashes to the
/// `Docker-Content-Digest` berth sent.
pub fn get_manifest(b: &Berth, repo: &str, reference: &str) -> Served {
    let resp = b
        .client()
        .get(b.v2(&format!("{repo}/manifests/{reference}")))
        .header("accept", ACCEPT_ALL)
        .send()
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "GET manifest {repo}:{reference}"
    );
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let media_type = header("content-type");
    let digest = header("docker-content-digest");
    let bytes = resp.bytes().unwrap().to_vec();
    assert_eq!(sha256(&bytes), digest, "{repo}:{reference} body vs digest");
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        json["mediaType"].as_str().unwrap_or(&media_type),
        media_type,
        "Content-Type is the manifest's mediaType"
    );
    Served {
        media_type,
        digest,
        bytes,
        json,
    }
}

/// The status of a manifest GET.
pub fn manifest_status(b: &Berth, repo: &str, reference: &str) -> u16 {
    b.client()
        .get(b.v2(&format!("{repo}/manifests/{reference}")))
        .header("accept", ACCEPT_ALL)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// GET every blob a manifest names from `repo`; asserts each hashes to its
/// digest and has the size the manifest says.
pub fn get_blobs(b: &Berth, repo: &str, m: &Served) -> BTreeMap<String, Vec<u8>> {
    let mut descs = vec![m.json["config"].clone()];
    descs.extend(m.json["layers"].as_array().cloned().unwrap_or_default());
    let mut out = BTreeMap::new();
    for d in descs {
        let digest = d["digest"].as_str().unwrap();
        let resp = b
            .client()
            .get(b.v2(&format!("{repo}/blobs/{digest}")))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "GET blob {digest} in {repo}");
        let bytes = resp.bytes().unwrap().to_vec();
        assert_eq!(sha256(&bytes), digest, "blob {digest} in {repo}");
        assert_eq!(
            bytes.len() as u64,
            d["size"].as_u64().unwrap(),
            "size of {digest}"
        );
        out.insert(digest.to_string(), bytes);
    }
    out
}

/// The regular files in a layer (gzip or plain tar), by path without a
/// leading `/` or `./`.
pub fn layer_files(layer: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let tar: Vec<u8> = if layer.starts_with(&[0x1f, 0x8b]) {
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(layer)
            .read_to_end(&mut v)
            .unwrap();
        v
    } else {
        layer.to_vec()
    };
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().unwrap().to_string_lossy().to_string();
        let path = path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.insert(path, data);
    }
    out
}

/// One request from berth's request log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// The requests berth logged in `log` (text format: `method=POST
/// path="/v2/..." status=201`).
pub fn logged_requests(log: &str) -> Vec<LoggedRequest> {
    fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
        let start = line.find(&format!(" {key}="))? + key.len() + 2;
        let rest = &line[start..];
        if let Some(quoted) = rest.strip_prefix('"') {
            quoted.split('"').next()
        } else {
            rest.split(' ').next()
        }
    }
    log.lines()
        .filter(|l| l.contains("berth::request"))
        .filter_map(|l| {
            Some(LoggedRequest {
                method: field(l, "method")?.to_string(),
                path: field(l, "path")?.to_string(),
                status: field(l, "status")?.parse().ok()?,
            })
        })
        .collect()
}

/// The requests berth logged after `mark` (a length of [`Berth::logs`]).
pub fn requests_since(b: &Berth, mark: usize) -> Vec<LoggedRequest> {
    b.sync_log();
    logged_requests(&b.logs()[mark..])
}

/// Configuration for the containers/* tools (skopeo, podman, buildah) kept
/// in a temp dir: vfs storage, no registries to search, a private auth file
/// and an accept-anything signature policy.
pub struct ContainersEnv {
    pub dir: tempfile::TempDir,
}

impl ContainersEnv {
    pub fn new() -> ContainersEnv {
        let dir = lowercase_tempdir();
        let d = dir.path();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                d.join("graph").display(),
                d.join("run").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[engine]\nevents_logger = \"file\"\nevents_logfile_path = \"{}\"\n\
                 cgroup_manager = \"cgroupfs\"\ntmp_dir = \"{}\"\nvolume_path = \"{}\"\n\
                 static_dir = \"{}\"\n",
                d.join("events.log").display(),
                d.join("tmp").display(),
                d.join("volumes").display(),
                d.join("static").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("registries.conf"),
            "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        std::fs::write(d.join("auth.json"), "{}").unwrap();
        ContainersEnv { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `prog` with the environment pointing at this configuration.
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .env("REGISTRY_AUTH_FILE", self.path("auth.json"))
            .env("TMPDIR", self.dir.path())
            .current_dir(self.dir.path());
        c
    }

    /// skopeo ignores `CONTAINERS_REGISTRIES_CONF`; give it the files as flags.
    pub fn skopeo(&self) -> Command {
        let mut c = self.cmd("skopeo");
        c.arg("--registries-conf")
            .arg(self.path("registries.conf"))
            .arg("--policy")
            .arg(self.path("policy.json"));
        c
    }
}

/// A temp dir whose path is all lowercase: podman names an image pulled
/// from `oci:PATH` after PATH, and image names must be lowercase.
pub fn lowercase_tempdir() -> tempfile::TempDir {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!(
        "berth-e2e-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let parent = std::env::temp_dir();
    assert_eq!(
        parent.to_string_lossy(),
        parent.to_string_lossy().to_lowercase(),
        "TMPDIR must be lowercase for podman"
    );
    tempfile::Builder::new()
        .prefix(&name)
        .rand_bytes(0)
        .tempdir()
        .unwrap()
}

/// The manifest digest an OCI layout holds under `tag`.
pub fn layout_digest(dir: &Path, tag: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("{tag} not in {}", dir.display()))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A blob from an OCI layout, checked against its digest.
pub fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let (alg, hex) = digest.split_once(':').unwrap();
    let bytes = std::fs::read(dir.join("blobs").join(alg).join(hex))
        .unwrap_or_else(|e| panic!("{digest} in {}: {e}", dir.display()));
    assert_eq!(sha256(&bytes), digest, "layout blob {digest}");
    bytes
}
