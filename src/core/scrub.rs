//! `berth scrub`: re-hash every stored blob and manifest, and check that the
//! metadata and the storage agree both ways.

use super::digest::{Algorithm, Digest};
use super::error::{Error, Result};
use crate::metadata::MetadataStore;
use crate::storage::{BlobKey, BlobStore};
use futures_util::StreamExt;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Default, Serialize)]
pub struct ScrubReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    pub manifests_checked: u64,
    /// Blobs whose bytes do not hash to their digest (or have the wrong size).
    pub corrupt_blobs: Vec<String>,
    /// Blobs the metadata names whose bytes are missing.
    pub missing_blobs: Vec<String>,
    /// Manifest bodies that do not hash to their digest.
    pub corrupt_manifests: Vec<String>,
    /// Stored files no metadata names, older than the grace period: (key, size).
    pub orphans: Vec<(String, u64)>,
    /// Unnamed files younger than the grace period: most likely pushes
    /// between their bytes and their metadata commit. Not a problem.
    pub in_flight: u64,
    /// With --repair: blobs marked corrupt or missing (reads fail closed
    /// until the digest is pushed again, which replaces the copy) and
    /// orphans (older than the grace period) removed.
    pub marked_corrupt: u64,
    pub orphans_removed: u64,
}

impl ScrubReport {
    pub fn clean(&self) -> bool {
        self.corrupt_blobs.is_empty()
            && self.missing_blobs.is_empty()
            && self.corrupt_manifests.is_empty()
            && self.orphans.is_empty()
    }
}

const PAGE: usize = 500;

/// Hash a stored object with `alg`; `None` when it has no bytes.
async fn hash_object(
    blobs: &dyn BlobStore,
    key: &BlobKey,
    alg: Algorithm,
) -> Result<Option<(Digest, u64)>> {
    let Some(read) = blobs
        .read(key, None)
        .await
        .map_err(|e| Error::internal("scrub read", e))?
    else {
        return Ok(None);
    };
    let mut chunks = read.chunks;
    let mut hasher = alg.hasher();
    let mut len = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| Error::internal("scrub read", e))?;
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(Some((hasher.finish(), len)))
}

/// Run a scrub. `progress(done, total_hint, what)` is called as it goes.
pub async fn scrub(
    blobs: &dyn BlobStore,
    meta: &dyn MetadataStore,
    repair: bool,
    grace: Duration,
    progress: &(dyn Fn(u64, &str) + Sync),
) -> Result<ScrubReport> {
    let mut report = ScrubReport::default();
    let mut after = String::new();
    loop {
        let page = meta.blobs_after(&after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.digest.clone();
        for row in page {
            report.blobs_checked += 1;
            progress(report.blobs_checked, "blobs");
            let (Ok(digest), Some(key)) = (row.digest.parse::<Digest>(), BlobKey::parse(&row.key))
            else {
                report.corrupt_blobs.push(row.digest.clone());
                continue;
            };
            let bad = match hash_object(blobs, &key, digest.algorithm()).await? {
                None => &mut report.missing_blobs,
                Some((actual, len)) => {
                    report.bytes_checked += len;
                    if actual == digest && len == row.size {
                        continue;
                    }
                    &mut report.corrupt_blobs
                }
            };
            // The collector may have removed the blob (metadata, then
            // bytes), or an upload replaced the copy, since the page was
            // read: only a copy still recorded is a problem.
            if !meta.blob_key_recorded(&key).await? {
                continue;
            }
            bad.push(row.digest.clone());
            // Marked, reads fail closed and the next upload of the digest
            // replaces the copy; a missing copy is repaired the same way.
            if repair && !row.corrupt && meta.mark_corrupt(&row.digest, &row.key).await? {
                report.marked_corrupt += 1;
            }
        }
    }
    let mut after = String::new();
    loop {
        let page = meta.manifest_bodies_after(&after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.0.clone();
        for (digest, body) in page {
            report.manifests_checked += 1;
            progress(report.manifests_checked, "manifests");
            let ok = digest
                .parse::<Digest>()
                .map(|d| Digest::of(d.algorithm(), &body) == d)
                .unwrap_or(false);
            if !ok {
                report.corrupt_manifests.push(digest);
            }
        }
    }
    let objects = blobs
        .list_objects()
        .await
        .map_err(|e| Error::internal("listing blob objects", e))?;
    for (i, obj) in objects.into_iter().enumerate() {
        progress(i as u64 + 1, "files");
        if meta.blob_key_recorded(&obj.key).await? {
            continue;
        }
        // Young unnamed files may be a push between its bytes and its
        // metadata commit (or its duplicate copy about to be dropped).
        if obj.age < grace {
            report.in_flight += 1;
            continue;
        }
        if repair && blobs.delete(&obj.key).await.is_ok() {
            report.orphans_removed += 1;
        }
        report.orphans.push((obj.key.as_str().to_owned(), obj.size));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::names::RepoName;
    use crate::core::testing::{body, stores, CollectOnRead};
    use std::sync::{Arc, Mutex};

    /// A blob the collector removes while scrub runs (after scrub read its
    /// row, before it read its bytes) is not reported missing, nor marked.
    #[tokio::test]
    async fn a_blob_collected_during_scrub_is_not_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (config, stores) = stores(dir.path());
        let repo = RepoName::parse("r").unwrap();
        let digest = Digest::sha256_of(b"short-lived");
        stores
            .registry(&config)
            .upload_whole(&repo, &digest, body(b"short-lived"))
            .await
            .unwrap();
        let racing = CollectOnRead {
            inner: stores.blobs.clone(),
            meta: stores.meta.clone(),
            next: Mutex::new(Some((repo, digest))),
        };
        let meta: Arc<dyn MetadataStore> = stores.meta.clone();
        let report = scrub(&racing, &*meta, true, Duration::ZERO, &|_, _| {})
            .await
            .unwrap();
        assert_eq!(report.blobs_checked, 1);
        assert!(report.clean(), "{report:?}");
        assert_eq!(report.marked_corrupt, 0);
    }
}
