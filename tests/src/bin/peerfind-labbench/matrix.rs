//! `--matrix`: every pair of router kinds, Alice behind one and Bob behind the other, over
//! each transport: how often and how fast they end direct, and by which path.
//!
//! A try: a fresh lab; Alice starts and settles (a NAT verdict, and a relay slot when she
//! is private); then Bob starts, and the time from his start to the first direct connection
//! between them is measured, for at most [`CELL_WAIT`]. The path: **punched** (a hole punch
//! succeeded on either side), **dialed** (direct without a punch), **relayed** (only a
//! circuit), or **none**.

use std::collections::BTreeMap;
use std::time::Duration;

use peerfind_proto::v1 as pb;
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::{Peerfind, field};
use peerfind_tests::scenario::{self, bootnode, listen, peer, peer_id};
use serde_json::Value;

use super::{logged_ms, now_ms};

/// How long Bob has to end direct with Alice: a punch takes a few round trips; DCUtR's three
/// attempts and peerfind's retry take longer, and a cell that needs them is no success.
pub(crate) const CELL_WAIT: Duration = Duration::from_secs(12);

/// A router kind of the matrix, by its name on the command line.
pub(crate) fn kind(name: &str) -> anyhow::Result<Placement> {
    Ok(match name {
        "none" => Placement::Public,
        "eim" => Placement::BehindNat(NatMode::EndpointIndependent),
        "address-restricted" => Placement::BehindNat(NatMode::AddressRestricted),
        "full-cone" => Placement::BehindNat(NatMode::FullCone),
        "symmetric" => Placement::BehindNat(NatMode::Symmetric),
        "udp-blocked" => Placement::BehindNat(NatMode::UdpBlocked),
        other => anyhow::bail!("no router kind {other}"),
    })
}

/// How a try ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Path {
    Punched,
    Dialed,
    Relayed,
    None,
}

/// One try: its path, and the time to direct when direct.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) path: Path,
    pub(crate) ms: Option<f64>,
}

/// One try of the cell (`a`, `b`) over `transport`.
pub(crate) async fn try_cell(
    transport: &str,
    a: Placement,
    b: Placement,
) -> anyhow::Result<Outcome> {
    let lab = Lab::up(Topology::new(a, b))?;
    let (mut boot, enr) = bootnode(&lab, &[transport]).await?;
    let mut alice = peer(&lab, Host::Alice, &enr, &listen(transport))?;
    let alice_id = peer_id(&mut alice).await?;
    // Settled: a verdict, and a relay slot when private. Behind a router that blocks her
    // transport she never settles: the try goes on, and shows it.
    let _ = alice
        .until("settled", CELL_WAIT, |s| {
            let slot = s.status.bootnodes.iter().any(|b| b.relay_reserved);
            match s.nat() {
                pb::NatStatus::Public => Some(()),
                pb::NatStatus::Private if slot => Some(()),
                _ => None,
            }
        })
        .await;
    let begun = now_ms();
    let mut bob = peer(&lab, Host::Bob, &enr, &listen(transport))?;
    let bob_id = peer_id(&mut bob).await?;
    let direct = |id: String| move |l: &Value| field(l, "peer") == id && l["relayed"] == false;
    let first = tokio::select! {
        l = alice.wait_for("connected", CELL_WAIT, direct(bob_id.clone())) => l,
        l = bob.wait_for("connected", CELL_WAIT, direct(alice_id.clone())) => l,
    };
    // Decided once both have stopped, so a punch's log line that follows its connection by
    // a moment is read too.
    scenario::stop_all(&mut [&mut bob, &mut alice, &mut boot]).await;
    let outcome = match first {
        Ok(first) => {
            let mut at = logged_ms(&first)?;
            for (node, id) in [(&alice, &bob_id), (&bob, &alice_id)] {
                for line in node.lines_with("connected") {
                    if direct(id.clone())(&line) {
                        at = at.min(logged_ms(&line)?);
                    }
                }
            }
            let punched = [(&alice, &bob_id), (&bob, &alice_id)]
                .iter()
                .any(|(n, id)| {
                    n.lines_with("hole punch succeeded")
                        .iter()
                        .any(|l| field(l, "peer") == id.as_str())
                });
            Outcome {
                path: if punched { Path::Punched } else { Path::Dialed },
                ms: Some(at - begun),
            }
        }
        Err(_) => {
            let relayed = |node: &Peerfind, id: &str| {
                node.lines_with("connected")
                    .iter()
                    .any(|l| field(l, "peer") == id && l["relayed"] == true)
            };
            Outcome {
                path: if relayed(&alice, &bob_id) || relayed(&bob, &alice_id) {
                    Path::Relayed
                } else {
                    Path::None
                },
                ms: None,
            }
        }
    };
    Ok(outcome)
}

/// The cells' tries: (Alice's kind, Bob's kind, transport) → outcomes.
pub(crate) type Cells = BTreeMap<(String, String, String), Vec<Outcome>>;

/// Prints one row per cell: direct tries, p50 and p95 of the time to direct, and the paths.
pub(crate) fn print(cells: &Cells) {
    println!(
        "\n{:<20} {:<20} {:>5} {:>7} {:>8} {:>8}  paths",
        "Alice", "Bob", "", "direct", "p50", "p95"
    );
    for ((a, b, transport), outcomes) in cells {
        let mut ms: Vec<f64> = outcomes.iter().filter_map(|o| o.ms).collect();
        ms.sort_by(f64::total_cmp);
        let pct = |q: f64| -> String {
            if ms.is_empty() {
                return "-".into();
            }
            let i = ((ms.len() - 1) as f64 * q).round() as usize;
            ms.get(i).map_or("-".into(), |m| format!("{m:.0} ms"))
        };
        let mut paths: BTreeMap<Path, usize> = BTreeMap::new();
        for o in outcomes {
            *paths.entry(o.path).or_default() += 1;
        }
        let paths: Vec<String> = paths
            .iter()
            .map(|(p, n)| format!("{} {n}", format!("{p:?}").to_lowercase()))
            .collect();
        println!(
            "{a:<20} {b:<20} {transport:>5} {:>7} {:>8} {:>8}  {}",
            format!("{}/{}", ms.len(), outcomes.len()),
            pct(0.5),
            pct(0.95),
            paths.join(", ")
        );
    }
}
