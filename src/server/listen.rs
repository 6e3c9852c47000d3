//! The accept loop: HTTP/1.1 connections (plain or TLS) with bounded resources.
//!
//! - A cap on open connections (all listeners together). At the cap the loop stops accepting, so
//!   new connections wait in the kernel's accept queue (backpressure) instead of using file
//!   descriptors; each time that happens is counted and logged, rate-limited.
//! - A header deadline: once a request's first byte arrives, its headers must be complete within
//!   `header_read`, else the connection is closed (slow-header clients cannot pin connections).
//! - An idle deadline: a keep-alive connection without a request for `idle` is closed.
//! - Failed accepts (out of file descriptors, ...) are logged rate-limited and retried after a
//!   short pause.
//! - Graceful shutdown: stop accepting, let connections finish their request, bounded by `grace`.
//!
//! Deadlines are kept per connection by a watchdog that reads what the connection's reader and the
//! service recorded, so hyper's own header timer (which also runs while a connection is idle) is
//! off.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use super::tls::TlsAcceptor;
use crate::ops::logging::{Admit, FloodGate};
use crate::ops::metrics;

#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub header_read: Duration,
    pub idle: Duration,
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        let d = crate::config::ServerConfig::default();
        ConnLimits {
            header_read: Duration::from_secs(d.header_read_timeout_secs),
            idle: Duration::from_secs(d.idle_timeout_secs),
            max_connections: d.max_connections,
        }
    }
}

/// One listening socket; `tls` makes it HTTPS.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

static CAP_LOG: FloodGate = FloodGate::new(10, 1);
static ACCEPT_LOG: FloodGate = FloodGate::new(10, 3);

/// Serve `app` on every listener until `shutdown` resolves; then stop accepting and let open
/// connections finish, for at most `grace`.
pub async fn serve(
    listeners: Vec<Listener>,
    app: axum::Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    let mut loops = Vec::new();
    for l in listeners {
        loops.push(tokio::spawn(accept_loop(l, app.clone(), limits.clone(), slots.clone(), stop_rx.clone())));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    // Every connection holds one slot: all slots back means all connections are done.
    let all = limits.max_connections as u32;
    if tokio::time::timeout(grace, slots.acquire_many(all)).await.is_err() {
        tracing::warn!("shutdown grace period over; dropping remaining connections");
    }
    Ok(())
}

async fn accept_loop(
    l: Listener,
    app: axum::Router,
    limits: Arc<ConnLimits>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let m = metrics::global();
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                m.connection_cap_reached.fetch_add(1, Ordering::Relaxed);
                match CAP_LOG.admit() {
                    Admit::Suppress => {}
                    a => tracing::warn!(
                        max_connections = limits.max_connections,
                        earlier = match a {
                            Admit::LogWithSuppressed(n) => n,
                            _ => 0,
                        },
                        "connection limit reached: new connections wait in the accept queue"
                    ),
                }
                tokio::select! {
                    s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => return },
                    _ = stopped(&mut stop) => return,
                }
            }
        };
        let (stream, _peer) = tokio::select! {
            r = l.tcp.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    m.accept_errors.fetch_add(1, Ordering::Relaxed);
                    match ACCEPT_LOG.admit() {
                        Admit::Suppress => {}
                        a => tracing::warn!(
                            error = %e,
                            earlier = match a { Admit::LogWithSuppressed(n) => n, _ => 0 },
                            "accepting a connection failed"
                        ),
                    }
                    // Out of file descriptors: give connections time to close.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let _ = stream.set_nodelay(true);
        m.connections_total.fetch_add(1, Ordering::Relaxed);
        let app = app.clone();
        let limits = limits.clone();
        let tls = l.tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            m.connections_open.fetch_add(1, Ordering::Relaxed);
            match tls {
                None => connection(stream, app, &limits, stop).await,
                Some(acc) => match tokio::time::timeout(limits.header_read, acc.accept(stream)).await {
                    Ok(Ok(s)) => connection(s, app, &limits, stop).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => {
                        m.connections_timed_out.fetch_add(1, Ordering::Relaxed);
                    }
                },
            }
            m.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}

/// Resolves once shutdown was asked for (the watch guard is dropped here: it is not `Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

/// What the reader and the service record for the watchdog.
struct ConnState {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last byte read or answer given.
    last_activity: AtomicU64,
    /// Milliseconds since `epoch` + 1 of the first byte of a request whose headers are not yet
    /// complete; 0 = none.
    pending_since: AtomicU64,
    in_request: AtomicBool,
}

impl ConnState {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// The connection's stream, noting when bytes arrive.
struct Watched<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let st = &self.state;
            let now = st.now_ms();
            st.last_activity.store(now, Ordering::Relaxed);
            if !st.in_request.load(Ordering::Relaxed) && st.pending_since.load(Ordering::Relaxed) == 0 {
                st.pending_since.store(now + 1, Ordering::Relaxed);
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Marks the connection busy while a request is being answered.
struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        let st = &self.0;
        st.last_activity.store(st.now_ms(), Ordering::Relaxed);
        st.in_request.store(false, Ordering::Relaxed);
    }
}

async fn connection<S>(stream: S, app: axum::Router, limits: &ConnLimits, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::new(ConnState {
        epoch: Instant::now(),
        last_activity: AtomicU64::new(0),
        pending_since: AtomicU64::new(0),
        in_request: AtomicBool::new(false),
    });
    let st = state.clone();
    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        st.in_request.store(true, Ordering::Relaxed);
        st.pending_since.store(0, Ordering::Relaxed);
        let busy = Busy(st.clone());
        let app = app.clone();
        async move {
            let r = app.oneshot(req.map(axum::body::Body::new)).await;
            drop(busy);
            r
        }
    });
    let io = hyper_util::rt::TokioIo::new(Watched { inner: stream, state: state.clone() });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(io, svc);
    let mut conn = std::pin::pin!(conn);
    let tick = (limits.header_read.min(limits.idle) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let header_ms = limits.header_read.as_millis() as u64;
    let idle_ms = limits.idle.as_millis() as u64;
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stopped(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(tick) => {
                if state.in_request.load(Ordering::Relaxed) {
                    continue;
                }
                let now = state.now_ms();
                let pending = state.pending_since.load(Ordering::Relaxed);
                let timed_out = if pending != 0 {
                    now.saturating_sub(pending - 1) > header_ms
                } else {
                    now.saturating_sub(state.last_activity.load(Ordering::Relaxed)) > idle_ms
                };
                if timed_out {
                    metrics::global().connections_timed_out.fetch_add(1, Ordering::Relaxed);
                    if pending != 0 {
                        tracing::debug!("closing a connection whose request headers did not arrive in time");
                    }
                    return;
                }
            }
        }
    }
}
