//! QUIC answers whose finish leaves after them.
//!
//! Works around: py-libp2p 0.8.1's QUIC stream reader, given what rust-libp2p does: the
//! protocols of libp2p 0.57.1 write an answer and finish the stream at once (libp2p-identify
//! 0.48.0's `send_identify`, `src/protocol.rs`: `framed_io.send(..)` then `framed_io.close()`),
//! and libp2p-quic 0.14.0's `Stream::poll_close` (`src/connection/stream.rs`) finishes the quinn
//! 0.11.12 send stream at once, so quinn-proto 0.11.19 sends the answer's last STREAM frame with
//! the FIN bit set. Neither is a bug upstream; the bug is py-libp2p's. No upstream issue found for
//! it (py-libp2p #1521, fixed by PR #1522, is a related fix to its QUIC reader's handling of a
//! peer's FIN; whether it cures this race is not verified); behaviour in libp2p-identify's
//! `src/protocol.rs`: `send_identify`. Remove when: no peer we serve over QUIC runs a py-libp2p
//! that loses an answer arriving with its FIN (check a py-libp2p release after 0.8.1 with the
//! interop lab's py-libp2p QUIC runs, without this wrapper). The canary
//! `upstream_identify_over_quic_still_sends_its_answer_with_the_finish` fails if rust-libp2p
//! stops sending the two together (then the wrapper is not needed either); what it cannot show
//! is py-libp2p's side, which only the interop lab does.
//!
//! libp2p's protocols answer on a stream and finish it at once: identify writes its answer and
//! closes. On QUIC the answer and the finish (FIN) then often leave in one STREAM frame. An
//! implementation that reads the two as one event may lose the answer: py-libp2p 0.8.1 checks
//! its buffer, then yields, then checks whether the stream has finished, so an answer that
//! comes with its FIN in that moment reads as an empty, finished stream (its multistream-select
//! of identify fails with "fail to read from multiselect communicator"; one dial in twenty on
//! loopback, against plain rust-libp2p as much as against us). A finish that leaves a moment
//! after the answer comes in a later packet, by when the answer is read. TCP is not affected:
//! yamux delivers data and its finish flag in order as separate reads.
//!
//! Rules, for a stream of a QUIC connection being closed:
//! 1. On a stream the other side opened, where we answer, our finish waits [`FIN_DELAY`] after
//!    we are done writing.
//! 2. Not if the other side has finished (or the stream failed): nothing of theirs is waiting;
//!    and not on a stream we opened: there our finish is what the other side waits for.
//! 3. Outside a tokio runtime there is no timer: the finish leaves at once.
//!
//! The wait holds nothing anyone waits on: the answer is out, and the other side reads its
//! length, not its end. What it costs is [`FIN_DELAY`] of a stream's slot per answer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::StreamMuxer;

/// How long an answer's finish waits after the answer (rule 1): long enough for the
/// connection to send what was written, a scheduling round, so the finish goes in a later
/// packet; short enough to hold nothing.
pub const FIN_DELAY: Duration = Duration::from_millis(5);

/// A stream muxer with its streams wrapped in [`Stream`] (see the module doc).
pub type Muxer<M> = super::stream_muxer::Muxer<M, Stream<<M as StreamMuxer>::Substream>>;

/// A stream whose finish, on an answer, leaves after the answer (see the module doc).
pub struct Stream<S> {
    inner: S,
    /// The other side opened it (rules 1 and 2).
    inbound: bool,
    /// The other side finished, or the stream failed (rule 2).
    ended: bool,
    /// The wait of rule 1, once closing began.
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
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
            ended: false,
            delay: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let read = std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        if matches!(read, Ok(0) | Err(_)) && !buf.is_empty() {
            this.ended = true;
        }
        Poll::Ready(read)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.inbound && !this.ended {
            // Rule 1, unless rule 3.
            if this.delay.is_none() && tokio::runtime::Handle::try_current().is_ok() {
                std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
                this.delay = Some(Box::pin(tokio::time::sleep(FIN_DELAY)));
            }
            if let Some(delay) = this.delay.as_mut() {
                std::task::ready!(delay.as_mut().poll(cx));
            }
        }
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
    use libp2p::core::Transport as _;
    use libp2p::core::multiaddr::Protocol;
    use libp2p::swarm::{Swarm, SwarmEvent};
    use libp2p::{identify, quic};

    use libp2p::core::muxing::StreamMuxerEvent;

    use super::*;

    /// A stream with `incoming` to read, then the other side's finish; it notes when ours left.
    struct Fake {
        incoming: Vec<u8>,
        finished: Arc<AtomicBool>,
    }

    impl AsyncRead for Fake {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = buf.len().min(this.incoming.len());
            buf[..n].copy_from_slice(&this.incoming[..n]);
            this.incoming.drain(..n);
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Fake {
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
            self.finished.store(true, Ordering::SeqCst);
            Poll::Ready(Ok(()))
        }
    }

    fn stream(inbound: bool) -> (Stream<Fake>, Arc<AtomicBool>) {
        let finished = Arc::new(AtomicBool::new(false));
        let fake = Fake {
            incoming: b"request".to_vec(),
            finished: finished.clone(),
        };
        (Stream::new(fake, inbound), finished)
    }

    #[tokio::test(start_paused = true)]
    async fn rule_1_an_answer_finishes_fin_delay_after_it() {
        let (mut s, finished) = stream(true);
        let mut request = [0u8; 7];
        s.read_exact(&mut request).await.unwrap();
        s.write_all(b"answer").await.unwrap();
        let start = tokio::time::Instant::now();
        s.close().await.unwrap();
        assert!(finished.load(Ordering::SeqCst));
        assert_eq!(start.elapsed(), FIN_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn rule_2_an_answer_to_a_finished_request_finishes_at_once() {
        let (mut s, finished) = stream(true);
        let mut request = Vec::new();
        s.read_to_end(&mut request).await.unwrap();
        let start = tokio::time::Instant::now();
        s.close().await.unwrap();
        assert!(finished.load(Ordering::SeqCst));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn rule_2_a_request_finishes_at_once() {
        let (mut s, finished) = stream(false);
        s.write_all(b"request").await.unwrap();
        let start = tokio::time::Instant::now();
        s.close().await.unwrap();
        assert!(finished.load(Ordering::SeqCst));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn rule_3_without_a_runtime_an_answer_finishes_at_once() {
        let (mut s, finished) = stream(true);
        futures::executor::block_on(s.close()).unwrap();
        assert!(finished.load(Ordering::SeqCst));
    }

    /// For every stream the asking side opened and read to its end: whether the end came in
    /// the same read as the last data (no wait between them).
    #[derive(Clone, Default)]
    struct Ends(Arc<Mutex<Vec<bool>>>);

    /// A muxer whose outbound streams note in `ends` how their answer ended.
    struct Watch<M> {
        inner: M,
        ends: Ends,
    }

    impl<M> StreamMuxer for Watch<M>
    where
        M: StreamMuxer + Unpin,
        M::Substream: Unpin,
    {
        type Substream = Watched<M::Substream>;
        type Error = M::Error;

        fn poll_inbound(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<Self::Substream, Self::Error>> {
            // Inbound streams are not watched: `ends` stays `None`.
            Pin::new(&mut self.get_mut().inner)
                .poll_inbound(cx)
                .map_ok(|inner| Watched::new(inner, None))
        }

        fn poll_outbound(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<Self::Substream, Self::Error>> {
            let this = self.get_mut();
            let ends = this.ends.clone();
            Pin::new(&mut this.inner)
                .poll_outbound(cx)
                .map_ok(|inner| Watched::new(inner, Some(ends)))
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.get_mut().inner).poll_close(cx)
        }

        fn poll(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
            Pin::new(&mut self.get_mut().inner).poll(cx)
        }
    }

    /// A stream that, each time it is read, reads all that has arrived, so it sees whether
    /// the end arrived with the data.
    struct Watched<S> {
        inner: S,
        ends: Option<Ends>,
        read: Vec<u8>,
        ended: bool,
    }

    impl<S> Watched<S> {
        fn new(inner: S, ends: Option<Ends>) -> Self {
            Self {
                inner,
                ends,
                read: Vec::new(),
                ended: false,
            }
        }
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let mut data = false;
            let mut chunk = [0u8; 4096];
            while !this.ended {
                match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                    Poll::Ready(Ok(0)) => {
                        this.ended = true;
                        if let Some(ends) = &this.ends {
                            ends.0.lock().unwrap().push(data);
                        }
                    }
                    Poll::Ready(Ok(n)) => {
                        this.read.extend_from_slice(&chunk[..n]);
                        data = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            if this.read.is_empty() {
                return if this.ended {
                    Poll::Ready(Ok(0))
                } else {
                    Poll::Pending
                };
            }
            let n = buf.len().min(this.read.len());
            buf[..n].copy_from_slice(&this.read[..n]);
            this.read.drain(..n);
            Poll::Ready(Ok(n))
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_flush(cx)
        }
        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_close(cx)
        }
    }

    /// A swarm of libp2p's identify over libp2p's QUIC, unwrapped; its outbound streams note
    /// in `ends` how they ended (reading only, nothing else changes).
    fn quic_swarm(ends: Ends) -> Swarm<identify::Behaviour> {
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(|key| {
                quic::tokio::Transport::new(quic::Config::new(key)).map(
                    move |(peer, connection), _| {
                        (
                            peer,
                            Watch {
                                inner: connection,
                                ends,
                            },
                        )
                    },
                )
            })
            .unwrap()
            .with_behaviour(|key| {
                identify::Behaviour::new(identify::Config::new(
                    "/peerfind-test/1".into(),
                    key.public(),
                ))
            })
            .unwrap()
            .build()
    }

    /// Canary: what this wrapper exists for, on rust-libp2p's side. Over loopback, on one
    /// thread (so nothing sends between identify's write and its finish), the asker reads
    /// identify's answer and its end together.
    #[tokio::test]
    async fn upstream_identify_over_quic_still_sends_its_answer_with_the_finish() {
        let ends = Ends::default();
        let mut asker = quic_swarm(ends.clone());
        let mut answerer = quic_swarm(Ends::default());
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
        let answered = async {
            loop {
                tokio::select! {
                    event = asker.select_next_some() => {
                        if let SwarmEvent::Behaviour(identify::Event::Received { peer_id, .. }) =
                            event
                            && peer_id == answerer_id
                        {
                            break;
                        }
                    }
                    _ = answerer.select_next_some() => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), answered)
            .await
            .expect("identify answered over QUIC");
        let ends = ends.0.lock().unwrap().clone();
        assert!(
            !ends.is_empty() && ends.iter().all(|&with_data| with_data),
            "libp2p's identify answer over QUIC no longer arrives with its finish (ends, per \
             stream, whether with the last data: {ends:?}): the quic_fin wrapper may no longer be \
             needed (see its module doc)"
        );
    }
}
