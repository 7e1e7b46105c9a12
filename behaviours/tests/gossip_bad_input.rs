//! Bad input on `/peerfind/enr/1.0.0`: each kind is dropped, logged, counted and reported,
//! and the record table and every other connection stay as they were.
//!
//! Three real swarms over libp2p's in-memory transport: the victim (a gossip node), an
//! honest peer whose record the victim holds, and an attacker that writes raw bytes on the
//! protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io;
use std::time::Duration;

use common::{identity, listen, record, record_at, swarm};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, StreamProtocol, Swarm};
use peerfind_behaviours::enr_ext::{self, SigningKey};
use peerfind_behaviours::frame::ProtocolError;
use peerfind_behaviours::gossip::{self, Violation, protocol::PROTOCOL};
use peerfind_proto::v1 as pb;
use prost::Message as _;

/// Writes its request bytes as they are and reads whatever comes back.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::new();
        io.take(1 << 16).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn read_response<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_request(p, io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&r).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        r: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_request(p, io, r).await
    }
}

struct Net {
    victim: Swarm<gossip::Behaviour>,
    honest: Swarm<gossip::Behaviour>,
    attacker: Swarm<request_response::Behaviour<RawCodec>>,
    attacker_key: SigningKey,
    honest_id: PeerId,
}

impl Net {
    /// The victim holding the honest peer's record, and the attacker connected to it.
    async fn new() -> Self {
        Self::trusting(gossip::Trust::Anyone).await
    }

    async fn trusting(trust: gossip::Trust) -> Self {
        let (vk, vs) = identity();
        let (hk, hs) = identity();
        let (ak, attacker_key) = identity();
        let honest_id = hk.public().to_peer_id();
        // By default the attacker plays a trusted peer gone bad (a compromised bootnode): the
        // decoding rules hold for records from trusted peers too. Untrusted pushes are dropped
        // before they are decoded (`an_untrusted_push_is_dropped_before_it_is_decoded`).
        let victim_config = gossip::Config {
            trust,
            ..Default::default()
        };
        let victim = swarm(vk, gossip::Behaviour::new(record(&vs, 1), victim_config));
        let honest = swarm(
            hk,
            gossip::Behaviour::new(record(&hs, 1), Default::default()),
        );
        let attacker = swarm(
            ak,
            request_response::Behaviour::with_codec(
                RawCodec,
                [(PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default(),
            ),
        );
        let mut net = Net {
            victim,
            honest,
            attacker,
            attacker_key,
            honest_id,
        };
        let addr = listen(&mut net.victim);
        net.honest.dial(addr.clone()).unwrap();
        net.attacker.dial(addr).unwrap();
        let honest_id = net.honest_id;
        net.until(
            |e| matches!(e, gossip::Event::RecordLearned { peer_id, .. } if *peer_id == honest_id),
        )
        .await;
        let attacker_id = *net.attacker.local_peer_id();
        let victim_id = *net.victim.local_peer_id();
        // Both ends must have seen the connection, or the attacker's request dials anew.
        while !net.victim.is_connected(&attacker_id) || !net.attacker.is_connected(&victim_id) {
            net.step().await;
        }
        net
    }

    /// Polls every swarm once; returns the victim's gossip event if it had one.
    async fn step(&mut self) -> Option<gossip::Event> {
        tokio::select! {
            e = self.victim.select_next_some() => match e {
                SwarmEvent::Behaviour(event) => Some(event),
                _ => None,
            },
            _ = self.honest.select_next_some() => None,
            _ = self.attacker.select_next_some() => None,
        }
    }

    async fn until(&mut self, mut done: impl FnMut(&gossip::Event) -> bool) -> gossip::Event {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(e) = self.step().await
                    && done(&e)
                {
                    return e;
                }
            }
        })
        .await
        .expect("the awaited event within 10 s")
    }

    /// The attacker sends `bytes` as one stream; returns the violation the victim reports.
    async fn attack(&mut self, bytes: Vec<u8>) -> Violation {
        let attacker = *self.attacker.local_peer_id();
        let victim = *self.victim.local_peer_id();
        self.attacker.behaviour_mut().send_request(&victim, bytes);
        let event = self
            .until(|e| matches!(e, gossip::Event::InputRejected { peer, .. } if *peer == attacker))
            .await;
        let gossip::Event::InputRejected { violation, .. } = event else {
            unreachable!()
        };
        violation
    }

    /// What every test asserts after an attack: one drop counted under `label`, the table
    /// holding exactly the honest record, and the honest connection still up.
    fn assert_unharmed(&self, label: &str) {
        let v = self.victim.behaviour();
        assert_eq!(
            v.rejected().get(label),
            Some(&1),
            "counters: {:?}",
            v.rejected()
        );
        assert_eq!(v.table().len(), 1, "only the honest record is held");
        assert!(v.table().get_by_peer(&self.honest_id).is_some());
        assert!(
            self.victim.is_connected(&self.honest_id),
            "the honest connection survives"
        );
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    prost::encoding::encode_varint(body.len() as u64, &mut buf);
    buf.extend_from_slice(body);
    buf
}

fn push(records: Vec<Vec<u8>>) -> Vec<u8> {
    let msg = pb::EnrRequest {
        kind: Some(pb::enr_request::Kind::Push(pb::Push { records })),
    };
    frame(&msg.encode_to_vec())
}

fn announce(record: Vec<u8>) -> Vec<u8> {
    let msg = pb::EnrRequest {
        kind: Some(pb::enr_request::Kind::Announce(pb::Announce { record })),
    };
    frame(&msg.encode_to_vec())
}

#[tokio::test]
async fn garbage_bytes_are_dropped_and_counted() {
    let mut net = Net::new().await;
    let v = net.attack(frame(&[0xff; 40])).await;
    assert!(
        matches!(v, Violation::Wire(ProtocolError::Malformed(_))),
        "{v}"
    );
    net.assert_unharmed("wire");
}

#[tokio::test]
async fn an_oversized_message_is_dropped_before_it_is_read() {
    let mut net = Net::new().await;
    let mut bytes = Vec::new();
    prost::encoding::encode_varint(1 << 20, &mut bytes);
    bytes.extend_from_slice(&[0u8; 1024]);
    let v = net.attack(bytes).await;
    assert!(
        matches!(v, Violation::Wire(ProtocolError::TooLarge { .. })),
        "{v}"
    );
    net.assert_unharmed("wire");
}

#[tokio::test]
async fn a_message_over_the_record_count_cap_is_dropped() {
    let mut net = Net::new().await;
    let one = enr_ext::encode_bytes(&record(&identity().1, 1));
    let v = net.attack(push(vec![one; 33])).await;
    assert!(
        matches!(
            v,
            Violation::Wire(ProtocolError::TooManyRecords { count: 33, .. })
        ),
        "{v}"
    );
    net.assert_unharmed("wire");
}

#[tokio::test]
async fn a_record_with_an_invalid_signature_drops_the_whole_message() {
    let mut net = Net::new().await;
    let good = enr_ext::encode_bytes(&record(&identity().1, 1));
    let mut bad = enr_ext::encode_bytes(&record(&identity().1, 1));
    bad[10] ^= 1;
    let v = net.attack(push(vec![good, bad])).await;
    assert_eq!(v.label(), "bad_signature", "{v}");
    net.assert_unharmed("bad_signature");
}

#[tokio::test]
async fn an_oversized_record_is_dropped() {
    let mut net = Net::new().await;
    let v = net.attack(push(vec![vec![0xc0; 301]])).await;
    assert_eq!(v.label(), "oversized_record", "{v}");
    net.assert_unharmed("oversized_record");
}

#[tokio::test]
async fn an_announcement_of_another_key_is_a_forgery() {
    let mut net = Net::new().await;
    let someone_else = enr_ext::encode_bytes(&record(&identity().1, 1));
    let v = net.attack(announce(someone_else)).await;
    assert!(matches!(v, Violation::Forged { .. }), "{v}");
    net.assert_unharmed("forged");
}

#[tokio::test]
async fn a_stale_announcement_is_refused_and_the_newer_record_kept() {
    let mut net = Net::new().await;
    let attacker = *net.attacker.local_peer_id();
    let key = net.attacker_key.clone();
    net.attacker.behaviour_mut().send_request(
        net.victim.local_peer_id(),
        announce(enr_ext::encode_bytes(&record(&key, 5))),
    );
    net.until(
        |e| matches!(e, gossip::Event::RecordLearned { peer_id, .. } if *peer_id == attacker),
    )
    .await;
    let v = net
        .attack(announce(enr_ext::encode_bytes(&record(&key, 4))))
        .await;
    assert_eq!(v.label(), "stale", "{v}");
    let held = net
        .victim
        .behaviour()
        .table()
        .get_by_peer(&attacker)
        .unwrap();
    assert_eq!(held.enr.seq(), 5, "the newer record stays");
    assert!(net.victim.is_connected(&net.honest_id));
}

/// Steps the swarms until the victim counted `label` once (these drops report no event).
async fn until_counted(net: &mut Net, label: &str) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while net.victim.behaviour().rejected().get(label) != Some(&1) {
            net.step().await;
        }
    })
    .await
    .expect("the drop counted within 10 s");
}

#[tokio::test]
async fn an_untrusted_push_is_dropped_before_it_is_decoded() {
    let mut net = Net::trusting(gossip::Trust::Nobody).await;
    let victim = *net.victim.local_peer_id();
    let good = enr_ext::encode_bytes(&record(&identity().1, 1));
    let mut bad = enr_ext::encode_bytes(&record(&identity().1, 1));
    bad[10] ^= 1;
    net.attacker
        .behaviour_mut()
        .send_request(&victim, push(vec![good, bad]));
    until_counted(&mut net, "untrusted").await;
    assert_eq!(
        net.victim.behaviour().rejected().get("bad_signature"),
        None,
        "no signature was checked"
    );
    net.assert_unharmed("untrusted");
}

#[tokio::test]
async fn an_announced_record_naming_an_address_its_connection_does_not_come_from_is_not_taken() {
    let mut net = Net::new().await;
    let victim = *net.victim.local_peer_id();
    let key = net.attacker_key.clone();
    // The in-memory connection shows no IP, so the record's 198.51.100.7 is unproven.
    net.attacker.behaviour_mut().send_request(
        &victim,
        announce(enr_ext::encode_bytes(&record_at(&key, 1))),
    );
    until_counted(&mut net, "unverified").await;
    net.assert_unharmed("unverified");
}

#[tokio::test]
async fn announcements_beyond_a_peers_rate_are_refused_before_they_are_decoded() {
    let mut net = Net::trusting(gossip::Trust::Nobody).await;
    let victim = *net.victim.local_peer_id();
    let per_peer = u64::from(gossip::DEFAULT_PER_PEER.count);
    // Each a bad signature: decoding one costs a signature check. One at a time, as the
    // victim reads a peer's streams 16 at once and refuses more.
    let mut bad = enr_ext::encode_bytes(&record(&net.attacker_key, 1));
    bad[10] ^= 1;
    let counted = |net: &Net| -> u64 { net.victim.behaviour().rejected().values().sum() };
    for sent in 1..=per_peer + 10 {
        net.attacker
            .behaviour_mut()
            .send_request(&victim, announce(bad.clone()));
        tokio::time::timeout(Duration::from_secs(10), async {
            while counted(&net) < sent {
                net.step().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("counters: {:?}", net.victim.behaviour().rejected()));
    }
    let counts = net.victim.behaviour().rejected();
    assert_eq!(counts.get("bad_signature"), Some(&per_peer), "{counts:?}");
    assert_eq!(counts.get("rate_limited"), Some(&10), "{counts:?}");
    assert_eq!(
        net.victim.behaviour().table().len(),
        1,
        "only the honest record"
    );
    assert!(net.victim.is_connected(&net.honest_id));
}
