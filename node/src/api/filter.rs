//! `ListPeers`' filters: checked before the node is asked, then matched against its peers.
//!
//! Rules, in order:
//! 1. An empty field is no filter.
//! 2. A `peer_id` must parse as a PeerId; a `node_id` must be exactly 64 hex characters (either
//!    case). Anything else is the caller's mistake: INVALID_ARGUMENT, whatever the node knows.
//! 3. With both set, a peer must match both.
//! 4. A filter that is set and matches no known peer is NOT_FOUND (the server's call), so a
//!    script can tell "no such peer" from "no peers yet".
//!
//! The module stands alone: nothing from `crate::`, only `libp2p` and `thiserror`. The fuzz
//! target `api_filter` (`fuzz/fuzz_targets/api_filter.rs`) compiles this very file into
//! itself, so fuzzing the server's filter check does not build the whole node.

use libp2p::PeerId;

/// Hex characters in a node id (32 bytes).
const NODE_ID_HEX_LEN: usize = 64;

/// Longest `peer_id` parsed. A PeerId is about 53 characters in base58 (a secp256k1 key's
/// identity hash); base58 decoding takes time quadratic in the length, so a megabyte of it
/// is refused unread rather than decoded.
const MAX_PEER_ID_LEN: usize = 128;

/// The most of a refused value an error repeats: the message travels in a gRPC header, and
/// whoever sent a megabyte of it does not need it back.
const SHOWN_LEN: usize = 80;

/// A checked filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    peer_id: Option<PeerId>,
    /// Lowercase, as the node writes node ids.
    node_id: Option<String>,
}

/// Why a filter was refused (rule 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FilterError {
    /// `peer_id` is not a PeerId.
    #[error("peer_id {value:?} is not a PeerId: {source}")]
    PeerId {
        /// What was sent, cut to [`SHOWN_LEN`] characters.
        value: String,
        /// Why it does not parse.
        source: libp2p::identity::ParseError,
    },
    /// `peer_id` is far longer than any PeerId.
    #[error("peer_id is not a PeerId: {len} characters, a PeerId has at most {MAX_PEER_ID_LEN}")]
    PeerIdTooLong {
        /// Its length.
        len: usize,
    },
    /// `node_id` is not 64 hex characters.
    #[error("node_id {value:?} is not a node id: expected {NODE_ID_HEX_LEN} hex characters")]
    NodeId {
        /// What was sent, cut to [`SHOWN_LEN`] characters.
        value: String,
    },
}

impl Filter {
    /// Checks the request's fields (rules 1 and 2).
    pub(crate) fn parse(peer_id: &str, node_id: &str) -> Result<Self, FilterError> {
        let peer_id = match peer_id.trim() {
            "" => None,
            text if text.len() > MAX_PEER_ID_LEN => {
                return Err(FilterError::PeerIdTooLong { len: text.len() });
            }
            text => Some(text.parse().map_err(|source| FilterError::PeerId {
                value: shown(text),
                source,
            })?),
        };
        let node_id = match node_id.trim() {
            "" => None,
            text if text.len() == NODE_ID_HEX_LEN
                && text.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Some(text.to_ascii_lowercase())
            }
            text => return Err(FilterError::NodeId { value: shown(text) }),
        };
        Ok(Self { peer_id, node_id })
    }

    /// Whether no filter is set (rule 1): every peer matches.
    pub(crate) fn is_empty(&self) -> bool {
        self.peer_id.is_none() && self.node_id.is_none()
    }

    /// Whether a peer with these ids passes every filter that is set (rule 3).
    pub(crate) fn matches(&self, peer_id: &PeerId, node_id: &str) -> bool {
        self.peer_id.is_none_or(|p| p == *peer_id)
            && self
                .node_id
                .as_deref()
                .is_none_or(|n| n.eq_ignore_ascii_case(node_id))
    }
}

impl std::fmt::Display for Filter {
    /// The filter as a person wrote it, for "no known peer has …".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.peer_id, &self.node_id) {
            (Some(p), Some(n)) => write!(f, "PeerId {p} and node id {n}"),
            (Some(p), None) => write!(f, "PeerId {p}"),
            (None, Some(n)) => write!(f, "node id {n}"),
            (None, None) => f.write_str("any id"),
        }
    }
}

/// `text` cut to [`SHOWN_LEN`] characters.
fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN_LEN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::some_peer_id;

    #[test]
    fn empty_fields_are_no_filter_and_match_every_peer() {
        let filter = Filter::parse("", " ").unwrap();
        assert!(filter.is_empty());
        assert!(filter.matches(&some_peer_id(), &"ab".repeat(32)));
    }

    #[test]
    fn a_peer_id_that_does_not_parse_is_refused_and_named() {
        let err = Filter::parse("16Uiu2-not-a-peer", "").unwrap_err();
        assert!(matches!(err, FilterError::PeerId { .. }));
        assert!(err.to_string().contains("16Uiu2-not-a-peer"), "{err}");
    }

    #[test]
    fn a_node_id_must_be_64_hex_characters() {
        for bad in ["abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65)] {
            assert!(
                matches!(Filter::parse("", bad), Err(FilterError::NodeId { .. })),
                "{bad}"
            );
        }
        assert!(Filter::parse("", &"AbCd".repeat(16)).is_ok());
    }

    #[test]
    fn a_huge_refused_value_is_neither_decoded_nor_repeated_whole() {
        let err = Filter::parse(&"x".repeat(4_000_000), "").unwrap_err();
        assert!(matches!(err, FilterError::PeerIdTooLong { len: 4_000_000 }));
        let err = Filter::parse(&"x".repeat(MAX_PEER_ID_LEN), "").unwrap_err();
        assert!(err.to_string().len() < 400, "{}", err.to_string().len());
        let err = Filter::parse("", &"x".repeat(4_000_000)).unwrap_err();
        assert!(err.to_string().len() < 400, "{}", err.to_string().len());
    }

    #[test]
    fn a_node_id_matches_in_either_case_and_both_filters_must_match() {
        let id = some_peer_id();
        let node_id = "0f".repeat(32);
        let alice = (&id, node_id.as_str());
        let matches = |filter: Filter| filter.matches(alice.0, alice.1);
        assert!(matches(Filter::parse("", &"0F".repeat(32)).unwrap()));
        assert!(matches(Filter::parse(&id.to_string(), &node_id).unwrap()));
        assert!(!matches(
            Filter::parse(&some_peer_id().to_string(), &node_id).unwrap()
        ));
        assert!(!matches(
            Filter::parse(&id.to_string(), &"1f".repeat(32)).unwrap()
        ));
    }
}
