//! `berth serve`: open the stores, bind, serve until SIGTERM/SIGINT, and
//! finish in-flight requests before exiting.

use crate::config::Config;
use crate::core::Registry;
use crate::metadata::sqlite::SqliteMetadata;
use crate::storage::fs::FsBlobStore;
use std::sync::Arc;

/// Open the stores under the configured data directory.
pub fn open_registry(config: &Config) -> Result<Registry, String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("creating data directory {}: {e}", config.data_dir.display()))?;
    let blobs = FsBlobStore::open(&config.data_dir)
        .map_err(|e| format!("opening blob store in {}: {e}", config.data_dir.display()))?;
    let meta = SqliteMetadata::open(&config.metadata_path())
        .map_err(|e| format!("opening metadata {}: {e}", config.metadata_path().display()))?;
    Ok(Registry::new(
        Arc::new(blobs),
        Arc::new(meta),
        config.core_limits(),
    ))
}

pub async fn serve(config: Config) -> Result<(), String> {
    let registry = Arc::new(open_registry(&config)?);
    let data_dir = std::fs::canonicalize(&config.data_dir).unwrap_or(config.data_dir.clone());
    tracing::info!(data_dir = %data_dir.display(), "data directory (blobs/, uploads/, metadata.db)");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("reading bound address: {e}"))?;
    tracing::info!(%addr, "berth {} listening on http://{addr}/v2/", env!("CARGO_PKG_VERSION"));
    let app = crate::http::app(registry);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
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
