//! `/dnsaddr` bootnodes, expanded at start into the addresses their TXT records list
//! (libp2p's bootstrap lists: `_dnsaddr.<name>` holds `dnsaddr=<multiaddr>` entries).
//!
//! Written here because libp2p's DNS transport resolves a `/dnsaddr` only when dialing it,
//! and then dials the first entry that answers: one connection. peerfind keeps one connection
//! per transport to each bootnode (`upkeep::redial`), so it needs the whole list. The lookup
//! is the system resolver's, as libp2p's DNS transport does it (hickory, `/etc/resolv.conf`).
//!
//! Rules:
//! 1. `/dnsaddr/NAME/p2p/ID` is looked up as TXT `_dnsaddr.NAME`; each record starting with
//!    `dnsaddr=` is an entry, any other is skipped.
//! 2. An entry naming another peer (`/p2p/OTHER`) is skipped; one naming none gets ID.
//! 3. An entry that is itself a `/dnsaddr` is expanded the same way, at most [`MAX_DEPTH`]
//!    deep (lists that name each other end there), and with at most [`MAX_LOOKUPS`] lookups
//!    in all: a list of many nested lists that each yield nothing would otherwise fan out
//!    (libp2p's DNS transport stops at the same number).
//! 4. At most [`MAX_ADDRS`] addresses per bootnode; the rest are dropped and said so.
//! 5. No entry left is an error naming the name, as is a failed lookup.

use std::future::Future;
use std::pin::Pin;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// How deep lists may name lists (rule 3): libp2p's own bootstrap list is two deep.
pub const MAX_DEPTH: usize = 4;

/// Lookups per bootnode (rule 3), libp2p's DNS transport's own bound.
pub const MAX_LOOKUPS: usize = 32;

/// Addresses kept per bootnode (rule 4): a bootnode listens on a few, per transport and
/// family; a list longer than this is a mistake or a flood.
pub const MAX_ADDRS: usize = 16;

/// Why a `/dnsaddr` gave no address.
#[derive(Debug, thiserror::Error)]
pub enum DnsaddrError {
    /// The lookup failed (no such name, no answer, no resolver).
    #[error("cannot look up {name}: {error}")]
    Lookup {
        /// The TXT name asked.
        name: String,
        /// What the resolver said.
        error: String,
    },
    /// The records list no address of the bootnode (rule 5).
    #[error("{name} lists no address of {peer}")]
    Empty {
        /// The TXT name asked.
        name: String,
        /// The bootnode.
        peer: PeerId,
    },
    /// The system's resolver configuration cannot be read.
    #[error("cannot read the system's DNS configuration: {0}")]
    Config(String),
}

/// TXT lookups: the texts of a name's TXT records.
pub trait Lookup: Sync {
    /// The TXT records of `name`, each as one string.
    fn txt(&self, name: String) -> impl Future<Output = Result<Vec<String>, String>> + Send;
}

/// The system's resolver.
pub struct System(hickory_resolver::TokioResolver);

impl System {
    /// A resolver with the system's configuration.
    pub fn new() -> Result<Self, DnsaddrError> {
        let (config, options) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| DnsaddrError::Config(e.to_string()))?;
        let resolver = hickory_resolver::TokioResolver::builder_with_config(
            config,
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        )
        .with_options(options)
        .build()
        .map_err(|e| DnsaddrError::Config(e.to_string()))?;
        Ok(Self(resolver))
    }
}

impl Lookup for System {
    async fn txt(&self, name: String) -> Result<Vec<String>, String> {
        let found = self.0.txt_lookup(name).await.map_err(|e| e.to_string())?;
        Ok(found
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                hickory_resolver::proto::rr::RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }
}

/// Whether `addr` is a `/dnsaddr` address.
pub fn is_dnsaddr(addr: &Multiaddr) -> bool {
    matches!(addr.iter().next(), Some(Protocol::Dnsaddr(_)))
}

/// The addresses `addr` (`/dnsaddr/NAME/p2p/ID`, `peer` being ID) lists, by the rules.
pub async fn expand(
    lookup: &impl Lookup,
    addr: &Multiaddr,
    peer: PeerId,
) -> Result<Vec<Multiaddr>, DnsaddrError> {
    let mut found = Vec::new();
    let Some(Protocol::Dnsaddr(name)) = addr.iter().next() else {
        return Ok(vec![addr.clone()]);
    };
    let name = format!("_dnsaddr.{name}");
    let mut lookups = 0;
    walk(lookup, name.clone(), peer, 0, (&mut found, &mut lookups)).await?;
    if lookups >= MAX_LOOKUPS {
        tracing::info!(%name, lookups, "a dnsaddr list that names more lists than a bootnode needs; stopped looking");
    }
    if found.len() > MAX_ADDRS {
        tracing::info!(%name, listed = found.len(), kept = MAX_ADDRS, "a dnsaddr list longer than a bootnode needs; the rest dropped");
        found.truncate(MAX_ADDRS);
    }
    if found.is_empty() {
        return Err(DnsaddrError::Empty { name, peer });
    }
    Ok(found)
}

fn walk<'a, L: Lookup>(
    lookup: &'a L,
    name: String,
    peer: PeerId,
    depth: usize,
    (found, lookups): (&'a mut Vec<Multiaddr>, &'a mut usize),
) -> Pin<Box<dyn Future<Output = Result<(), DnsaddrError>> + Send + 'a>> {
    Box::pin(async move {
        *lookups += 1;
        let texts = lookup
            .txt(name.clone())
            .await
            .map_err(|error| DnsaddrError::Lookup {
                name: name.clone(),
                error,
            })?;
        for text in texts {
            // Rule 1.
            let Some(entry) = text.strip_prefix("dnsaddr=") else {
                continue;
            };
            let Ok(mut entry) = entry.parse::<Multiaddr>() else {
                tracing::debug!(%name, %text, "not a multiaddr in a dnsaddr list; skipped");
                continue;
            };
            // Rule 2.
            match entry.iter().last() {
                Some(Protocol::P2p(named)) if named != peer => continue,
                Some(Protocol::P2p(_)) => {}
                _ => entry.push(Protocol::P2p(peer)),
            }
            // Rule 3.
            if let Some(Protocol::Dnsaddr(inner)) = entry.iter().next() {
                if depth + 1 < MAX_DEPTH && found.len() < MAX_ADDRS && *lookups < MAX_LOOKUPS {
                    let inner = format!("_dnsaddr.{inner}");
                    walk(lookup, inner, peer, depth + 1, (&mut *found, &mut *lookups)).await?;
                }
                continue;
            }
            if !found.contains(&entry) {
                found.push(entry);
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;

    struct Zone(HashMap<String, Vec<String>>, std::sync::atomic::AtomicUsize);

    impl Lookup for Zone {
        async fn txt(&self, name: String) -> Result<Vec<String>, String> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0
                .get(&name)
                .cloned()
                .ok_or_else(|| format!("no {name}"))
        }
    }

    fn zone(entries: &[(&str, &[String])]) -> Zone {
        Zone(
            entries
                .iter()
                .map(|(n, t)| ((*n).to_owned(), t.to_vec()))
                .collect(),
            Default::default(),
        )
    }

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn rules_1_to_3_entries_of_this_peer_nested_lists_and_junk_skipped() {
        let (me, other) = (PeerId::random(), PeerId::random());
        let z = zone(&[
            (
                "_dnsaddr.boot.example",
                &[
                    format!("dnsaddr=/ip4/198.51.100.10/tcp/9000/p2p/{me}"),
                    format!("dnsaddr=/ip4/198.51.100.11/tcp/9000/p2p/{other}"),
                    "dnsaddr=/dns4/boot.example/udp/9000/quic-v1".to_owned(),
                    "v=spf1 -all".to_owned(),
                    "dnsaddr=not a multiaddr".to_owned(),
                    "dnsaddr=/dnsaddr/more.example".to_owned(),
                ],
            ),
            (
                "_dnsaddr.more.example",
                &[format!("dnsaddr=/ip6/2001:db8::10/tcp/9000/p2p/{me}")],
            ),
        ]);
        let got = expand(&z, &ma(&format!("/dnsaddr/boot.example/p2p/{me}")), me)
            .await
            .unwrap();
        assert_eq!(
            got,
            vec![
                ma(&format!("/ip4/198.51.100.10/tcp/9000/p2p/{me}")),
                ma(&format!("/dns4/boot.example/udp/9000/quic-v1/p2p/{me}")),
                ma(&format!("/ip6/2001:db8::10/tcp/9000/p2p/{me}")),
            ]
        );
    }

    #[tokio::test]
    async fn rules_3_to_5_loops_end_long_lists_are_cut_and_nothing_is_an_error() {
        let me = PeerId::random();
        let looping = zone(&[
            (
                "_dnsaddr.a.example",
                &["dnsaddr=/dnsaddr/b.example".to_owned()],
            ),
            (
                "_dnsaddr.b.example",
                &["dnsaddr=/dnsaddr/a.example".to_owned()],
            ),
        ]);
        let err = expand(&looping, &ma("/dnsaddr/a.example"), me)
            .await
            .unwrap_err();
        assert!(matches!(err, DnsaddrError::Empty { .. }), "{err}");
        let long: Vec<String> = (0..40)
            .map(|i| format!("dnsaddr=/ip4/198.51.100.{i}/tcp/9000"))
            .collect();
        let z = zone(&[("_dnsaddr.many.example", &long)]);
        let got = expand(&z, &ma("/dnsaddr/many.example"), me).await.unwrap();
        assert_eq!(got.len(), MAX_ADDRS);
        let missing = expand(&zone(&[]), &ma("/dnsaddr/none.example"), me)
            .await
            .unwrap_err();
        assert!(
            missing.to_string().contains("_dnsaddr.none.example"),
            "{missing}"
        );
    }

    #[tokio::test]
    async fn rule_3_lists_naming_many_empty_lists_stop_at_the_lookup_bound() {
        let me = PeerId::random();
        let wide: Vec<String> = (0..20)
            .map(|i| format!("dnsaddr=/dnsaddr/n{i}.example"))
            .collect();
        // Every name lists the same twenty names: 20^3 lookups at depth 4 without the bound.
        let mut entries: Vec<(String, &[String])> =
            vec![("_dnsaddr.root.example".to_owned(), &wide)];
        for i in 0..20 {
            entries.push((format!("_dnsaddr.n{i}.example"), &wide));
        }
        let entries: Vec<(&str, &[String])> =
            entries.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let z = zone(&entries);
        let err = expand(&z, &ma("/dnsaddr/root.example"), me)
            .await
            .unwrap_err();
        assert!(matches!(err, DnsaddrError::Empty { .. }), "{err}");
        assert_eq!(z.1.load(std::sync::atomic::Ordering::Relaxed), MAX_LOOKUPS);
    }
}
