//! Accept loops: HTTPS (rustls) or plain HTTP, each connection served by hyper with the axum
//! router, the peer address and TLS flag attached. Graceful: in-flight requests finish on shutdown.
//! Every connection is bounded: per address and in all, in the time it takes to send its
//! headers, and in how long it may sit idle. Must never let one client hold the box's files.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use crate::net::watch::{LastSeen, Touch, Watched};
use crate::web::Tls;

/// A TLS handshake that takes longer than this is dropped (slow-loris, broken clients).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What bounds every connection (from `[http]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// 0: no bound.
    pub per_address: usize,
    pub total: usize,
}

impl Limits {
    pub fn of(http: &crate::config::HttpConfig) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(http.header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(http.idle_timeout_secs.max(1)),
            per_address: http.max_connections_per_address,
            total: http.max_connections.max(1),
        }
    }

    /// A connection answering a request but silent both ways for this long is dropped: a
    /// client that stopped sending its body half-way, or a peer that vanished.
    fn stalled(&self) -> Duration {
        (self.idle_timeout * 5).max(Duration::from_secs(300))
    }
}

/// The connections open now, shared by the listeners of one server (for the bounds and for
/// `/metrics`).
#[derive(Default)]
pub struct Connections {
    per_address: Mutex<HashMap<IpAddr, usize>>,
    open: AtomicUsize,
    refused: AtomicU64,
    timed_out: AtomicU64,
    all_closed: Notify,
}

impl Connections {
    /// (open now, refused since start, closed for a timeout since start).
    pub fn counts(&self) -> (usize, u64, u64) {
        (
            self.open.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.timed_out.load(Ordering::Relaxed),
        )
    }

    /// A place for one more connection from `ip`, or `None` past a bound.
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
        let mut map = self
            .per_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let from_ip = map.get(&ip).copied().unwrap_or(0);
        if (limits.per_address > 0 && from_ip >= limits.per_address)
            || self.open.load(Ordering::Relaxed) >= limits.total
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        map.insert(ip, from_ip + 1);
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            table: self.clone(),
            ip,
        })
    }
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    table: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .table
            .per_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        if self.table.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.table.all_closed.notify_waiters();
        }
    }
}

/// When a connection last moved a byte, and how many of its requests are being answered.
struct Activity {
    seen: LastSeen,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            seen: LastSeen::default(),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        self.seen.touch()
    }

    fn silent_for(&self) -> Duration {
        self.seen.silent_for()
    }
}

/// A request being answered; counted until its response is ready.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(a: &Arc<Activity>) -> InFlight {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl Touch for Activity {
    fn touch(&self) {
        self.seen.touch()
    }
}

/// Serve `app` on `listener` until `shutdown` turns true, then drain.
pub async fn run(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    connections: Arc<Connections>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper's header timer also runs while an HTTP/1.1 connection waits for its next request,
    // so it is the idle bound of keep-alive connections too.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let mut warned = Instant::now() - Duration::from_secs(60);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let Some(slot) = connections.admit(peer.ip(), &limits) else {
            // Closed at once: one address (or everyone together) holds too many already.
            if warned.elapsed() > Duration::from_secs(10) {
                warned = Instant::now();
                tracing::warn!(%peer, "connection refused: too many open");
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let is_tls = acceptor.is_some();
        let activity = Activity::new();
        let counting = activity.clone();
        let svc = app
            .clone()
            .map_request(move |mut req: axum::extract::Request<_>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req.extensions_mut().insert(Tls(is_tls));
                req
            })
            .map_future(move |fut| {
                let guard = InFlight::begin(&counting);
                async move {
                    let r = fut.await;
                    drop(guard);
                    r
                }
            });
        let svc = TowerToHyperService::new(svc);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let stop = shutdown.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                connections.timed_out.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        };
                    let io = Watched::new(stream, activity.clone());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
                    drive(conn, &activity, &limits, &connections, stop).await;
                }
                None => {
                    let io = Watched::new(tcp, activity.clone());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
                    drive(conn, &activity, &limits, &connections, stop).await;
                }
            }
        });
    }
    drop(listener);
    // Every connection task sees the flag and shuts its connection down gracefully.
    let drained = async {
        loop {
            let notified = connections.all_closed.notified();
            if connections.open.load(Ordering::Relaxed) == 0 {
                break;
            }
            notified.await;
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("some connections did not finish in time");
    }
}

/// Serve one connection to its end: close it gracefully once it has been idle too long or the
/// server stops, and drop it if it stalls in the middle of a request.
async fn drive<C>(
    conn: C,
    activity: &Activity,
    limits: &Limits,
    connections: &Connections,
    mut stop: watch::Receiver<bool>,
) where
    C: std::future::Future + GracefulConnection,
{
    let mut conn = std::pin::pin!(conn);
    let check = (limits.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut closing = false;
    loop {
        // Once closing, a connection with no request being answered (idle, or still sending
        // a header) goes at the next look: only answers in progress are waited for.
        let look = if closing {
            Duration::from_millis(100)
        } else {
            check
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stopped(&mut stop), if !closing => {
                closing = true;
                conn.as_mut().shut_down();
            }
            _ = tokio::time::sleep(look) => {
                let silent = activity.silent_for();
                let idle = activity.in_flight.load(Ordering::Relaxed) == 0;
                if closing && idle {
                    return;
                }
                if silent >= limits.stalled() {
                    connections.timed_out.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if idle && silent >= limits.idle_timeout && !closing {
                    connections.timed_out.fetch_add(1, Ordering::Relaxed);
                    closing = true;
                    conn.as_mut().shut_down();
                }
            }
        }
    }
}

/// A hyper connection that can be asked to finish what it is doing and close.
trait GracefulConnection {
    fn shut_down(self: Pin<&mut Self>);
}

impl<I, S, E, B> GracefulConnection
    for hyper_util::server::conn::auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper_util::server::conn::auto::HttpServerConnExec<S::Future, B>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Resolves once the shutdown flag is true (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
