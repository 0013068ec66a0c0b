//! Test harness: start and stop `berth`, speak HTTP to it, snapshot its data.

#![allow(dead_code)]

pub mod image;

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A running `berth serve`. Killed when dropped; its data directory is a
/// temp dir removed with it unless the test passed its own.
pub struct Berth {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// Holds the config file of [`Berth::start_with_config`].
    _config: Option<tempfile::TempDir>,
    child: Option<Child>,
    extra_args: Vec<String>,
    log: Arc<Mutex<String>>,
}

impl Berth {
    /// Start on a fresh temp data dir.
    pub fn start() -> Berth {
        Berth::start_with_args(&[])
    }

    pub fn start_with_args(args: &[&str]) -> Berth {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut b = Berth::start_in(temp.path(), args);
        b._temp = Some(temp);
        b
    }

    /// Start on a fresh temp data dir with `config` as its TOML config file
    /// (kept outside the data directory, so snapshots do not see it).
    pub fn start_with_config(config: &str, args: &[&str]) -> Berth {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, config).expect("write config");
        let mut all = vec!["--config", path.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        let mut b = Berth::start_with_args(&all);
        b._config = Some(dir);
        b
    }

    /// Start on `data_dir` (kept after the test).
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Berth {
        let mut b = Berth {
            url: String::new(),
            addr: String::new(),
            data_dir: data_dir.to_owned(),
            _temp: None,
            _config: None,
            child: None,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            log: Arc::new(Mutex::new(String::new())),
        };
        b.spawn("127.0.0.1:0");
        b
    }

    fn spawn(&mut self, listen: &str) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .env_remove("BERTH_CONFIG")
            .env("BERTH_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(pos) = line.find("listening on ") {
                    let url = &line[pos + "listening on ".len()..];
                    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
                    let addr = rest.split('/').next().unwrap_or("").to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send((scheme.to_string(), addr));
                    }
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let (scheme, addr) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("berth did not start:\n{}", self.log.lock().unwrap());
            }
        };
        self.addr = addr.clone();
        self.url = format!("{scheme}://{addr}");
        self.child = Some(child);
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Peak resident memory of the server so far, in KiB (Linux VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid().unwrap())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Everything berth logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until every request answered so far is in [`Berth::logs`]:
    /// request lines are written in batches, so a line can trail its
    /// response. A request to a path of its own marks the point.
    pub fn sync_log(&self) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let path = format!("/v2/_log_sync_{}", N.fetch_add(1, Ordering::Relaxed));
        let _ = raw_http(&self.addr, "GET", &path, &[], b"");
        let needle = format!("path=\"{path}\"");
        wait_for(30, "the log to catch up", || self.logs().contains(&needle));
    }

    /// A position in [`Berth::logs`] after every request answered so far.
    pub fn log_mark(&self) -> usize {
        self.sync_log();
        self.logs().len()
    }

    /// kill -9, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        self.wait()
    }

    /// Send the server a signal (`TERM`, `INT`, ...) and leave it running
    /// (or stopping); see [`Berth::wait`].
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            send_signal(c.id(), name);
        }
    }

    /// Wait for the server to exit; returns its exit status.
    pub fn wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.take()?.wait().ok()
    }

    /// The exit status if the server has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// Start again on the same data directory and the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill9 first");
        let addr = self.addr.clone();
        // The old port is free again; reuse it so client URLs stay valid.
        self.spawn(&addr);
    }

    pub fn client(&self) -> reqwest::blocking::Client {
        client()
    }

    pub fn v2(&self, path: &str) -> String {
        format!("{}/v2/{}", self.url, path)
    }

    pub fn metadata_path(&self) -> PathBuf {
        self.data_dir.join("metadata.db")
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unsafe_sigterm(pid: u32) {
    send_signal(pid, "TERM");
}

/// `kill -<sig> <pid>` for a process the test started.
pub fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The status of a request to `url`, accepting any manifest type.
pub fn status(c: &reqwest::blocking::Client, method: reqwest::Method, url: &str) -> u16 {
    c.request(method, url)
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Every file under `dir` with its size and content hash. SQLite's `-shm`
/// file is a shared-memory index that readers touch by design; it holds no
/// data, so only its presence is compared.
pub fn snapshot(dir: &Path) -> BTreeMap<String, (u64, String)> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, String)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
        // A file the collector deleted since the directory was read.
        let Ok(md) = e.metadata() else {
            continue;
        };
        if md.is_dir() {
            out.insert(format!("{rel}/"), (0, String::new()));
            walk(root, &p, out);
        } else if rel.ends_with("-shm") {
            out.insert(rel, (0, String::new()));
        } else {
            let bytes = std::fs::read(&p).unwrap_or_default();
            out.insert(rel, (md.len(), sha256(&bytes)));
        }
    }
}

/// Every row of every table in the metadata database, as text, opened
/// read-only beside the running server.
pub fn metadata_dump(db: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open metadata");
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.sort();
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("== {t}\n"));
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let cols = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut fields = Vec::new();
                for i in 0..cols {
                    let v: rusqlite::types::Value = r.get(i)?;
                    fields.push(format!("{v:?}"));
                }
                Ok(fields.join(" | "))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        for r in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    out
}

/// Total bytes of the files under `dir/blobs`.
pub fn blob_bytes(data_dir: &Path) -> u64 {
    snapshot(&data_dir.join("blobs"))
        .values()
        .map(|(size, _)| size)
        .sum()
}

/// Whether an external client program is installed. When it is not, a test
/// that needs it fails if `BERTH_E2E_REQUIRED=1` (as in CI) and is skipped
/// with a message otherwise.
pub fn have_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("BERTH_E2E_REQUIRED").as_deref() == Ok("1") {
            panic!("{name} is required (BERTH_E2E_REQUIRED=1) but not installed");
        }
        eprintln!("SKIP: {name} not installed");
    }
    found
}

/// A response read off the wire by [`raw_http`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send one HTTP/1.1 request with `target` written exactly as given. HTTP
/// client libraries normalise `..`, `.` and `%2e%2e` segments away before
/// sending; path-traversal tests need them on the wire.
pub fn raw_http(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut data = &rest[..];
        while let Some(p) = data.windows(2).position(|w| w == b"\r\n") {
            let size_line = String::from_utf8_lossy(&data[..p]).to_string();
            let size =
                usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap_or(0);
            data = &data[p + 2..];
            if size == 0 || data.len() < size {
                break;
            }
            out.extend_from_slice(&data[..size]);
            data = &data[(size + 2).min(data.len())..];
        }
        rest = out;
    }
    RawResponse {
        status,
        headers,
        body: rest,
    }
}

/// Run a `berth` subcommand to completion.
pub fn berth_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_CONFIG")
        .output()
        .expect("run berth")
}

/// A request body that sends the first `first` bytes of `data`, then runs
/// `pause` (once: a stalled client, or one waiting for the test), then
/// sends the rest.
pub struct Paused<F: FnMut()> {
    data: Vec<u8>,
    pos: usize,
    first: usize,
    pause: Option<F>,
}

impl<F: FnMut()> Paused<F> {
    pub fn new(data: Vec<u8>, first: usize, pause: F) -> Paused<F> {
        Paused {
            data,
            pos: 0,
            first,
            pause: Some(pause),
        }
    }
}

impl<F: FnMut()> std::io::Read for Paused<F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.first {
            if let Some(mut pause) = self.pause.take() {
                pause();
            }
        }
        let end = if self.pos < self.first {
            self.first
        } else {
            self.data.len()
        };
        let n = buf.len().min(end - self.pos).min(64 << 10);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Poll `cond` every 50 ms until it holds; panics with `what` after
/// `secs` seconds. A bounded wait for a background effect, not a timing
/// assertion.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Prometheus metric's value from `/metrics`.
pub fn metric(b: &Berth, name: &str) -> f64 {
    let text = client()
        .get(format!("{}/metrics", b.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

/// Bytes of every file under `dir` except the metadata database's own
/// files (whose pages grow and are reused by SQLite).
pub fn data_bytes(dir: &Path) -> u64 {
    snapshot(dir)
        .iter()
        .filter(|(k, _)| !k.starts_with("metadata.db"))
        .map(|(_, (size, _))| size)
        .sum()
}
