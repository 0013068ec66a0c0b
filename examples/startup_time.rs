//! Start-up time on a big store: fill a data directory with M manifests in
//! R repositories (through the core API, as pushes would), then start the
//! `berth` binary on it several times and time each start to the first
//! answered `GET /v2/`.
//!
//!     cargo build --release
//!     cargo run --release --example startup_time -- \
//!         target/release/berth /dev/shm/berth-startup 100000 10000
//!
//! An existing directory is reused as it is (so repeated runs skip the fill).

use berth::config::Config;
use berth::core::digest::Digest;
use berth::core::names::{Reference, RepoName, Tag};
use berth::server::open_stores;
use bytes::Bytes;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, bin, dir, rest @ ..] = &args[..] else {
        return Err("usage: startup_time BERTH_BINARY DATA_DIR [MANIFESTS] [REPOS]".into());
    };
    let manifests: usize = rest.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let repos: usize = rest.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    if !Path::new(dir).exists() {
        let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        rt.block_on(fill(dir, manifests, repos))?;
    }
    let mut times = Vec::new();
    for _ in 0..RUNS {
        times.push(time_start(bin, dir)?);
    }
    times.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!(
        "start to first answered request: median {:.1} ms, min {:.1} ms, max {:.1} ms ({RUNS} runs)",
        ms(&times[RUNS / 2]),
        ms(&times[0]),
        ms(&times[RUNS - 1])
    );
    Ok(())
}

/// `manifests` one-layer images spread over `repos` repositories.
async fn fill(dir: &str, manifests: usize, repos: usize) -> Result<(), String> {
    let config = Config {
        data_dir: dir.into(),
        ..Config::default()
    };
    let stores = open_stores(&config)?;
    let registry = Arc::new(stores.registry(&config));
    let started = Instant::now();
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..manifests).step_by(workers) {
                let repo = RepoName::parse(&format!("team-{}/app-{}", i % repos / 100, i % repos))
                    .ok_or("name")?;
                let config_blob = Bytes::from(format!("{{\"n\":{i}}}"));
                let layer = Bytes::from(format!("layer {i}"));
                let mut descriptors = Vec::new();
                for blob in [&config_blob, &layer] {
                    let digest = Digest::sha256_of(blob);
                    let body = futures_util::stream::iter([Ok(blob.clone())]);
                    registry
                        .upload_whole(&repo, &digest, Box::pin(body))
                        .await
                        .map_err(|e| e.to_string())?;
                    descriptors.push((digest, blob.len()));
                }
                let manifest = format!(
                    r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
                    descriptors[0].0, descriptors[0].1, descriptors[1].0, descriptors[1].1
                );
                let tag = Reference::Tag(Tag::parse(&format!("v{i}")).ok_or("tag")?);
                registry
                    .manifest_put(&repo, &tag, &[], None, Bytes::from(manifest))
                    .await
                    .map_err(|e| e.to_string())?;
                if i % 10_000 == 0 {
                    eprintln!("filled {i}/{manifests}");
                }
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    eprintln!(
        "filled {manifests} manifests in {repos} repositories in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Start berth on a free port and time it to the first `200` on `/v2/`.
fn time_start(bin: &str, dir: &str) -> Result<Duration, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["serve", "--listen", &addr, "--data-dir", dir])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {bin}: {e}"))?;
    let answered = loop {
        if started.elapsed() > Duration::from_secs(30) {
            break Err("no answer within 30s".to_string());
        }
        if let Ok(mut s) = TcpStream::connect(&addr) {
            let _ = s.write_all(b"GET /v2/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                break Ok(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    answered
}
