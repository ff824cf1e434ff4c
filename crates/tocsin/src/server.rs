//! The HTTP(S) server: an accept loop of our own over hyper, so that every connection — plain
//! or TLS — has a header-read timeout, an idle timeout and a place under a connection limit
//! that stays below the file-descriptor limit.
//!
//! When the limit is reached, a new connection does not wait behind idle ones: the connection
//! that has been idle longest is closed to make room, so `/healthz` and ingestion still answer
//! while someone holds many sockets open. Only when every connection has a request in flight
//! does a new one wait (in the listen backlog) for a slot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tocsin_engine::Metrics;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The listen backlog: connections the kernel queues before `accept`.
pub const LISTEN_BACKLOG: i32 = 1024;
/// File descriptors kept free for the database, the data files and the rest of the process.
const RESERVED_DESCRIPTORS: u64 = 256;
/// Connections served at once when the config sets no limit and the descriptor limit allows.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long an idle connection may take to close after it was asked to.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Binds a TCP listener with a backlog of [`LISTEN_BACKLOG`] (the standard library's `bind`
/// uses 128, which a burst of clients overflows).
pub fn bind_listener(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Limits of every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's headers (and a TLS handshake) must arrive within this time.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits the config asks for, with the connection limit kept below the soft
    /// file-descriptor limit (raised toward the hard limit first, where allowed).
    pub fn from_config(server: &tocsin_config::Server) -> Self {
        let descriptors = raise_descriptor_limit();
        let allowed = descriptors.map(|soft| {
            usize::try_from(soft.saturating_sub(RESERVED_DESCRIPTORS).max(16)).unwrap_or(usize::MAX)
        });
        let wanted = server.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let max_connections = match allowed {
            Some(allowed) if wanted > allowed => {
                if server.max_connections.is_some() {
                    tracing::warn!(
                        configured = wanted,
                        allowed,
                        "server.max_connections is above what the file-descriptor limit allows; using the lower value"
                    );
                }
                allowed
            }
            _ => wanted,
        };
        ConnectionLimits {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            max_connections,
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (where the process may) and returns the
/// soft limit in force; logs both.
#[cfg(unix)]
fn raise_descriptor_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    let soft = before.current?;
    let hard = before.maximum;
    // macOS refuses a soft limit above OPEN_MAX even when the hard limit is "unlimited".
    let target = hard.unwrap_or(soft).min(1 << 20);
    if target > soft {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: hard,
            },
        ) {
            Ok(()) => {
                tracing::info!(
                    from = soft,
                    to = target,
                    hard = ?hard,
                    "raised the file-descriptor limit"
                );
                return Some(target);
            }
            Err(error) => {
                tracing::warn!(soft, hard = ?hard, error = %error, "cannot raise the file-descriptor limit");
            }
        }
    } else {
        tracing::info!(soft, hard = ?hard, "file-descriptor limit");
    }
    Some(soft)
}

#[cfg(not(unix))]
fn raise_descriptor_limit() -> Option<u64> {
    None
}

/// What a running connection shares with the accept loop.
struct ConnectionState {
    opened: Instant,
    /// Milliseconds after `opened` of the last byte read or written.
    last_activity: AtomicU64,
    /// Requests being answered.
    in_flight: AtomicUsize,
    /// Cancelled to close the connection at once (to make room for a new one).
    evict: CancellationToken,
}

impl ConnectionState {
    fn new() -> Self {
        ConnectionState {
            opened: Instant::now(),
            last_activity: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            evict: CancellationToken::new(),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(elapsed, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_activity.load(Ordering::Relaxed))
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }
}

/// Counts a request as in flight until its response is ready.
struct InFlight(Arc<ConnectionState>);

impl InFlight {
    fn new(state: &Arc<ConnectionState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records when bytes last moved.
struct Tracked<S> {
    inner: S,
    state: Arc<ConnectionState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.state.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.state.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Open connections, for choosing which idle one to close when the limit is reached.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnectionState>>>,
}

impl Registry {
    fn add(&self, state: Arc<ConnectionState>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, state);
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Asks the connection idle longest to close; false when every connection is busy.
    fn evict_one(&self) -> bool {
        let open = self.lock();
        let victim = open
            .values()
            .filter(|state| state.is_idle() && !state.evict.is_cancelled())
            .min_by_key(|state| state.last_activity());
        match victim {
            Some(state) => {
                state.evict.cancel();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnectionState>>> {
        // A panic while holding this lock leaves a valid map behind.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How a server is run.
pub(crate) struct ServerSettings {
    pub limits: ConnectionLimits,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long requests in flight may take to finish once `stop` is cancelled.
    pub drain_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` is cancelled; then stops accepting, lets
/// requests in flight finish (up to `drain_timeout`) and closes every connection.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    settings: ServerSettings,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let limits = settings.limits;
    let tls = settings.tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Registry::default());
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    tracing::info!(
        max_connections = limits.max_connections,
        header_read_timeout_ms = limits.header_read_timeout.as_millis() as u64,
        idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
        backlog = LISTEN_BACKLOG,
        "accepting connections"
    );
    loop {
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Make room by closing the connection idle longest; if all are busy, wait.
                registry.evict_one();
                tokio::select! {
                    () = stop.cancelled() => break,
                    permit = Arc::clone(&slots).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before accept: not fatal.
                    tracing::warn!(error = %error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::new(ConnectionState::new());
        let id = registry.add(Arc::clone(&state));
        let connection = Connection {
            state,
            router: router.clone(),
            builder: Arc::clone(&builder),
            tls: tls.clone(),
            limits,
            metrics: Arc::clone(&metrics),
            stop: stop.clone(),
        };
        let registry = Arc::clone(&registry);
        connections.spawn(async move {
            connection.run(stream, peer).await;
            registry.remove(id);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "stopped accepting; draining requests in flight"
    );
    let drained = tokio::time::timeout(settings.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            timeout_s = settings.drain_timeout.as_secs(),
            "requests still in flight after the drain timeout; closing their connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

struct Connection {
    state: Arc<ConnectionState>,
    router: Router,
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl Connection {
    async fn run(self, stream: TcpStream, peer: SocketAddr) {
        self.metrics.http_connections.inc();
        let stream = Tracked {
            inner: stream,
            state: Arc::clone(&self.state),
        };
        match self.tls.clone() {
            None => self.serve(stream, peer).await,
            Some(acceptor) => {
                let handshake = tokio::select! {
                    () = self.state.evict.cancelled() => None,
                    () = self.stop.cancelled() => None,
                    handshake = tokio::time::timeout(
                        self.limits.header_read_timeout,
                        acceptor.accept(stream),
                    ) => Some(handshake),
                };
                match handshake {
                    Some(Ok(Ok(stream))) => self.serve(stream, peer).await,
                    Some(Ok(Err(error))) => {
                        tracing::debug!(%peer, error = %error, "TLS handshake failed");
                    }
                    Some(Err(_)) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        self.metrics.count_connection_closed("idle");
                    }
                    None => self.metrics.count_connection_closed("evicted"),
                }
            }
        }
        self.metrics.http_connections.dec();
    }

    async fn serve<S>(&self, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::clone(&self.state);
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // Handlers that record where a request came from (heartbeat pings) read it here.
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let busy = InFlight::new(&state);
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await;
                drop(busy);
                response
            }
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let idle = self.limits.idle_timeout;
        // Set once the connection was asked to close: it must be gone by then.
        let mut closing_by: Option<tokio::time::Instant> = None;
        loop {
            // A busy connection is looked at again a little later, not in a loop.
            let due = self.state.last_activity() + idle;
            let idle_check = tokio::time::Instant::from_std(if due > Instant::now() {
                due
            } else {
                Instant::now() + idle.min(Duration::from_secs(1))
            });
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, error = %error, "connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep_until(idle_check), if closing_by.is_none() => {
                    if self.state.is_idle() && self.state.last_activity().elapsed() >= idle {
                        tracing::debug!(%peer, "closing an idle connection");
                        self.metrics.count_connection_closed("idle");
                        connection.as_mut().graceful_shutdown();
                        closing_by = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                    }
                }
                () = self.state.evict.cancelled() => {
                    tracing::debug!(%peer, "closing an idle connection to make room for a new one");
                    self.metrics.count_connection_closed("evicted");
                    return;
                }
                () = self.stop.cancelled(), if closing_by.is_none() => {
                    self.metrics.count_connection_closed("shutdown");
                    connection.as_mut().graceful_shutdown();
                    // The server's drain timeout bounds how long requests in flight may take.
                    closing_by = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                }
                () = sleep_until_option(closing_by) => {
                    if self.state.is_idle() {
                        return;
                    }
                    closing_by = None;
                }
            }
        }
    }
}

async fn sleep_until_option(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
