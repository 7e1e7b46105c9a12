//! The node's own record: what it holds, how it is built, and how it changes.
//!
//! Every change (an address confirmed, the `nat` flag set or cleared) rebuilds the record
//! with `seq + 1` and stores it before anyone sees it. Peers keep the record with the highest
//! seq (EIP-778) and drop any other as stale, so a seq that went back would leave the old
//! record, with its old addresses, in every table until it expired.
//!
//! The stored record alone cannot promise that: a deleted, garbled or restored-from-backup
//! `enr` file would restart the count below what the network holds. So a record that starts
//! over takes its seq from the clock, in milliseconds since the Unix epoch (as go-ethereum's
//! local node does): no node changes its record a thousand times a second, so a clock seq is
//! above every seq this key signed before, whatever happened to the file. The clock only
//! helps, never rules: the stored seq + 1 wins when it is higher (a clock set back).
//!
//! Rules of [`LocalRecord::open`], in order:
//! 1. The `enr` file cannot be read at all (permissions, an I/O error): refuse to start,
//!    naming the file ([`LocalRecordError::Read`]).
//! 2. It is missing, or unreadable as a record (binary or text garbage, a bad signature), or
//!    signed by another key: start over (a warning names the file unless it was missing).
//!    The key is the identity and the record is rebuilt from it, so nothing is lost.
//! 3. A readable record of ours with the same content as this start's: keep it, seq and all.
//! 4. Otherwise the new record's seq is the larger of the stored seq + 1 and the clock seq;
//!    starting over (rule 2) it is the clock seq.
//!
//! Reading other nodes' records is `peerfind_behaviours::enr_ext`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{SystemTime, UNIX_EPOCH};

use peerfind_behaviours::enr_ext::{
    self, Enr, NAT_KEY, NAT_VALUE, NatMapping, QUIC_KEY, QUIC6_KEY, SigningKey, Transport,
};

use crate::record::data_dir::{DataDir, RECORD_FILE};

/// Why the own record could not be built, read or stored: one variant per cause, each naming
/// the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LocalRecordError {
    /// The ENR library refused to build or sign the record.
    #[error("cannot build the node record: {0}")]
    Build(#[from] enr::Error),
    /// The record file exists but could not be read (rule 1).
    #[error(
        "cannot read the node record {path}: {source} (check its owner and permissions, or \
         delete it: the record is rebuilt from the key)"
    )]
    Read {
        /// The record file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// Storing the record failed; it was not changed.
    #[error(
        "cannot store the node record {path}: {source} (is the data directory writable and \
         the disk not full?)"
    )]
    Store {
        /// The record file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// The seq a record starting over gets at `now`: milliseconds since the Unix epoch (at least
/// 1, for a clock before 1970). See the module doc for why.
pub fn clock_seq(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
        .max(1)
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
    /// How the NAT maps the TCP listen port (`nat-tcp`), once two bootnodes saw it; written
    /// only with `nat`.
    pub tcp_mapping: Option<NatMapping>,
    /// The same for the QUIC listen port (`nat-quic`).
    pub quic_mapping: Option<NatMapping>,
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

    /// How the NAT maps `transport`'s listen port.
    pub fn mapping_mut(&mut self, transport: Transport) -> &mut Option<NatMapping> {
        match transport {
            Transport::Tcp => &mut self.tcp_mapping,
            Transport::Quic => &mut self.quic_mapping,
        }
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
            let mappings = [
                (Transport::Tcp, self.tcp_mapping),
                (Transport::Quic, self.quic_mapping),
            ];
            for (transport, mapping) in mappings {
                if let Some(mapping) = mapping {
                    builder.add_value(NatMapping::key(transport), &mapping.to_value());
                }
            }
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
    /// The record with `content`, continuing the seq of the record stored in `dir` as the
    /// module doc's rules say.
    pub fn open(dir: DataDir, key: SigningKey, content: Content) -> Result<Self, LocalRecordError> {
        Self::open_at(dir, key, content, clock_seq(SystemTime::now()))
    }

    /// [`LocalRecord::open`] with the clock seq given.
    fn open_at(
        dir: DataDir,
        key: SigningKey,
        content: Content,
        clock: u64,
    ) -> Result<Self, LocalRecordError> {
        let path = dir.file(RECORD_FILE).display().to_string();
        let fresh = content.build(clock, &key)?;
        // Rule 1.
        let bytes = dir
            .read(RECORD_FILE)
            .map_err(|source| LocalRecordError::Read {
                path: path.clone(),
                source,
            })?;
        // Rule 2.
        let stored = bytes.and_then(|bytes| {
            let decoded = std::str::from_utf8(&bytes)
                .map_err(|_| "it is not text".to_owned())
                .and_then(|text| enr_ext::decode_text(text).map_err(|e| e.to_string()));
            match decoded {
                Ok(enr) if enr.node_id() == fresh.node_id() => Some(enr),
                Ok(_) => {
                    tracing::warn!(
                        path,
                        "the stored record belongs to another key; starting over"
                    );
                    None
                }
                Err(reason) => {
                    tracing::warn!(
                        path,
                        reason,
                        "the stored record is unreadable; starting over"
                    );
                    None
                }
            }
        });
        let enr = match stored {
            // Rule 3.
            Some(old) if old.compare_content(&content.build(old.seq(), &key)?) => old,
            // Rule 4.
            Some(old) => content.build(old.seq().saturating_add(1).max(clock), &key)?,
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
        // A change the record does not show (a NAT mapping while there is no `nat` flag) is
        // kept for later, with no new seq: peers would get the same record again.
        if content
            .build(self.enr.seq(), &self.key)?
            .compare_content(&self.enr)
        {
            self.content = content;
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
            return Err(e);
        }
        self.content = content;
        Ok(true)
    }

    fn store(&self) -> Result<(), LocalRecordError> {
        self.dir
            .write_atomic(RECORD_FILE, self.enr.to_base64().as_bytes(), 0o644)
            .map_err(|source| LocalRecordError::Store {
                path: self.dir.file(RECORD_FILE).display().to_string(),
                source,
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::identity::Identity;

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
    fn a_nat_mapping_shows_only_beside_the_flag_and_waits_for_it_without_a_new_seq() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let mut record = open(&dir, Content::default());
        let start = record.enr().seq();
        let varies = Some(NatMapping::VariesByDestination);
        assert!(
            !record.update(|c| c.quic_mapping = varies).unwrap(),
            "not shown without the flag: no new record"
        );
        assert_eq!(record.enr().seq(), start);
        assert!(record.update(|c| c.nat = true).unwrap());
        assert_eq!(record.enr().seq(), start + 1);
        assert_eq!(
            enr_ext::nat_mapping(record.enr(), Transport::Quic),
            varies,
            "the flag brings the mapping kept for it"
        );
        assert_eq!(enr_ext::nat_mapping(record.enr(), Transport::Tcp), None);
    }

    fn open_at(dir: &DataDir, content: Content, clock: u64) -> LocalRecord {
        let id = Identity::load_or_create(dir).unwrap();
        LocalRecord::open_at(dir.clone(), id.signing_key, content, clock).unwrap()
    }

    fn addressed(port: u16) -> impl FnOnce(&mut Content) {
        move |c: &mut Content| {
            c.set_socket([198, 51, 100, 2].into(), port, Transport::Tcp);
        }
    }

    /// Publishes a few records from clock seq 1000 and returns the last seq.
    fn publish_some(dir: &DataDir) -> u64 {
        let mut record = open_at(dir, Content::default(), 1_000);
        for port in 9000..9005 {
            assert!(record.update(addressed(port)).unwrap());
        }
        assert_eq!(record.enr().seq(), 1_005);
        record.enr().seq()
    }

    #[test]
    fn a_lost_or_garbled_record_restarts_above_every_seq_published() {
        let garbage: [&[u8]; 4] = [
            &[0xff, 0xfe, 0x00, 0x80, 0x01],
            b"not a record at all",
            b"enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjz",
            b"",
        ];
        for content in [None].into_iter().chain(garbage.map(Some)) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = DataDir::open(tmp.path()).unwrap();
            let published = publish_some(&dir);
            match content {
                None => std::fs::remove_file(dir.file(RECORD_FILE)).unwrap(),
                Some(bytes) => dir.write_atomic(RECORD_FILE, bytes, 0o644).unwrap(),
            }
            // A restart a second later: the clock seq is above all that was published.
            let record = open_at(&dir, Content::default(), 2_000);
            assert_eq!(record.enr().seq(), 2_000, "{content:?}");
            assert!(record.enr().seq() > published);
            // ... and the file holds a good record again.
            let stored = dir.read(RECORD_FILE).unwrap().unwrap();
            let stored = enr_ext::decode_text(std::str::from_utf8(&stored).unwrap()).unwrap();
            assert_eq!(stored.seq(), 2_000);
        }
    }

    #[test]
    fn a_clock_set_back_never_takes_the_seq_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let published = publish_some(&dir);
        // New content, clock far behind the stored seq: stored + 1.
        let record = open_at(&dir, Content::default(), 10);
        assert_eq!(record.enr().seq(), published + 1);
        drop(record);
        // Same content, clock ahead: the stored record is kept as it is (rule 3).
        let record = open_at(&dir, Content::default(), 5_000);
        assert_eq!(record.enr().seq(), published + 1);
    }

    #[test]
    fn another_keys_record_is_replaced_and_an_unreadable_file_is_a_clear_refusal() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let other = tempfile::tempdir().unwrap();
        let other = DataDir::open(other.path()).unwrap();
        let theirs = open_at(&other, Content::default(), 9_000);
        dir.write_atomic(RECORD_FILE, theirs.enr().to_base64().as_bytes(), 0o644)
            .unwrap();
        let ours = open_at(&dir, Content::default(), 3_000);
        assert_eq!(ours.enr().seq(), 3_000);
        assert_ne!(ours.enr().node_id(), theirs.enr().node_id());
        drop(ours);

        // Rule 1: a file that cannot be read (here a directory in its place).
        std::fs::remove_file(dir.file(RECORD_FILE)).unwrap();
        std::fs::create_dir(dir.file(RECORD_FILE)).unwrap();
        let id = Identity::load_or_create(&dir).unwrap();
        let err = LocalRecord::open(dir.clone(), id.signing_key, Content::default()).unwrap_err();
        assert!(matches!(err, LocalRecordError::Read { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&dir.file(RECORD_FILE).display().to_string()),
            "{text}"
        );
    }

    #[test]
    fn the_clock_seq_is_milliseconds_since_the_epoch_and_never_zero() {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(clock_seq(at), 1_700_000_000_123);
        assert_eq!(clock_seq(UNIX_EPOCH), 1);
        assert_eq!(clock_seq(UNIX_EPOCH - std::time::Duration::from_secs(5)), 1);
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
            tcp_mapping: Some(NatMapping::VariesByDestination),
            quic_mapping: Some(NatMapping::VariesByDestination),
        };
        // The largest seq too.
        let record = open_at(&dir, content, u64::MAX);
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
