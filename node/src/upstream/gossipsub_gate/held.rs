//! The held handler: gossipsub's connection handler, not polled until the gate releases it
//! (rules 1 and 5 of the parent module).

use super::*;

/// The gate's word to a held handler: gossipsub was told of its connection.
#[derive(Debug, Clone, Copy)]
pub struct Release;

/// What a held handler tells the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldEvent {
    /// Rule 2: the peer opened a gossipsub stream.
    Opened,
    /// Rule 5: the stream was dropped unread; the peer's streams are refused from now on.
    Dropped,
}

/// gossipsub's handler, not polled until released (rule 1): it opens no stream and sends
/// nothing while held, and the stream the peer opens waits unread (rule 5). Everything else
/// is the inner handler's.
pub struct Held {
    inner: Inner,
    released: bool,
    /// Rule 5: the newest stream the peer opened while held.
    stream: Option<InboundStream>,
    /// Rule 2: a stream opened, not yet reported.
    opened: bool,
    /// Rule 5: when a stream still held is dropped.
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    /// Rule 5: the peer's gossipsub streams are refused.
    refusing: bool,
    /// Rule 5: a drop not yet reported.
    dropped: bool,
}

impl Held {
    pub(super) fn new(inner: Inner) -> Self {
        Self {
            inner,
            released: false,
            stream: None,
            opened: false,
            deadline: Instant::now() + ADMISSION_WAIT,
            timer: None,
            refusing: false,
            dropped: false,
        }
    }

    /// While held: what to tell the gate, and the deadline of a stream held (rule 5).
    fn poll_held(&mut self, cx: &mut Context<'_>) -> Option<HeldEvent> {
        if std::mem::take(&mut self.opened) {
            return Some(HeldEvent::Opened);
        }
        if std::mem::take(&mut self.dropped) {
            return Some(HeldEvent::Dropped);
        }
        if self.stream.is_some() {
            let deadline = self.deadline;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.as_mut().poll(cx).is_ready() {
                self.stream = None;
                self.timer = None;
                self.refusing = true;
                return Some(HeldEvent::Dropped);
            }
        }
        None
    }
}

impl ConnectionHandler for Held {
    type FromBehaviour = Either<<Inner as ConnectionHandler>::FromBehaviour, Release>;
    type ToBehaviour = Either<<Inner as ConnectionHandler>::ToBehaviour, HeldEvent>;
    type InboundProtocol = <Inner as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <Inner as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <Inner as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <Inner as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        if self.refusing {
            // Rule 5: gossipsub's own handler refuses this way once disabled.
            return SubstreamProtocol::new(Either::Right(DeniedUpgrade), ());
        }
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if !self.released {
            // Released by an event, after which the connection polls its handler again.
            return match self.poll_held(cx) {
                Some(event) => Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(Either::Right(
                    event,
                ))),
                None => Poll::Pending,
            };
        }
        if let Some(stream) = self.stream.take() {
            // Rule 4: the stream the peer opened while held, read from now on.
            self.inner
                .on_connection_event(ConnectionEvent::FullyNegotiatedInbound(stream));
        }
        self.inner
            .poll(cx)
            .map(|event| event.map_custom(Either::Left))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner
            .poll_close(cx)
            .map(|event| event.map(Either::Left))
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        match event {
            Either::Left(event) => self.inner.on_behaviour_event(event),
            Either::Right(Release) => {
                self.released = true;
                self.refusing = false;
                self.timer = None;
            }
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(stream) if !self.released => {
                if self.refusing {
                    // Negotiated before the refusal began: dropped as well (rule 5).
                    self.dropped = true;
                } else {
                    // Rules 2 and 5: kept unread, an older one dropped.
                    self.stream = Some(stream);
                    self.opened = true;
                }
            }
            event => self.inner.on_connection_event(event),
        }
    }
}
