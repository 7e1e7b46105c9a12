//! The API's connections: counted, capped, and closed when idle, so that clients that open
//! connections and never use them (or never even send a byte) cannot take the file
//! descriptors the node's swarm needs.
//!
//! Rules, in order:
//! 1. A connection is busy while a call on it is in flight (a unary call until its answer is
//!    sent, a watch until its stream ends); otherwise it is idle since its last call ended, or
//!    since it was accepted. HTTP/2 pings and bytes that start no call do not make it busy.
//! 2. A connection idle for the idle timeout is closed; so is one that never sent a byte.
//! 3. At most `max` connections are open. A connection accepted beyond that closes the one
//!    idle the longest to make room; when every open one is busy, the new one is closed at once.
//! 4. Reaching the cap logs one warning; the next one comes only after the count has fallen to
//!    half the cap, so a flood of connections logs once, not once per connection.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

/// How long accepting pauses after the system refused to accept (out of file descriptors):
/// retrying at once would spin; the descriptors come back as idle connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The connections of one API server.
#[derive(Debug, Clone)]
pub(crate) struct Connections {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    max: usize,
    idle_timeout: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
    /// Rule 4: whether the cap warning was given since the count was last at half the cap.
    warned: bool,
}

/// One open connection as the rules see it.
#[derive(Debug)]
pub(crate) struct Conn {
    in_flight: AtomicUsize,
    /// When it last became idle (rule 1).
    idle_since: Mutex<Instant>,
    /// Set to close it (rule 3).
    evicted: AtomicBool,
    /// The connection's reader, woken when a call ends or it is evicted.
    waker: AtomicWaker,
}

/// What the gRPC server knows of a connection: in every request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    conn: Arc<Conn>,
}

/// What [`Connections::admit`] decided for a new connection.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    /// Room was free.
    Admitted,
    /// Admitted after closing the longest-idle connection (rule 3).
    Evicted,
    /// Every open connection is busy: refused (rule 3).
    Refused,
}

impl Connections {
    /// At most `max` connections (at least 1), each closed after `idle_timeout` idle.
    pub(crate) fn new(max: usize, idle_timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                max: max.max(1),
                idle_timeout,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// How many connections are open.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.state().open.len()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rules 3 and 4 for a connection just accepted: its entry, or `None` when refused.
    fn admit(&self, now: Instant) -> (Admission, Option<(u64, Arc<Conn>)>) {
        let max = self.shared.max;
        let mut state = self.state();
        let mut admission = Admission::Admitted;
        if state.open.len() >= max {
            let idlest = state
                .open
                .values()
                .filter(|c| c.in_flight.load(Ordering::SeqCst) == 0)
                .filter(|c| !c.evicted.load(Ordering::SeqCst))
                .min_by_key(|c| *c.idle_since())
                .cloned();
            if !state.warned {
                state.warned = true;
                tracing::warn!(
                    max,
                    "the status API reached its connection cap: closing the longest-idle \
                     connections to admit new ones (--api-max-connections)"
                );
            }
            match idlest {
                Some(conn) => {
                    conn.evict();
                    admission = Admission::Evicted;
                }
                None => return (Admission::Refused, None),
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(now),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        state.open.insert(id, conn.clone());
        (admission, Some((id, conn)))
    }

    fn remove(&self, id: u64) {
        let mut state = self.state();
        state.open.remove(&id);
        if state.open.len() <= self.shared.max / 2 {
            state.warned = false;
        }
    }

    /// Accepts connections on `listener` for ever, as the rules say.
    pub(crate) fn incoming(
        self,
        listener: TcpListener,
    ) -> impl Stream<Item = Result<ApiStream, io::Error>> + Send + 'static {
        futures::stream::unfold((self, listener), |(conns, listener)| async move {
            loop {
                match listener.accept().await {
                    Ok((stream, remote)) => {
                        let (_, entry) = conns.admit(Instant::now());
                        // A refused stream is dropped here, which closes it.
                        let Some((id, conn)) = entry else { continue };
                        let _ = stream.set_nodelay(true);
                        let io = ApiStream {
                            stream,
                            remote,
                            id,
                            conn,
                            conns: conns.clone(),
                            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
                        };
                        return Some((Ok(io), (conns, listener)));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "the status API could not accept a connection");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            }
        })
    }
}

impl Conn {
    fn idle_since(&self) -> MutexGuard<'_, Instant> {
        self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// A call started on this connection; it is busy until the guard drops (rule 1).
    pub(crate) fn begin(self: &Arc<Self>) -> CallGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        CallGuard { conn: self.clone() }
    }

    /// When the connection is to be closed (rule 2), or `None` while it is busy.
    fn deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.evicted.load(Ordering::SeqCst) {
            return Some(Instant::now());
        }
        (self.in_flight.load(Ordering::SeqCst) == 0).then(|| *self.idle_since() + idle_timeout)
    }
}

impl ConnInfo {
    /// A call started on the connection this request came on.
    pub(crate) fn begin(&self) -> CallGuard {
        self.conn.begin()
    }
}

/// Keeps a connection busy while a call is in flight.
#[derive(Debug)]
pub(crate) struct CallGuard {
    conn: Arc<Conn>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        *self.conn.idle_since() = Instant::now();
        self.conn.in_flight.fetch_sub(1, Ordering::SeqCst);
        // Its reader arms the idle timer again.
        self.conn.waker.wake();
    }
}

/// An accepted API connection: a TCP stream that ends itself when the rules say so.
#[derive(Debug)]
pub(crate) struct ApiStream {
    stream: TcpStream,
    remote: SocketAddr,
    id: u64,
    conn: Arc<Conn>,
    conns: Connections,
    timer: Pin<Box<Sleep>>,
}

impl ApiStream {
    /// Whether the connection is to close now; otherwise arms the wake-up for when it might.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.conn.waker.register(cx.waker());
        loop {
            let Some(deadline) = self.conn.deadline(self.conns.shared.idle_timeout) else {
                // Busy: the end of the call wakes us.
                return false;
            };
            if Instant::now() >= deadline {
                return true;
            }
            self.timer.as_mut().reset(deadline);
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }
}

impl Drop for ApiStream {
    fn drop(&mut self) {
        self.conns.remove(self.id);
    }
}

impl AsyncRead for ApiStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            tracing::debug!(remote = %self.remote, "closing an idle API connection");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "idle API connection closed",
            )));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ApiStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for ApiStream {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo {
            conn: self.conn.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    const IDLE: Duration = Duration::from_secs(30);

    #[test]
    fn at_the_cap_the_longest_idle_goes_and_when_all_are_busy_the_new_one_is_refused() {
        let conns = Connections::new(2, IDLE);
        let t0 = Instant::now();
        let (a1, old) = conns.admit(t0);
        let (a2, young) = conns.admit(t0 + Duration::from_secs(1));
        assert_eq!((a1, a2), (Admission::Admitted, Admission::Admitted));
        let (old, young) = (old.unwrap().1, young.unwrap().1);
        assert!(!conns.state().warned);

        // Rule 3: the third closes the one idle the longest; rule 4: one warning.
        let (a3, third) = conns.admit(t0 + Duration::from_secs(2));
        assert_eq!(a3, Admission::Evicted);
        assert!(old.evicted.load(Ordering::SeqCst) && !young.evicted.load(Ordering::SeqCst));
        assert!(conns.state().warned);
        let (id, _) = conns
            .state()
            .open
            .iter()
            .find(|(_, c)| Arc::ptr_eq(c, &old))
            .map(|(id, c)| (*id, c.clone()))
            .unwrap();
        conns.remove(id);

        // Every open one busy: the new one is refused.
        let _busy = (young.begin(), third.unwrap().1.begin());
        let (a4, none) = conns.admit(t0 + Duration::from_secs(3));
        assert_eq!(a4, Admission::Refused);
        assert!(none.is_none());
        assert_eq!(conns.open(), 2);
    }

    #[test]
    fn the_warning_rearms_only_at_half_the_cap() {
        let conns = Connections::new(4, IDLE);
        let ids: Vec<u64> = (0..5)
            .map(|_| conns.admit(Instant::now()))
            .filter_map(|(_, e)| e.map(|(id, _)| id))
            .collect();
        assert!(conns.state().warned);
        conns.remove(ids[0]);
        conns.remove(ids[1]);
        assert!(conns.state().warned, "3 of 4 open: still near the cap");
        conns.remove(ids[2]);
        assert!(
            !conns.state().warned,
            "half the cap: the next hit warns again"
        );
    }

    /// A listener whose accepted connections come through the rules.
    async fn serve(
        conns: &Connections,
    ) -> (SocketAddr, impl Stream<Item = Result<ApiStream, io::Error>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (addr, Box::pin(conns.clone().incoming(listener)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_sends_a_byte_is_closed_after_the_idle_timeout() {
        use futures::StreamExt;
        let conns = Connections::new(8, IDLE);
        let (addr, mut incoming) = serve(&conns).await;
        let _client = TcpStream::connect(addr).await.unwrap();
        let mut server = incoming.next().await.unwrap().unwrap();
        let start = Instant::now();
        let err = server.read(&mut [0u8; 16]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), IDLE);
        drop(server);
        assert_eq!(conns.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_stays_and_its_idle_time_counts_from_the_end_of_its_call() {
        use futures::StreamExt;
        let conns = Connections::new(8, IDLE);
        let (addr, mut incoming) = serve(&conns).await;
        let _client = TcpStream::connect(addr).await.unwrap();
        let mut server = incoming.next().await.unwrap().unwrap();
        let call = server.conn.begin();
        let read = tokio::time::timeout(IDLE * 3, server.read(&mut [0u8; 16])).await;
        assert!(read.is_err(), "a busy connection is not closed: {read:?}");
        let ended = Instant::now();
        drop(call);
        let err = server.read(&mut [0u8; 16]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(ended.elapsed(), IDLE);
    }
}
