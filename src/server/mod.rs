//! `berth serve`: open the stores, bind, serve until SIGTERM/SIGINT, and
//! finish in-flight requests before exiting.

mod accept;
pub mod tls;

use crate::auth::Auth;
use crate::config::{AuthMode, Config};
use crate::core::gc::Collector;
use crate::core::metrics::GcMetrics;
use crate::core::Registry;
use crate::http::{Ctx, HttpLimits};
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
    let auth = Arc::new(Auth::from_config(&config.auth, &config.data_dir)?);
    let certs = match &config.tls {
        Some(t) => Some(Arc::new(tls::Certificates::open(&t.cert, &t.key)?)),
        None => None,
    };
    let tls_config = certs.as_ref().map(|c| c.server_config()).transpose()?;
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
    log_auth(&config, &auth);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("reading bound address: {e}"))?;
    let scheme = if certs.is_some() { "https" } else { "http" };
    tracing::info!(%addr, "berth {} listening on {scheme}://{addr}/v2/", env!("CARGO_PKG_VERSION"));
    let reload = tokio::spawn(reload_on_sighup(certs.clone(), auth.clone()));
    let app = crate::http::app(Ctx {
        registry,
        gc_metrics: metrics,
        auth,
        limits: HttpLimits {
            max_header_bytes: config.limits.max_header_bytes,
            body_idle_timeout: config.limits.body_idle_timeout,
        },
        tls: certs.is_some(),
    });
    let limits = accept::ConnLimits {
        max_connections: config.limits.max_connections,
        header_timeout: config.limits.header_timeout,
        max_header_bytes: config.limits.max_header_bytes,
    };
    accept::serve(listener, app, tls_config, limits, shutdown_signal()).await;
    reload.abort();
    let _ = stop_gc.send(true);
    if let Some(task) = gc_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Say at start-up who may do what, in one line.
fn log_auth(config: &Config, auth: &Auth) {
    match config.auth.mode {
        AuthMode::None => tracing::warn!(
            "authentication off: anyone who can reach this address may push and delete \
             (set [auth] in the config to require logins)"
        ),
        AuthMode::Basic => tracing::info!(
            policies = config.auth.policy.len(),
            "authentication: HTTP Basic against the htpasswd file"
        ),
        AuthMode::Token => tracing::info!(
            policies = config.auth.policy.len(),
            builtin_issuer = auth.issuer.is_some(),
            service = %config.auth.token.service,
            realm = config.auth.token.realm.as_deref().unwrap_or("/auth/token on this server"),
            "authentication: bearer tokens"
        ),
    }
}

/// SIGHUP re-reads the TLS certificate and key and the htpasswd file.
async fn reload_on_sighup(certs: Option<Arc<tls::Certificates>>, auth: Arc<Auth>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; certificates will not be reloaded");
        return;
    };
    while hup.recv().await.is_some() {
        if let Some(c) = &certs {
            match c.reload() {
                Ok(()) => tracing::info!("reloaded the TLS certificate and key"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; keeping the old certificate")
                }
            }
        }
        auth.reload();
    }
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
