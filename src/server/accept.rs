//! The accept loop: plain TCP or TLS, HTTP/1.1 and HTTP/2 on every
//! connection, with the limits that keep hostile clients from holding
//! resources (a connection cap; a deadline for the first byte, request
//! heads and TLS handshakes; idle connections closed), and a graceful
//! shutdown that lets in-flight requests end.

use crate::http::auth::ClientAddr;
use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// What the loop needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max_connections: usize,
    /// Deadline for a request's headers, and for a TLS handshake.
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
}

fn builder(limits: &ConnLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32)
        // Large windows so one stream can carry a layer at full speed.
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Serve `app` on `listener` until `shutdown` resolves, then wait for the
/// connections' in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let max = limits
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tls = tls.map(TlsAcceptor::from);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let limits = limits.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(acceptor) = tls else {
                return serve_connection(stream, peer, app, &limits, stop).await;
            };
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => serve_connection(s, peer, app, &limits, stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    // Every connection holds a slot until it ends: once all are back, the
    // last in-flight request has finished.
    let _ = stop_tx.send(true);
    let _ = slots.acquire_many(max as u32).await;
}

/// Serve one connection until it ends, the server stops (graceful: the
/// requests in flight finish), or it has had no request in flight for the
/// header timeout (an idle keep-alive or HTTP/2 connection must not hold
/// its slot forever).
async fn serve_connection<S>(
    io: S,
    peer: std::net::SocketAddr,
    app: Router,
    limits: &ConnLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let busy = Arc::new(InFlight::new());
    let tracker = busy.clone();
    let svc = TowerToHyperService::new(tower::service_fn(move |req: Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ClientAddr(peer));
        let guard = tracker.enter();
        let call = app.clone().oneshot(req);
        async move {
            let resp = call.await?;
            Ok::<_, std::convert::Infallible>(resp.map(|b| Tracked {
                inner: b,
                _guard: guard,
            }))
        }
    }));
    let b = builder(limits);
    let conn = b.serve_connection_with_upgrades(TokioIo::new(io), svc);
    let close = |c: std::pin::Pin<&mut _>| auto::UpgradeableConnection::graceful_shutdown(c);
    let result = drive(conn, close, &busy, limits.header_timeout, &mut stop).await;
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Poll `conn` to its end; ask it to close gracefully when the server
/// stops, or when nothing has been in flight on it for `idle`, and drop it
/// if it is still open `idle` after that with nothing in flight (an HTTP/2
/// peer that does not answer the closing PING). The timer is checked, not
/// re-armed, per request: requests cost two atomic updates here.
async fn drive<C, E>(
    conn: C,
    begin_shutdown: impl Fn(std::pin::Pin<&mut C>),
    busy: &InFlight,
    idle: Duration,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    let mut conn = std::pin::pin!(conn);
    let mut closing = *stop.borrow();
    if closing {
        begin_shutdown(conn.as_mut());
    }
    let timer = tokio::time::sleep(idle);
    let mut timer = std::pin::pin!(timer);
    loop {
        tokio::select! {
            r = conn.as_mut() => return r,
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    closing = true;
                    begin_shutdown(conn.as_mut());
                }
            }
            () = &mut timer => {
                let quiet = busy.quiet_for();
                let next = match quiet {
                    Some(q) if q >= idle => {
                        if closing {
                            return Ok(());
                        }
                        closing = true;
                        begin_shutdown(conn.as_mut());
                        idle
                    }
                    Some(q) => idle - q,
                    None => idle,
                };
                timer.as_mut().reset(tokio::time::Instant::now() + next);
            }
        }
    }
}

/// Requests in flight on one connection (from arrival until the response
/// body is sent or dropped), and when the last one ended.
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    /// Milliseconds after `start` when the count last fell to zero.
    idle_since_ms: std::sync::atomic::AtomicU64,
    start: std::time::Instant,
}

impl InFlight {
    fn new() -> InFlight {
        InFlight {
            count: std::sync::atomic::AtomicUsize::new(0),
            idle_since_ms: std::sync::atomic::AtomicU64::new(0),
            start: std::time::Instant::now(),
        }
    }

    /// How long nothing has been in flight; None while something is.
    fn quiet_for(&self) -> Option<Duration> {
        use std::sync::atomic::Ordering;
        if self.count.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.start.elapsed().saturating_sub(since))
    }

    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InFlightGuard(self.clone())
    }
}

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let i = &self.0;
        // Stamp the time before the count can read zero.
        let now = i.start.elapsed().as_millis() as u64;
        i.idle_since_ms.store(now, Ordering::Release);
        i.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it
/// has been sent (or dropped).
struct Tracked {
    inner: Body,
    _guard: InFlightGuard,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
