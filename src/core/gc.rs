//! Online garbage collection.
//!
//! Removing a reference (a manifest or tag delete, a tag moved, a blob
//! unlinked, an upload session expiring, a grace period running out) puts its
//! target in a review queue in the same transaction. The collector takes due
//! items in small batches; for each it re-checks, inside one metadata
//! transaction, that nothing references the target, removes the metadata and
//! commits, and only then deletes bytes. A writer that links a blob commits
//! in a transaction too, so it either lands before the review (which then
//! keeps the blob) or after it (and then it stored its own copy, under its own
//! key; see [`crate::storage::BlobKey`]). No request ever waits for the
//! collector, and nothing referenced is ever deleted.
//!
//! A sweep, run with every `berth gc` and periodically by the server, removes
//! files that no metadata names and that are older than the grace period:
//! what a crash between writing bytes and committing metadata leaves behind.

use super::error::{Error, Result};
use super::metrics::GcMetrics;
use crate::metadata::MetadataStore;
use crate::storage::{BlobKey, BlobStore};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When things become garbage. See `berth.example.toml` for each setting.
#[derive(Debug, Clone)]
pub struct GcPolicy {
    /// Run the background collector in `berth serve`.
    pub enabled: bool,
    /// How long a blob uploaded or mounted into a repository stays there
    /// without a manifest naming it; also the minimum age of an unnamed file
    /// before the sweep removes it.
    pub grace: Duration,
    /// Review delay after a reference is removed.
    pub delay: Duration,
    /// Collect manifests that have no tag (and are not a child of an index or
    /// a referrer of a live subject) this long after they were pushed.
    pub untagged_after: Option<Duration>,
    /// Collect referrers once their subject is deleted.
    pub referrers_follow_subject: bool,
    /// Abandoned upload sessions expire this long after their last write.
    pub upload_expiry: Duration,
    /// How often the background collector looks for due items.
    pub interval: Duration,
    /// How often the background collector sweeps for unnamed files.
    pub sweep_interval: Duration,
    /// Items reviewed per transaction.
    pub batch_size: usize,
}

impl Default for GcPolicy {
    fn default() -> GcPolicy {
        GcPolicy {
            enabled: true,
            grace: Duration::from_secs(3600),
            delay: Duration::ZERO,
            untagged_after: None,
            referrers_follow_subject: true,
            upload_expiry: Duration::from_secs(24 * 3600),
            interval: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(3600),
            batch_size: 500,
        }
    }
}

/// Milliseconds since the epoch: the metadata's clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A blob whose metadata a review removed; its bytes go next.
#[derive(Debug, Clone)]
pub struct Reclaimed {
    pub digest: String,
    pub key: BlobKey,
    pub size: u64,
}

/// What one reviewed batch changed in the metadata.
#[derive(Debug, Default)]
pub struct GcBatch {
    pub reviewed: u64,
    pub links_removed: u64,
    pub manifests_removed: u64,
    pub repositories_removed: u64,
    /// Upload sessions whose rows went; their staging bytes go next.
    pub uploads_expired: Vec<String>,
    pub blobs: Vec<Reclaimed>,
}

/// What a collection pass did, in total.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PassReport {
    pub reviewed: u64,
    pub links_removed: u64,
    pub manifests_removed: u64,
    pub repositories_removed: u64,
    pub uploads_expired: u64,
    pub blobs_removed: u64,
    pub bytes_removed: u64,
    pub orphan_files_removed: u64,
    pub orphan_bytes_removed: u64,
}

/// A stored file the sweep looks at.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub key: BlobKey,
    pub size: u64,
    pub age: Duration,
}

pub struct Collector {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetadataStore>,
    policy: GcPolicy,
    metrics: Arc<GcMetrics>,
}

impl Collector {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        meta: Arc<dyn MetadataStore>,
        policy: GcPolicy,
        metrics: Arc<GcMetrics>,
    ) -> Collector {
        Collector {
            blobs,
            meta,
            policy,
            metrics,
        }
    }

    pub fn metrics(&self) -> &Arc<GcMetrics> {
        &self.metrics
    }

    /// Review every due item, batch by batch, and delete what they free.
    pub async fn collect_due(&self, report: &mut PassReport) -> Result<()> {
        loop {
            let batch = self
                .meta
                .gc_review_batch(now_ms(), self.policy.batch_size.max(1))
                .await?;
            let reviewed = batch.reviewed;
            self.apply(batch, report).await;
            if reviewed < self.policy.batch_size.max(1) as u64 {
                return Ok(());
            }
        }
    }

    /// Delete the bytes of what a committed batch removed.
    async fn apply(&self, batch: GcBatch, report: &mut PassReport) {
        report.reviewed += batch.reviewed;
        report.links_removed += batch.links_removed;
        report.manifests_removed += batch.manifests_removed;
        report.repositories_removed += batch.repositories_removed;
        report.uploads_expired += batch.uploads_expired.len() as u64;
        self.metrics.add_reviewed(batch.reviewed);
        for id in &batch.uploads_expired {
            if let Err(e) = self.blobs.remove_staging(id).await {
                tracing::warn!(upload = %id, error = %e, "could not remove expired upload staging");
            }
        }
        for b in &batch.blobs {
            match self.blobs.delete(&b.key).await {
                Ok(()) => {
                    report.blobs_removed += 1;
                    report.bytes_removed += b.size;
                    self.metrics.add_reclaimed(1, b.size);
                    tracing::debug!(digest = %b.digest, size = b.size, "blob reclaimed");
                }
                // The metadata no longer names it; the sweep retries later.
                Err(e) => {
                    tracing::warn!(digest = %b.digest, error = %e, "could not delete blob bytes")
                }
            }
        }
    }

    /// Remove files that no metadata names and that are older than the grace
    /// period. `progress` is called with (files seen, total).
    pub async fn sweep(
        &self,
        report: &mut PassReport,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<()> {
        let objects = self
            .blobs
            .list_objects()
            .await
            .map_err(|e| Error::internal("listing blob objects", e))?;
        let total = objects.len() as u64;
        for (i, obj) in objects.into_iter().enumerate() {
            progress(i as u64 + 1, total);
            if obj.age < self.policy.grace {
                continue;
            }
            let named = self.meta.blob_key_recorded(&obj.key).await?;
            if !named {
                if let Err(e) = self.blobs.delete(&obj.key).await {
                    tracing::warn!(key = obj.key.as_str(), error = %e, "could not delete orphan");
                    continue;
                }
                tracing::info!(
                    key = obj.key.as_str(),
                    size = obj.size,
                    "orphan blob file removed"
                );
                report.orphan_files_removed += 1;
                report.orphan_bytes_removed += obj.size;
                self.metrics.add_orphans(1, obj.size);
            }
        }
        let staging = self
            .blobs
            .list_staging()
            .await
            .map_err(|e| Error::internal("listing upload staging", e))?;
        for (id, size, age) in staging {
            if age < self.policy.grace || self.meta.upload(&id).await?.is_some() {
                continue;
            }
            if self.blobs.remove_staging(&id).await.is_ok() {
                tracing::info!(upload = %id, size, "orphan upload staging removed");
                report.orphan_files_removed += 1;
                report.orphan_bytes_removed += size;
                self.metrics.add_orphans(1, size);
            }
        }
        Ok(())
    }

    /// One full pass: due reviews, then the sweep.
    pub async fn pass(&self, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<PassReport> {
        let mut report = PassReport::default();
        self.collect_due(&mut report).await?;
        self.sweep(&mut report, progress).await?;
        self.metrics.finished_run(now_ms());
        Ok(report)
    }

    /// The background collector of `berth serve`: due reviews every
    /// `interval`, a sweep every `sweep_interval`, until `stop` fires.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            let mut report = PassReport::default();
            let sweep = last_sweep.elapsed() >= self.policy.sweep_interval;
            let result = match self.collect_due(&mut report).await {
                Ok(()) if sweep => {
                    last_sweep = tokio::time::Instant::now();
                    self.sweep(&mut report, &|_, _| {}).await
                }
                other => other,
            };
            self.metrics.finished_run(now_ms());
            match result {
                Err(e) => tracing::warn!(error = %e, "garbage collection pass failed"),
                Ok(())
                    if report.blobs_removed
                        + report.orphan_files_removed
                        + report.manifests_removed
                        > 0 =>
                {
                    tracing::info!(
                        blobs = report.blobs_removed,
                        bytes = report.bytes_removed,
                        manifests = report.manifests_removed,
                        orphans = report.orphan_files_removed,
                        "garbage collected"
                    )
                }
                Ok(()) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(self.policy.interval) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
