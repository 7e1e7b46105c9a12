//! One connection's side of [`super`]: rounds one at a time over one reused outbound stream
//! (rule 2), answers on one inbound stream at a pace (rule 4).

use std::collections::VecDeque;
use std::io;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, Either};
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt};
use futures_timer::Delay;
use libp2p::StreamProtocol;
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, Stream, StreamUpgradeError, SubstreamProtocol,
};

use super::{ANSWER_PACE, Failure, MAX_QUEUED, PROTOCOL, ROUND_TIMEOUT, RoundId};

/// A ping's payload, as libp2p's ping has it.
const SIZE: usize = 32;

type Ended = (RoundId, Result<Duration, Failure>);

/// The outbound stream's state.
enum Outbound {
    /// None open.
    Closed,
    /// Asked the connection for one.
    Opening,
    /// Open, no round on it.
    Idle(Stream),
    /// A round on it.
    Busy(
        BoxFuture<'static, (Stream, Result<Duration, Failure>)>,
        RoundId,
    ),
}

/// The handler. See the module doc of [`super`].
pub struct Handler {
    queued: VecDeque<RoundId>,
    outbound: Outbound,
    inbound: Option<BoxFuture<'static, io::Result<(Stream, Instant)>>>,
    ended: VecDeque<Ended>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("queued", &self.queued)
            .field("answering", &self.inbound.is_some())
            .finish_non_exhaustive()
    }
}

impl Handler {
    pub(super) fn new() -> Self {
        Self {
            queued: VecDeque::new(),
            outbound: Outbound::Closed,
            inbound: None,
            ended: VecDeque::new(),
        }
    }
}

/// One round on `stream`: 32 random bytes out, the same back, within [`ROUND_TIMEOUT`].
async fn round(mut stream: Stream) -> (Stream, Result<Duration, Failure>) {
    let payload: [u8; SIZE] = rand::random();
    let started = Instant::now();
    let exchange = async {
        stream.write_all(&payload).await?;
        stream.flush().await?;
        let mut echo = [0u8; SIZE];
        stream.read_exact(&mut echo).await?;
        Ok::<_, io::Error>(echo)
    };
    let outcome = match futures::future::select(Box::pin(exchange), Delay::new(ROUND_TIMEOUT)).await
    {
        Either::Left((Ok(echo), _)) if echo == payload => Ok(started.elapsed()),
        Either::Left((Ok(_), _)) => Err(Failure::Stream("the answer was not the echo".into())),
        Either::Left((Err(e), _)) => Err(Failure::Stream(e.to_string())),
        Either::Right(_) => Err(Failure::Timeout),
    };
    (stream, outcome)
}

/// Answers one ping on `stream`, no sooner than [`ANSWER_PACE`] after the last answer (rule 4).
async fn answer(mut stream: Stream, last: Option<Instant>) -> io::Result<(Stream, Instant)> {
    let mut payload = [0u8; SIZE];
    stream.read_exact(&mut payload).await?;
    if let Some(wait) = last.and_then(|at| ANSWER_PACE.checked_sub(at.elapsed())) {
        Delay::new(wait).await;
    }
    stream.write_all(&payload).await?;
    stream.flush().await?;
    Ok((stream, Instant::now()))
}

impl ConnectionHandler for Handler {
    type FromBehaviour = RoundId;
    type ToBehaviour = Ended;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ())
    }

    fn on_behaviour_event(&mut self, round: RoundId) {
        // Rule 2: the one in flight, and at most MAX_QUEUED behind it.
        if self.queued.len() >= MAX_QUEUED {
            self.ended.push_back((round, Err(Failure::Busy)));
        } else {
            self.queued.push_back(round);
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        // The next answer's read is polled as soon as it is set up, so that it waits on the
        // stream (a future never polled is never woken by the stream's data).
        while let Some(answering) = self.inbound.as_mut() {
            match answering.poll_unpin(cx) {
                Poll::Ready(Ok((stream, at))) => {
                    self.inbound = Some(answer(stream, Some(at)).boxed())
                }
                // The peer closed it, or broke it: it may open another.
                Poll::Ready(Err(_)) => self.inbound = None,
                Poll::Pending => break,
            }
        }
        loop {
            if let Some(ended) = self.ended.pop_front() {
                return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(ended));
            }
            match std::mem::replace(&mut self.outbound, Outbound::Closed) {
                Outbound::Busy(mut running, id) => match running.poll_unpin(cx) {
                    Poll::Ready((stream, result)) => {
                        // A stream that failed is not reused: the next round opens another.
                        if result.is_ok() {
                            self.outbound = Outbound::Idle(stream);
                        }
                        return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour((id, result)));
                    }
                    Poll::Pending => {
                        self.outbound = Outbound::Busy(running, id);
                        return Poll::Pending;
                    }
                },
                Outbound::Idle(stream) => match self.queued.pop_front() {
                    Some(id) => self.outbound = Outbound::Busy(round(stream).boxed(), id),
                    None => {
                        self.outbound = Outbound::Idle(stream);
                        return Poll::Pending;
                    }
                },
                Outbound::Opening => {
                    self.outbound = Outbound::Opening;
                    return Poll::Pending;
                }
                Outbound::Closed => {
                    if self.queued.is_empty() {
                        return Poll::Pending;
                    }
                    self.outbound = Outbound::Opening;
                    return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                        protocol: SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ())
                            .with_timeout(ROUND_TIMEOUT),
                    });
                }
            }
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: mut stream,
                ..
            }) => {
                // Rule 4: a newer stream replaces the one answered so far.
                stream.ignore_for_keep_alive();
                self.inbound = Some(answer(stream, None).boxed());
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: mut stream,
                ..
            }) => {
                stream.ignore_for_keep_alive();
                self.outbound = Outbound::Idle(stream);
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => {
                self.outbound = Outbound::Closed;
                let failure = match error {
                    StreamUpgradeError::NegotiationFailed => Failure::Unsupported,
                    StreamUpgradeError::Timeout => Failure::Timeout,
                    StreamUpgradeError::Io(e) => Failure::Stream(e.to_string()),
                    StreamUpgradeError::Apply(e) => libp2p::core::util::unreachable(e),
                };
                // A peer that does not speak the protocol will not for the rounds behind
                // either; any other failure ends only the round that opened the stream.
                let ending = if failure == Failure::Unsupported {
                    self.queued.len()
                } else {
                    1
                };
                for id in self.queued.drain(..ending.min(self.queued.len())) {
                    self.ended.push_back((id, Err(failure.clone())));
                }
            }
            _ => {}
        }
    }
}
