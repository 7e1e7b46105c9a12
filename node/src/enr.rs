//! The node's own record: what it holds, how it is built, and how it changes.
//!
//! Every change (an address confirmed, the `nat` flag set or cleared) rebuilds the record
//! with `seq + 1` and stores it before anyone sees it, so the seq only ever grows, across
//! restarts too (EIP-778: a peer keeps the record with the highest seq). A start whose
//! content equals the stored record's keeps the stored seq; any other content gets the stored
//! seq + 1.
//!
//! Reading other nodes' records is `peerfind_behaviours::enr_ext`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use peerfind_behaviours::enr_ext::{
    self, Enr, NAT_KEY, NAT_VALUE, QUIC_KEY, QUIC6_KEY, SigningKey, Transport,
};

use crate::data_dir::{DataDir, RECORD_FILE};

/// Why the own record could not be built or stored.
#[derive(Debug, thiserror::Error)]
pub enum LocalRecordError {
    /// The ENR library refused to build or sign the record.
    #[error("cannot build the node record: {0}")]
    Build(#[from] enr::Error),
    /// Storing the record failed; it was not changed.
    #[error("cannot store the node record: {0}")]
    Store(#[from] std::io::Error),
}

/// What the node's record says, apart from its key and seq.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// Public IPv4 address (`ip`).
    pub ip4: Option<Ipv4Addr>,
    /// Public IPv6 address (`ip6`).
    pub ip6: Option<Ipv6Addr>,
    /// TCP port on `ip` (`tcp`).
    pub tcp4: Option<u16>,
    /// TCP port on `ip6` (`tcp6`).
    pub tcp6: Option<u16>,
    /// QUIC port on `ip` (`quic`).
    pub quic4: Option<u16>,
    /// QUIC port on `ip6` (`quic6`).
    pub quic6: Option<u16>,
    /// Behind a NAT (`nat`).
    pub nat: bool,
}

impl Content {
    /// Sets the address strangers can reach us at over `transport`. Returns whether it changed.
    pub fn set_socket(&mut self, ip: IpAddr, port: u16, transport: Transport) -> bool {
        let before = self.clone();
        match (ip, transport) {
            (IpAddr::V4(v4), Transport::Tcp) => (self.ip4, self.tcp4) = (Some(v4), Some(port)),
            (IpAddr::V4(v4), Transport::Quic) => (self.ip4, self.quic4) = (Some(v4), Some(port)),
            (IpAddr::V6(v6), Transport::Tcp) => (self.ip6, self.tcp6) = (Some(v6), Some(port)),
            (IpAddr::V6(v6), Transport::Quic) => (self.ip6, self.quic6) = (Some(v6), Some(port)),
        }
        *self != before
    }

    fn build(&self, seq: u64, key: &SigningKey) -> Result<Enr, enr::Error> {
        let mut builder = Enr::builder();
        builder.seq(seq);
        if let Some(ip) = self.ip4 {
            builder.ip4(ip);
        }
        if let Some(ip) = self.ip6 {
            builder.ip6(ip);
        }
        if let Some(port) = self.tcp4 {
            builder.tcp4(port);
        }
        if let Some(port) = self.tcp6 {
            builder.tcp6(port);
        }
        if let Some(port) = self.quic4 {
            builder.add_value(QUIC_KEY, &port);
        }
        if let Some(port) = self.quic6 {
            builder.add_value(QUIC6_KEY, &port);
        }
        if self.nat {
            builder.add_value(NAT_KEY, &NAT_VALUE);
        }
        builder.build(key)
    }
}

/// The node's own record, kept in step with its data directory.
#[derive(Debug)]
pub struct LocalRecord {
    dir: DataDir,
    key: SigningKey,
    content: Content,
    enr: Enr,
}

impl LocalRecord {
    /// The record with `content`, continuing the seq of the record stored in `dir`.
    pub fn open(dir: DataDir, key: SigningKey, content: Content) -> Result<Self, LocalRecordError> {
        let fresh = content.build(1, &key)?;
        let stored = dir
            .read(RECORD_FILE)?
            .and_then(|text| match enr_ext::decode_text(&text) {
                Ok(enr) if enr.node_id() == fresh.node_id() => Some(enr),
                Ok(_) => {
                    tracing::warn!("the stored record belongs to another key; starting over");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the stored record is unreadable; starting over");
                    None
                }
            });
        let enr = match stored {
            Some(old) if old.compare_content(&content.build(old.seq(), &key)?) => old,
            Some(old) => content.build(old.seq().saturating_add(1), &key)?,
            None => fresh,
        };
        let record = Self {
            dir,
            key,
            content,
            enr,
        };
        record.store()?;
        Ok(record)
    }

    /// The current record.
    pub fn enr(&self) -> &Enr {
        &self.enr
    }

    /// What the current record says.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// Applies `change` to the content; when that changes anything, signs the record anew
    /// with seq + 1 and stores it. Returns whether the record changed. On error nothing
    /// changed.
    pub fn update(&mut self, change: impl FnOnce(&mut Content)) -> Result<bool, LocalRecordError> {
        let mut content = self.content.clone();
        change(&mut content);
        if content == self.content {
            return Ok(false);
        }
        let seq = self
            .enr
            .seq()
            .checked_add(1)
            .ok_or(enr::Error::SequenceNumberTooHigh)?;
        let enr = content.build(seq, &self.key)?;
        let previous = std::mem::replace(&mut self.enr, enr);
        if let Err(e) = self.store() {
            self.enr = previous;
            return Err(e.into());
        }
        self.content = content;
        Ok(true)
    }

    fn store(&self) -> std::io::Result<()> {
        self.dir
            .write_atomic(RECORD_FILE, self.enr.to_base64().as_bytes(), 0o644)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn open(dir: &DataDir, content: Content) -> LocalRecord {
        let id = Identity::load_or_create(dir).unwrap();
        LocalRecord::open(dir.clone(), id.signing_key, content).unwrap()
    }

    #[test]
    fn seq_persists_and_strictly_increases_across_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();

        let mut first = open(&dir, Content::default());
        let start = first.enr().seq();
        assert!(
            first.enr().ip4().is_none(),
            "a node starts without an address"
        );
        assert!(
            first
                .update(|c| {
                    c.set_socket([198, 51, 100, 2].into(), 9000, Transport::Tcp);
                })
                .unwrap()
        );
        assert_eq!(first.enr().seq(), start + 1);
        assert!(
            !first.update(|c| c.nat = false).unwrap(),
            "no change, no new seq"
        );
        let before_restart = first.enr().seq();
        drop(first);

        // The restart starts again without an address: new content, so a higher seq.
        let second = open(&dir, Content::default());
        assert!(second.enr().seq() > before_restart);
        assert_eq!(
            second.enr().node_id(),
            open(&dir, Content::default()).enr().node_id()
        );
        // Same content again: the stored seq holds, it never goes back.
        let seq = second.enr().seq();
        drop(second);
        assert_eq!(open(&dir, Content::default()).enr().seq(), seq);
    }

    #[test]
    fn the_largest_record_peerfind_makes_fits_eip_778() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let content = Content {
            ip4: Some(Ipv4Addr::new(255, 255, 255, 254)),
            ip6: Some(Ipv6Addr::new(
                0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 1,
            )),
            tcp4: Some(65535),
            tcp6: Some(65535),
            quic4: Some(65535),
            quic6: Some(65535),
            nat: true,
        };
        let record = open(&dir, content);
        assert!(
            record.enr().size() <= enr_ext::MAX_RECORD_SIZE,
            "{} bytes",
            record.enr().size()
        );
        let back = enr_ext::decode_bytes(&enr_ext::encode_bytes(record.enr())).unwrap();
        assert!(enr_ext::is_natted(&back));
        assert_eq!(enr_ext::quic6(&back), Some(65535));
    }
}
