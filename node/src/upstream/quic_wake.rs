//! QUIC answers that poll their connection once more.
//!
//! Works around: libp2p-ping 0.48.0 (libp2p 0.57.1), `src/handler.rs`, `Handler::poll`: when
//! an inbound ping has been answered, the handler puts a new `recv_ping` future for the next
//! ping on the same stream in place of the finished one, and does not poll it. Until it is
//! polled, nothing waits on the stream, so the next ping wakes no one. Over TCP that costs
//! nothing: yamux reads the socket in the connection's task, so the frame carrying the next
//! ping wakes the connection and the handler reads it. Over QUIC it does: libp2p-quic 0.14.0's
//! muxer `poll` (`src/connection.rs`) is pending without a waker, and quinn 0.11 wakes only a
//! stream's registered reader, so the next ping waits until something else on the connection
//! polls its handlers: a timer, another stream, or never. Peers that send several pings on one
//! stream (py-libp2p's ping service; go- and rust-libp2p reuse their ping streams too) then
//! miss pongs: py-libp2p 0.8.1 got one or two of three pongs on one stream from a bootnode (0
//! of 20 tries got all three), the second only when `quic_fin`'s timer happened to poll the
//! connection; a plain rust-libp2p node answers late, when something else polls the connection
//! (once 4.8 s). Older libp2p-ping returned an event there, which made the connection poll
//! again. No upstream issue found.
//! Remove when: libp2p-ping polls (or wakes for) the future it installs; the canary
//! `upstream_ping_still_leaves_a_ping_on_a_quic_stream_unanswered` fails then.
//!
//! Rules, for a stream of a QUIC connection:
//! 1. On a stream the other side opened, a flush that completes after something was written
//!    (an answer is out) wakes the connection's task once more, so the next read the protocol
//!    set up is polled and waits on the stream.
//! 2. Not when nothing was written since the last flush: a flush polled while idle wakes
//!    nothing (no busy loop); and not on a stream we opened: there we asked, and wait on the
//!    answer ourselves.
//!
//! What it costs is one more poll of the connection per answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::StreamMuxer;

/// A stream muxer with its streams wrapped in [`Stream`] (see the module doc).
pub type Muxer<M> = super::stream_muxer::Muxer<M, Stream<<M as StreamMuxer>::Substream>>;

/// A stream whose answers poll its connection once more (see the module doc).
pub struct Stream<S> {
    inner: S,
    /// The other side opened it (rule 2).
    inbound: bool,
    /// Written since the last flush (rule 2).
    wrote: bool,
}

impl<S> super::stream_muxer::Wrap<S> for Stream<S> {
    fn wrap(inner: S, inbound: bool) -> Self {
        Self::new(inner, inbound)
    }
}

impl<S> Stream<S> {
    fn new(inner: S, inbound: bool) -> Self {
        Self {
            inner,
            inbound,
            wrote: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, buf));
        if matches!(written, Ok(n) if n > 0) {
            this.wrote = true;
        }
        Poll::Ready(written)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx));
        if flushed.is_ok() && std::mem::take(&mut this.wrote) && this.inbound {
            // Rule 1.
            cx.waker().wake_by_ref();
        }
        Poll::Ready(flushed)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::core::multiaddr::Protocol;
    use libp2p::core::muxing::StreamMuxerBox;
    use libp2p::swarm::{Swarm, SwarmEvent};
    use libp2p::{Transport as _, ping, quic};

    use super::*;

    /// A stream that takes every write and flush at once.
    struct Sink;

    impl AsyncWrite for Sink {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Writes (when `answer`) then flushes twice on a stream opened by the other side when
    /// `inbound`; how many wakes that made.
    fn wakes(inbound: bool, answer: bool) -> usize {
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut s = Stream::new(Sink, inbound);
        if answer {
            let written = Pin::new(&mut s).poll_write(&mut cx, b"pong");
            assert!(matches!(written, Poll::Ready(Ok(4))));
        }
        for _ in 0..2 {
            assert!(matches!(
                Pin::new(&mut s).poll_flush(&mut cx),
                Poll::Ready(Ok(()))
            ));
        }
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn rule_1_an_answer_flushed_wakes_once() {
        assert_eq!(wakes(true, true), 1);
    }

    #[test]
    fn rule_2_a_flush_with_nothing_written_wakes_nothing() {
        assert_eq!(wakes(true, false), 0);
    }

    #[test]
    fn rule_2_a_request_flushed_wakes_nothing() {
        assert_eq!(wakes(false, true), 0);
    }

    /// A swarm of libp2p's ping over libp2p's QUIC, its streams wrapped when `wrapped`,
    /// pinging every `interval` with `timeout`.
    fn ping_swarm(wrapped: bool, interval: Duration, timeout: Duration) -> Swarm<ping::Behaviour> {
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(|key| {
                quic::tokio::Transport::new(quic::Config::new(key)).map(move |(peer, c), _| {
                    let muxer = if wrapped {
                        StreamMuxerBox::new(Muxer::new(c))
                    } else {
                        StreamMuxerBox::new(c)
                    };
                    (peer, muxer)
                })
            })
            .unwrap()
            .with_behaviour(|_| {
                ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(interval)
                        .with_timeout(timeout),
                )
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build()
    }

    /// How long three pings at 50 ms on loopback may take: ample for the pongs; far less than
    /// [`PING_TIMEOUT`], after which a ping left unanswered would fail (silently, the first
    /// time) and the asker would go on on a new stream.
    const THREE_PINGS: Duration = Duration::from_secs(10);

    /// The asker's ping timeout: a ping left unanswered stays unanswered past [`THREE_PINGS`].
    const PING_TIMEOUT: Duration = Duration::from_secs(60);

    /// Over loopback, an asker pings an answerer every 50 ms on one stream; the answerer pings
    /// only once, at the start, so nothing else polls its connection. Whether the asker got
    /// three pongs within [`THREE_PINGS`].
    async fn three_pings_on_one_stream(wrapped: bool) -> bool {
        let mut answerer = ping_swarm(wrapped, Duration::from_secs(3600), PING_TIMEOUT);
        let mut asker = ping_swarm(false, Duration::from_millis(50), PING_TIMEOUT);
        answerer
            .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
            .unwrap();
        let address = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = answerer.select_next_some().await {
                break address;
            }
        };
        let answerer_id = *answerer.local_peer_id();
        asker
            .dial(address.with(Protocol::P2p(answerer_id)))
            .unwrap();
        let mut pongs = 0;
        let run = async {
            while pongs < 3 {
                tokio::select! {
                    event = asker.select_next_some() => {
                        if let SwarmEvent::Behaviour(ping::Event { result, .. }) = event {
                            result.expect("no ping fails within the ping timeout");
                            pongs += 1;
                        }
                    }
                    _ = answerer.select_next_some() => {}
                }
            }
        };
        tokio::time::timeout(THREE_PINGS, run).await.is_ok()
    }

    #[tokio::test]
    async fn rule_1_three_pings_on_one_quic_stream_get_three_pongs() {
        assert!(three_pings_on_one_stream(true).await);
    }

    /// Canary: what this wrapper exists for, on rust-libp2p's side.
    #[tokio::test]
    async fn upstream_ping_still_leaves_a_ping_on_a_quic_stream_unanswered() {
        assert!(
            !three_pings_on_one_stream(false).await,
            "libp2p's ping over QUIC now answers every ping on one stream: the quic_wake \
             wrapper may no longer be needed (see its module doc)"
        );
    }
}
