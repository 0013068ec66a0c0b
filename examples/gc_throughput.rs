//! GC throughput: fill a store with N blobs (each in a one-layer image),
//! delete every image, and time a collection pass.
//!
//!     cargo run --release --example gc_throughput -- 100000 /dev/shm/berth-gc
//!
//! The directory is created and must not exist. Put it on tmpfs to measure
//! the collector rather than the disk's fsync latency during the fill.

use berth::config::Config;
use berth::core::digest::Digest;
use berth::core::metrics::GcMetrics;
use berth::core::names::{Reference, RepoName, Tag};
use berth::server::open_stores;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "/dev/shm/berth-gc".into());
    if std::path::Path::new(&dir).exists() {
        return Err(format!("{dir} exists; give a new directory"));
    }
    let mut config = Config {
        data_dir: dir.clone().into(),
        ..Config::default()
    };
    config.gc.grace = Duration::ZERO;
    let stores = open_stores(&config)?;
    let registry = Arc::new(stores.registry(&config));
    let repo = RepoName::parse("gc/bench").ok_or("name")?;
    let config_blob = Bytes::from_static(b"{}");
    let config_digest = Digest::sha256_of(&config_blob);
    registry
        .upload_whole(
            &repo,
            &config_digest,
            Box::pin(futures_util::stream::iter([Ok(config_blob)])),
        )
        .await
        .map_err(|e| e.to_string())?;

    let fill = Instant::now();
    let mut manifests = Vec::with_capacity(n);
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (registry, repo, config_digest) =
            (registry.clone(), repo.clone(), config_digest.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (w..n).step_by(workers) {
                let body = Bytes::from(format!("blob {i}"));
                let digest = Digest::sha256_of(&body);
                registry
                    .upload_whole(&repo, &digest, Box::pin(futures_util::stream::iter([Ok(body.clone())])))
                    .await
                    .map_err(|e| e.to_string())?;
                let manifest = format!(
                    r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{}}}]}}"#,
                    body.len()
                );
                let tag = Reference::Tag(Tag::parse(&format!("t{i}")).ok_or("tag")?);
                let (d, _) = registry
                    .manifest_put(&repo, &tag, &[], None, Bytes::from(manifest))
                    .await
                    .map_err(|e| e.to_string())?;
                out.push(d);
            }
            Ok::<_, String>(out)
        }));
    }
    for t in tasks {
        manifests.extend(t.await.map_err(|e| e.to_string())??);
    }
    eprintln!("filled {n} blobs in {:.1}s", fill.elapsed().as_secs_f64());

    let del = Instant::now();
    for d in &manifests {
        registry
            .manifest_delete(&repo, &Reference::Digest(d.clone()))
            .await
            .map_err(|e| e.to_string())?;
    }
    eprintln!(
        "deleted {n} manifests in {:.1}s",
        del.elapsed().as_secs_f64()
    );

    let collector = stores.collector(&config, Arc::new(GcMetrics::default()));
    let start = Instant::now();
    let report = collector
        .pass(&|_, _| {})
        .await
        .map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "gc: reviewed {} items, reclaimed {} blobs ({} bytes) in {secs:.2}s = {:.0} blobs/s",
        report.reviewed,
        report.blobs_removed,
        report.bytes_removed,
        report.blobs_removed as f64 / secs
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
