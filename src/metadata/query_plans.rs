//! Invariant 8, request cost does not grow with the registry: every SQL
//! statement a request or the collector's review runs must be answered from
//! an index. The test records each statement SQLite executes (with its
//! parameters expanded) while it drives every request-path operation
//! through the core, then asks SQLite for each one's query plan and fails on
//! any full table scan. A new query without an index fails here, not in
//! production on a registry with a million manifests.

use crate::config::Config;
use crate::core::digest::Digest;
use crate::core::metrics::GcMetrics;
use crate::core::names::{Reference, RepoName, Tag};
use crate::core::registry::{Mount, UploadStart};
use crate::server::open_stores;
use bytes::Bytes;
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Record every statement `conn` runs.
pub fn trace(conn: &mut Connection) {
    fn record(sql: &str) {
        if let Ok(mut seen) = SEEN.lock() {
            seen.insert(sql.to_owned());
        }
    }
    conn.trace(Some(record));
}

/// Statements that are not queries over the registry's rows.
fn is_bookkeeping(sql: &str) -> bool {
    let head = sql.trim_start().to_ascii_uppercase();
    ["PRAGMA", "BEGIN", "COMMIT", "ROLLBACK", "CREATE", "--"]
        .iter()
        .any(|p| head.starts_with(p))
}

fn body(s: String) -> crate::core::registry::Body {
    Box::pin(futures_util::stream::iter([Ok(Bytes::from(s))]))
}

#[tokio::test]
async fn request_path_queries_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    config.gc.grace = std::time::Duration::ZERO;
    config.gc.untagged_after = Some(std::time::Duration::ZERO);
    let stores = open_stores(&config).unwrap();
    let registry = stores.registry(&config);
    let collector = stores.collector(&config, Arc::new(GcMetrics::default()));
    let repo = RepoName::parse("team/app").unwrap();
    let other = RepoName::parse("team/other").unwrap();

    // Blobs: monolithic, chunked, mounted with and without `from`.
    let config_blob = "{}".to_string();
    let config_digest = Digest::sha256_of(config_blob.as_bytes());
    registry
        .upload_whole(&repo, &config_digest, body(config_blob.clone()))
        .await
        .unwrap();
    let layer = "layer bytes".to_string();
    let layer_digest = Digest::sha256_of(layer.as_bytes());
    let UploadStart::Session(s) = registry.start_upload(&repo, None, "me").await.unwrap() else {
        panic!("expected a session");
    };
    registry.upload_status(&repo, &s.id).await.unwrap();
    registry
        .upload_append(&repo, &s.id, Some(0), body(layer[..5].to_string()))
        .await
        .unwrap();
    registry
        .upload_finish(
            &repo,
            &s.id,
            None,
            &layer_digest,
            body(layer[5..].to_string()),
        )
        .await
        .unwrap();
    registry
        .start_upload(&other, Some(Mount::from(&layer_digest, &repo)), "me")
        .await
        .unwrap();
    registry
        .start_upload(&other, Some(Mount::anywhere(&config_digest)), "me")
        .await
        .unwrap();
    let anyone = |_: &str| true;
    registry
        .start_upload(
            &other,
            Some(Mount {
                allowed: Some(&anyone),
                ..Mount::anywhere(&config_digest)
            }),
            "me",
        )
        .await
        .unwrap();
    let UploadStart::Session(cancelled) = registry.start_upload(&repo, None, "me").await.unwrap()
    else {
        panic!("expected a session");
    };
    registry.upload_cancel(&repo, &cancelled.id).await.unwrap();

    // Manifests: an image, a referrer of it, an index of it; reads of each.
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        layer.len()
    );
    let v1 = Reference::Tag(Tag::parse("v1").unwrap());
    let (image_digest, _) = registry
        .manifest_put(&repo, &v1, &[], None, Bytes::from(image.clone()))
        .await
        .unwrap();
    let referrer = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x-sbom","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config_digest}","size":2}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image_digest}","size":{}}}}}"#,
        image.len()
    );
    let referrer_digest = Digest::sha256_of(referrer.as_bytes());
    registry
        .manifest_put(
            &repo,
            &Reference::Digest(referrer_digest.clone()),
            &[Tag::parse("sbom").unwrap()],
            None,
            Bytes::from(referrer),
        )
        .await
        .unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image_digest}","size":{}}}]}}"#,
        image.len()
    );
    let multi = Reference::Tag(Tag::parse("multi").unwrap());
    registry
        .manifest_put(&repo, &multi, &[], None, Bytes::from(index))
        .await
        .unwrap();
    registry.manifest_get(&repo, &v1).await.unwrap();
    registry
        .manifest_get(&repo, &Reference::Digest(image_digest.clone()))
        .await
        .unwrap();
    registry.blob_size(&repo, &layer_digest).await.unwrap();
    registry
        .blob_read(&repo, &layer_digest, None)
        .await
        .unwrap();
    registry.tags(&repo, Some("a"), 10).await.unwrap();
    registry.catalog(Some("a"), 10).await.unwrap();
    registry
        .referrers(&repo, &image_digest, None, None, 10)
        .await
        .unwrap();
    registry
        .referrers(
            &repo,
            &image_digest,
            Some("application/x-sbom"),
            Some(&image_digest),
            10,
        )
        .await
        .unwrap();

    // Moves and deletes, then the collector reviews what they released.
    let (_, _) = registry
        .manifest_put(&repo, &v1, &[], None, Bytes::from(image.clone()))
        .await
        .unwrap();
    registry.manifest_delete(&repo, &multi).await.unwrap();
    registry
        .manifest_delete(&repo, &Reference::Digest(image_digest))
        .await
        .unwrap();
    registry.blob_delete(&other, &layer_digest).await.unwrap();
    registry.gc_queue_depth().await.unwrap();
    let mut report = crate::core::gc::PassReport::default();
    collector.collect_due(&mut report).await.unwrap();
    assert!(report.blobs_removed > 0, "the collector reclaimed nothing");

    // Every recorded statement, planned on a fresh connection.
    let seen: Vec<String> = SEEN.lock().unwrap().iter().cloned().collect();
    let db = Connection::open(config.metadata_path()).unwrap();
    let mut scans = Vec::new();
    let mut planned = 0;
    for sql in seen.iter().filter(|s| !is_bookkeeping(s)) {
        let mut stmt = db.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let details: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        planned += 1;
        // `SCAN <table>` reads every row; `SEARCH` uses an index. A scan
        // of the collector's queue for its depth (a metrics gauge), and the
        // session cap's count of open uploads (stopped at the cap), are the
        // ones allowed: they grow with pending work, not with the registry.
        for d in details {
            // A subquery's own rows are listed on lines of their own.
            let scan = d.starts_with("SCAN ")
                && !d.starts_with("SCAN CONSTANT ROW")
                && !d.starts_with("SCAN (subquery");
            let pending_work = (d.starts_with("SCAN gc_queue") && sql.contains("COUNT(*)"))
                || (d.starts_with("SCAN uploads") && sql.contains("LIMIT"));
            if scan && !pending_work {
                scans.push(format!("{d}\n    in: {sql}"));
            }
        }
    }
    assert!(planned > 30, "only {planned} statements recorded");
    assert!(
        scans.is_empty(),
        "full scans on the request path:\n{}",
        scans.join("\n")
    );
}
