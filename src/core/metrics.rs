//! Counters for Prometheus, rendered in its text exposition format. A few
//! atomics do not need a metrics framework.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct GcMetrics {
    reviewed: AtomicU64,
    blobs_reclaimed: AtomicU64,
    bytes_reclaimed: AtomicU64,
    orphans_removed: AtomicU64,
    orphan_bytes_removed: AtomicU64,
    runs: AtomicU64,
    last_run_ms: AtomicI64,
}

impl GcMetrics {
    pub fn add_reviewed(&self, n: u64) {
        self.reviewed.fetch_add(n, Relaxed);
    }

    pub fn add_reclaimed(&self, blobs: u64, bytes: u64) {
        self.blobs_reclaimed.fetch_add(blobs, Relaxed);
        self.bytes_reclaimed.fetch_add(bytes, Relaxed);
    }

    pub fn add_orphans(&self, files: u64, bytes: u64) {
        self.orphans_removed.fetch_add(files, Relaxed);
        self.orphan_bytes_removed.fetch_add(bytes, Relaxed);
    }

    pub fn finished_run(&self, now_ms: i64) {
        self.runs.fetch_add(1, Relaxed);
        self.last_run_ms.store(now_ms, Relaxed);
    }

    /// The text exposition, with the queue depth read by the caller.
    pub fn render(&self, queue_depth: u64, queue_due: u64) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        metric(
            "berth_gc_items_reviewed_total",
            "counter",
            "Review queue items the collector checked.",
            self.reviewed.load(Relaxed).to_string(),
        );
        metric(
            "berth_gc_blobs_reclaimed_total",
            "counter",
            "Blobs whose bytes the collector deleted.",
            self.blobs_reclaimed.load(Relaxed).to_string(),
        );
        metric(
            "berth_gc_bytes_reclaimed_total",
            "counter",
            "Bytes of blobs the collector deleted.",
            self.bytes_reclaimed.load(Relaxed).to_string(),
        );
        metric(
            "berth_gc_orphan_files_removed_total",
            "counter",
            "Files no metadata named, removed by the sweep.",
            self.orphans_removed.load(Relaxed).to_string(),
        );
        metric(
            "berth_gc_orphan_bytes_removed_total",
            "counter",
            "Bytes of files removed by the sweep.",
            self.orphan_bytes_removed.load(Relaxed).to_string(),
        );
        metric(
            "berth_gc_runs_total",
            "counter",
            "Collector passes run.",
            self.runs.load(Relaxed).to_string(),
        );
        metric(
            "berth_gc_last_run_timestamp_seconds",
            "gauge",
            "When the last collector pass finished.",
            format!("{:.3}", self.last_run_ms.load(Relaxed) as f64 / 1000.0),
        );
        metric(
            "berth_gc_queue_depth",
            "gauge",
            "Items in the review queue.",
            queue_depth.to_string(),
        );
        metric(
            "berth_gc_queue_due",
            "gauge",
            "Items in the review queue that are due now.",
            queue_due.to_string(),
        );
        out
    }
}
