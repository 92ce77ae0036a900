//! Connection limits: a client that opens connections and sends nothing
//! must not use up the process's file descriptors (the store needs them to
//! create segments), and dashboards' event streams must not crowd out the
//! requests that do work, nor the other way round.
//!
//! - Every connection needs a permit from the request pool
//!   (`max_connections`) before it gets a service: while none is free the
//!   server stops accepting, and new connections wait in the kernel's
//!   backlog, holding no descriptor of ours.
//! - A connection that sends no complete request head within
//!   `header_read_timeout` (including HTTP/1.1 keep-alive idle time, and
//!   HTTP version detection) is closed; so is one where nothing was read or
//!   written for `idle_timeout` ([`IdleTimeout`]). Event streams write a
//!   keep-alive comment every 15 s, so they stay open.
//! - An event stream moves its connection from the request pool into the
//!   event pool (`max_event_streams`), so open dashboards never hold request
//!   permits; past the event limit, `GET /api/events` is a 503.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::http::{Request, StatusCode};
use axum::Router;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::error::ApiError;

/// File descriptors kept free for the store and the runtime, whatever the
/// connection limit says.
const RESERVED_FDS: u64 = 256;

/// Limits of `booster serve`'s connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections for API requests (and dashboards until they open their
    /// event stream).
    pub max_connections: usize,
    /// Connections holding an event stream (`GET /api/events`).
    pub max_event_streams: usize,
    /// Time for a request head to arrive, from connect or the previous response.
    pub header_read_timeout: Duration,
    /// A connection on which nothing moved for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 512,
            max_event_streams: 64,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

impl ConnectionLimits {
    /// Raises the soft descriptor limit to the hard one, and lowers the
    /// connection limits so that both pools together leave
    /// [`RESERVED_FDS`] descriptors to the store.
    pub fn fit_to_descriptor_limit(self) -> ConnectionLimits {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            let _ = setrlimit(Resource::Nofile, limit);
            limit = getrlimit(Resource::Nofile);
        }
        match limit.current {
            Some(fds) => self.fit_to(fds),
            None => self,
        }
    }

    /// The limits shrunk (never raised) to fit `fds` descriptors.
    fn fit_to(mut self, fds: u64) -> ConnectionLimits {
        let budget = fds.saturating_sub(RESERVED_FDS).max(2) as usize;
        if self.max_connections + self.max_event_streams > budget {
            self.max_event_streams = self.max_event_streams.min((budget / 8).max(1));
            self.max_connections = self.max_connections.min(budget - self.max_event_streams);
        }
        self
    }
}

/// The pools that connections draw from; shared by every connection.
#[derive(Clone)]
pub struct Pools {
    requests: Arc<Semaphore>,
    events: Arc<Semaphore>,
    max_event_streams: usize,
}

impl Pools {
    pub fn new(limits: &ConnectionLimits) -> Pools {
        Pools {
            requests: Arc::new(Semaphore::new(limits.max_connections)),
            events: Arc::new(Semaphore::new(limits.max_event_streams)),
            max_event_streams: limits.max_event_streams,
        }
    }

    /// How many event streams are open now.
    pub fn event_streams(&self) -> usize {
        self.max_event_streams - self.events.available_permits()
    }
}

/// The permits one connection holds, shared by its requests (in their
/// extensions) and released when the connection closes.
#[derive(Clone)]
pub struct ConnectionSlot(Arc<Mutex<SlotPermits>>);

struct SlotPermits {
    request: Option<OwnedSemaphorePermit>,
    event: Option<OwnedSemaphorePermit>,
    pools: Pools,
}

impl ConnectionSlot {
    /// Moves this connection into the event pool, or refuses with 503 when
    /// that is full (the connection keeps its request permit then).
    pub fn become_event_stream(&self) -> Result<(), ApiError> {
        let mut slot = self.0.lock();
        if slot.event.is_some() {
            return Ok(());
        }
        let permit = slot.pools.events.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{} event streams are open, the most this server allows; close a dashboard \
                     tab, or reload the jobs without live updates",
                    slot.pools.max_event_streams
                ),
            )
        })?;
        slot.event = Some(permit);
        slot.request = None;
        Ok(())
    }
}

/// The make-service: one [`WithSlot`] per connection, made only once a
/// request permit is free (`poll_ready` waits for it, which pauses accepting).
pub struct Gate {
    router: Router,
    pools: Pools,
    waiting: Option<Pin<Box<dyn Future<Output = OwnedSemaphorePermit> + Send>>>,
    ready: Option<OwnedSemaphorePermit>,
}

impl Gate {
    pub fn new(router: Router, pools: Pools) -> Gate {
        Gate {
            router,
            pools,
            waiting: None,
            ready: None,
        }
    }
}

impl Service<SocketAddr> for Gate {
    type Response = WithSlot;
    type Error = Infallible;
    type Future = std::future::Ready<Result<WithSlot, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.ready.is_none() {
            let requests = self.pools.requests.clone();
            let waiting = self.waiting.get_or_insert_with(|| {
                Box::pin(async move {
                    requests
                        .acquire_owned()
                        .await
                        .expect("the request pool is never closed")
                })
            });
            let permit = ready!(waiting.as_mut().poll(cx));
            self.waiting = None;
            self.ready = Some(permit);
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _peer: SocketAddr) -> Self::Future {
        let slot = SlotPermits {
            request: self.ready.take(),
            event: None,
            pools: self.pools.clone(),
        };
        std::future::ready(Ok(WithSlot {
            router: self.router.clone(),
            slot: ConnectionSlot(Arc::new(Mutex::new(slot))),
        }))
    }
}

/// A connection's service: the router, with the connection's slot put in
/// every request's extensions.
#[derive(Clone)]
pub struct WithSlot {
    router: Router,
    slot: ConnectionSlot,
}

impl<B> Service<Request<B>> for WithSlot
where
    Router: Service<Request<B>>,
{
    type Response = <Router as Service<Request<B>>>::Response;
    type Error = <Router as Service<Request<B>>>::Error;
    type Future = <Router as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        <Router as Service<Request<B>>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.slot.clone());
        self.router.call(req)
    }
}

/// The acceptor that wraps each TCP stream in [`IdleTimeout`] (under TLS,
/// when there is TLS), with Nagle's algorithm off, as axum-server's own
/// acceptor (which this one replaces) sets it: a gRPC reply is written as
/// headers, data and trailers, and with Nagle on the last part waited for
/// the worker's delayed ACK, so every remote lease and commit could stall
/// for it (the `fleet` bench).
#[derive(Clone)]
pub struct IdleAcceptor {
    pub idle: Duration,
}

impl<S> axum_server::accept::Accept<tokio::net::TcpStream, S> for IdleAcceptor {
    type Stream = IdleTimeout<tokio::net::TcpStream>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let nodelay = stream.set_nodelay(true);
        std::future::ready(nodelay.map(|()| (IdleTimeout::new(stream, self.idle), service)))
    }
}

/// A stream that fails with `TimedOut` once nothing was read or written
/// for `idle`, so hyper closes the connection.
pub struct IdleTimeout<T> {
    inner: T,
    idle: Duration,
    /// When bytes last moved; the timer is only re-armed when it fires, so
    /// a busy stream costs a clock read per poll, not a timer update.
    last_moved: Instant,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    pub fn new(inner: T, idle: Duration) -> IdleTimeout<T> {
        IdleTimeout {
            inner,
            idle,
            last_moved: Instant::now(),
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.last_moved = Instant::now();
    }

    /// Pending I/O: an error once nothing moved for `idle` (the sleep's
    /// waker is registered, so the task wakes up to see it).
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.deadline.as_mut().poll(cx));
            let due = self.last_moved + self.idle;
            if due <= Instant::now() {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            self.deadline.as_mut().reset(due);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.moved();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.moved();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.moved();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        use axum_server::accept::Accept as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let acceptor = IdleAcceptor {
            idle: Duration::from_secs(60),
        };
        let (accepted, ()) = acceptor.accept(stream, ()).await.unwrap();
        assert!(accepted.inner.nodelay().unwrap(), "TCP_NODELAY on");
    }

    #[test]
    fn limits_shrink_to_leave_the_store_its_descriptors_and_never_grow() {
        let asked = ConnectionLimits::default();
        let fit = asked.fit_to(1024);
        assert!(fit.max_connections + fit.max_event_streams <= 1024 - RESERVED_FDS as usize);
        assert!(fit.max_event_streams >= 1 && fit.max_connections >= 1);
        let small = ConnectionLimits {
            max_connections: 8,
            ..asked
        };
        let fit = small.fit_to(300);
        assert_eq!((fit.max_connections, fit.max_event_streams), (8, 5));
        let fit = asked.fit_to(1 << 20);
        assert_eq!(fit.max_connections, asked.max_connections);
    }
}
