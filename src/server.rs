//! `berth serve`: open the stores, bind, serve until SIGTERM/SIGINT, and
//! finish in-flight requests before exiting.

use crate::config::Config;
use crate::core::gc::Collector;
use crate::core::metrics::GcMetrics;
use crate::core::Registry;
use crate::metadata::sqlite::SqliteMetadata;
use crate::metadata::MetadataStore;
use crate::storage::fs::FsBlobStore;
use crate::storage::BlobStore;
use std::sync::Arc;

/// The two stores under a data directory.
pub struct Stores {
    pub blobs: Arc<dyn BlobStore>,
    pub meta: Arc<dyn MetadataStore>,
}

impl Stores {
    pub fn registry(&self, config: &Config) -> Registry {
        Registry::new(self.blobs.clone(), self.meta.clone(), config.core_limits())
    }

    pub fn collector(&self, config: &Config, metrics: Arc<GcMetrics>) -> Collector {
        Collector::new(
            self.blobs.clone(),
            self.meta.clone(),
            config.gc.policy(),
            metrics,
        )
    }
}

/// Open the stores under the configured data directory.
pub fn open_stores(config: &Config) -> Result<Stores, String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("creating data directory {}: {e}", config.data_dir.display()))?;
    let blobs = FsBlobStore::open(&config.data_dir)
        .map_err(|e| format!("opening blob store in {}: {e}", config.data_dir.display()))?;
    let meta = SqliteMetadata::open(&config.metadata_path(), config.gc.policy())
        .map_err(|e| format!("opening metadata {}: {e}", config.metadata_path().display()))?;
    Ok(Stores {
        blobs: Arc::new(blobs),
        meta: Arc::new(meta),
    })
}

pub async fn serve(config: Config) -> Result<(), String> {
    let stores = open_stores(&config)?;
    let registry = Arc::new(stores.registry(&config));
    let metrics = Arc::new(GcMetrics::default());
    let (stop_gc, stop_rx) = tokio::sync::watch::channel(false);
    let gc_task = if config.gc.enabled {
        let collector = Arc::new(stores.collector(&config, metrics.clone()));
        tracing::info!(
            grace = %humantime::format_duration(config.gc.grace),
            interval = %humantime::format_duration(config.gc.interval),
            "online garbage collection on"
        );
        Some(tokio::spawn(collector.run(stop_rx)))
    } else {
        tracing::info!("online garbage collection off (gc.enabled = false)");
        None
    };
    let data_dir = std::fs::canonicalize(&config.data_dir).unwrap_or(config.data_dir.clone());
    tracing::info!(data_dir = %data_dir.display(), "data directory (blobs/, uploads/, metadata.db)");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("reading bound address: {e}"))?;
    tracing::info!(%addr, "berth {} listening on http://{addr}/v2/", env!("CARGO_PKG_VERSION"));
    let app = crate::http::app(registry, metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    let _ = stop_gc.send(true);
    if let Some(task) = gc_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
